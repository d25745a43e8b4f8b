package translate

import (
	commonfault "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	networking "istio.io/api/networking/v1alpha3"
)

// fractionalPercent converts Istio's 0–100 percentage to a per-million
// fraction, keeping four decimals as Istio does.
func fractionalPercent(pct float64) *typev3.FractionalPercent {
	pct = max(0, min(pct, 100))
	return &typev3.FractionalPercent{Numerator: uint32(pct * 10000), Denominator: typev3.FractionalPercent_MILLION}
}

// grpcCodes maps Istio's grpcStatus names to gRPC status codes (spelled
// out rather than importing grpc into the translators).
var grpcCodes = map[string]uint32{
	"OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
	"ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9, "ABORTED": 10,
	"OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}

// faultConfig is the per-route HTTPFault override for an Istio fault.
func faultConfig(f *networking.HTTPFaultInjection) *faultv3.HTTPFault {
	out := &faultv3.HTTPFault{}
	if d := f.GetDelay(); d != nil {
		out.Delay = &commonfault.FaultDelay{
			FaultDelaySecifier: &commonfault.FaultDelay_FixedDelay{FixedDelay: d.GetFixedDelay()},
			Percentage:         faultPercent(d.GetPercentage(), float64(d.GetPercent())), //nolint:staticcheck // deprecated int percent still accepted
		}
	}
	if a := f.GetAbort(); a != nil {
		abort := &faultv3.FaultAbort{Percentage: faultPercent(a.GetPercentage(), 0)}
		switch {
		case a.GetGrpcStatus() != "":
			abort.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: grpcCodes[a.GetGrpcStatus()]}
		default:
			abort.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(a.GetHttpStatus())}
		}
		out.Abort = abort
	}
	return out
}

func faultPercent(p *networking.Percent, legacy float64) *typev3.FractionalPercent {
	if p != nil {
		return fractionalPercent(p.GetValue())
	}
	if legacy > 0 {
		return fractionalPercent(legacy)
	}
	return fractionalPercent(100)
}
