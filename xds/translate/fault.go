package translate

import (
	commonfault "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	networking "istio.io/api/networking/v1alpha3"
)

// fractionalPercent converts Istio's 0–100 percentage to a per-million
// fraction, keeping four decimals as Istio does.
func fractionalPercent(pct float64) *typev3.FractionalPercent {
	pct = max(0, min(pct, 100))
	return &typev3.FractionalPercent{Numerator: uint32(pct * 10000), Denominator: typev3.FractionalPercent_MILLION}
}

// grpcCodes maps Istio's grpcStatus names to codes.
var grpcCodes = func() map[string]uint32 {
	m := map[string]uint32{}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		m[codeName(c)] = uint32(c)
	}
	return m
}()

func codeName(c codes.Code) string {
	names := map[codes.Code]string{
		codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN", codes.InvalidArgument: "INVALID_ARGUMENT",
		codes.DeadlineExceeded: "DEADLINE_EXCEEDED", codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
		codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED", codes.FailedPrecondition: "FAILED_PRECONDITION",
		codes.Aborted: "ABORTED", codes.OutOfRange: "OUT_OF_RANGE", codes.Unimplemented: "UNIMPLEMENTED", codes.Internal: "INTERNAL",
		codes.Unavailable: "UNAVAILABLE", codes.DataLoss: "DATA_LOSS", codes.Unauthenticated: "UNAUTHENTICATED",
	}
	return names[c]
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
