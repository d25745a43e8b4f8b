package als

import (
	"strconv"
	"strings"

	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
)

// isGRPC reports whether a request's content-type makes it a gRPC
// request, as Envoy decides it (Grpc::Common::hasGrpcContentType) and
// Istio's request_protocol follows: application/grpc, alone or with a
// "+<subtype>" or ";<parameters>" suffix. gRPC-Web is not gRPC.
func isGRPC(contentType string) bool {
	rest, ok := strings.CutPrefix(contentType, "application/grpc")
	return ok && (rest == "" || rest[0] == '+' || rest[0] == ';')
}

// grpcStatus is a gRPC response's status as Istio's
// grpc_response_status reports it (Envoy's Grpc::Common::getGrpcStatus):
// the grpc-status trailer, else the grpc-status header (a trailers-only
// response), else the status the HTTP response code maps to, else ""
// when there was no response. A value outside gRPC's codes 0–16 is
// Unknown (2), which also bounds the label's values.
func grpcStatus(resp *datav3.HTTPResponseProperties) string {
	for _, hs := range []map[string]string{resp.GetResponseTrailers(), resp.GetResponseHeaders()} {
		if v, ok := hs["grpc-status"]; ok {
			return knownCode(v)
		}
	}
	code := resp.GetResponseCode().GetValue()
	if code == 0 {
		return ""
	}
	return grpcCodes[httpToGRPC(code)]
}

// grpcCodes are gRPC's status codes as strings, OK (0) to
// Unauthenticated (16): returning them allocates nothing.
var grpcCodes = func() [17]string {
	var c [17]string
	for i := range c {
		c[i] = strconv.Itoa(i)
	}
	return c
}()

func knownCode(v string) string {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 || n >= len(grpcCodes) {
		return grpcCodes[2] // Unknown
	}
	return grpcCodes[n]
}

// httpToGRPC maps an HTTP status to a gRPC code as gRPC's HTTP mapping
// (and Envoy's Grpc::Utility::httpToGrpcStatus) does.
func httpToGRPC(code uint32) int {
	switch code {
	case 400:
		return 13 // Internal
	case 401:
		return 16 // Unauthenticated
	case 403:
		return 7 // PermissionDenied
	case 404:
		return 12 // Unimplemented
	case 429, 502, 503, 504:
		return 14 // Unavailable
	}
	return 2 // Unknown
}
