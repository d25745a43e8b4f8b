package mesh

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
)

// Key identifies one config object.
type Key struct {
	Kind      Kind
	Namespace string
	Name      string
}

// String renders the key as "Kind namespace/name", the form used in every
// error and log line.
func (k Key) String() string { return fmt.Sprintf("%s %s/%s", k.Kind, k.Namespace, k.Name) }

// Source says where an object came from, e.g. a file and line.
type Source struct {
	File string
	Line int
}

// String renders "file:line", or "" when the source is unknown.
func (s Source) String() string {
	if s.File == "" {
		return ""
	}
	if s.Line == 0 {
		return s.File
	}
	return fmt.Sprintf("%s:%d", s.File, s.Line)
}

// Meta is the Kubernetes-style metadata Ward keeps for a config object.
type Meta struct {
	Kind              Kind
	APIVersion        string // as written, e.g. "security.istio.io/v1beta1"
	Namespace         string
	Name              string
	Labels            map[string]string
	Annotations       map[string]string
	CreationTimestamp time.Time
	ResourceVersion   string
	Source            Source
}

// Config is one Istio config object: metadata plus its typed spec, one of
// the istio.io/api messages (e.g. *securityv1beta1.PeerAuthentication).
type Config struct {
	Meta
	Spec proto.Message
}

// Key returns the object's identity.
func (c *Config) Key() Key { return Key{Kind: c.Kind, Namespace: c.Namespace, Name: c.Name} }

// DryRun reports whether the object carries istio.io/dry-run: "true".
func (c *Config) DryRun() bool { return c.Annotations[AnnotationDryRun] == "true" }

// AnnotationDryRun marks an AuthorizationPolicy as evaluate-only.
const AnnotationDryRun = "istio.io/dry-run"

// olderThan orders configs the way Istio resolves conflicts: older
// creationTimestamp first, then namespace/name.
func olderThan(a, b *Config) bool {
	if !a.CreationTimestamp.Equal(b.CreationTimestamp) {
		return a.CreationTimestamp.Before(b.CreationTimestamp)
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// Older reports whether a takes precedence over b by Istio's conflict rule
// (oldest creationTimestamp wins; ties broken by namespace then name).
func Older(a, b *Config) bool { return olderThan(a, b) }
