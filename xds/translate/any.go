package translate

import (
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

type (
	anyType             = anypb.Any
	typePercent         = typev3.Percent
	protoreflectMessage = protoreflect.Message
)

// mustAny packs m. Marshalling a generated message we just built cannot
// fail short of a bug, so a failure panics (and the fuzz test would find it).
func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic("translate: pack " + string(m.ProtoReflect().Descriptor().FullName()) + ": " + err.Error())
	}
	return a
}

func durationZero() *durationpb.Duration { return durationpb.New(0) }
