package demo

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"
)

// The demo's gRPC API, declared by hand (no generated code): every method
// takes and returns a google.protobuf.Struct.
const (
	MethodReviewsList = "/bookinfo.Reviews/List"
	MethodRatingsGet  = "/bookinfo.Ratings/Get"
	MethodRatingsAdm  = "/bookinfo.Ratings/Admin"
	MethodDetailsGet  = "/bookinfo.Details/Get"
)

type handler func(ctx context.Context, req *structpb.Struct) (*structpb.Struct, error)

// serviceDesc declares service name with its unary methods.
func serviceDesc(name string, methods map[string]handler) *grpc.ServiceDesc {
	d := &grpc.ServiceDesc{ServiceName: name, HandlerType: (*any)(nil)}
	for m, h := range methods {
		d.Methods = append(d.Methods, grpc.MethodDesc{MethodName: m, Handler: unary(name, m, h)})
	}
	return d
}

func unary(service, method string, h handler) grpc.MethodHandler {
	full := "/" + service + "/" + method
	return func(_ any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		req := new(structpb.Struct)
		if err := dec(req); err != nil {
			return nil, err
		}
		if ic == nil {
			return h(ctx, req)
		}
		return ic(ctx, req, &grpc.UnaryServerInfo{FullMethod: full}, func(ctx context.Context, r any) (any, error) {
			return h(ctx, r.(*structpb.Struct))
		})
	}
}

// call invokes a unary method with Struct messages.
func call(ctx context.Context, cc grpc.ClientConnInterface, method string, req map[string]any, opts ...grpc.CallOption) (*structpb.Struct, error) {
	in, err := structpb.NewStruct(req)
	if err != nil {
		return nil, err
	}
	out := new(structpb.Struct)
	if err := cc.Invoke(ctx, method, in, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}
