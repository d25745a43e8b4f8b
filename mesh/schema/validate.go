package schema

import (
	"regexp"

	"google.golang.org/protobuf/proto"

	"github.com/wardmesh/ward/mesh"
)

// validator checks one kind's spec and records violations in e. Paths
// passed to e start at "spec".
type validator func(c *mesh.Config, e *errs)

// validators holds the semantic rules per kind; each kind's file registers
// its own in an init function.
var validators = map[mesh.Kind]validator{}

// Validate applies Istio's semantic validation to c and returns every
// violation (not just the first), or nil when c is valid.
func Validate(c *mesh.Config) []FieldError { return check(c).list }

// Warnings returns what Istio's webhook reports as warnings for c: things
// that are accepted but probably not meant (an egress host listed twice, a
// deprecated field, a selector without labels). They never reject an object.
func Warnings(c *mesh.Config) []FieldError { return check(c).warns }

func check(c *mesh.Config) *errs {
	var e errs
	validateMeta(c, &e)
	if isNil(c.Spec) {
		e.add("spec", "required")
		return &e
	}
	if v, ok := validators[c.Kind]; ok {
		v(c, &e)
	}
	return &e
}

// ValidateObject is Validate wrapped as an *ObjectError (nil when valid),
// with lines looked up in doc when it is not nil.
func ValidateObject(c *mesh.Config, doc *Document) error {
	fes := Validate(c)
	if len(fes) == 0 {
		return nil
	}
	if doc == nil {
		return &ObjectError{Key: c.Key(), Source: c.Source, Errors: fes}
	}
	return objErr(doc, c.Source, c.Key(), fes...)
}

var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
var dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

func validateMeta(c *mesh.Config, e *errs) {
	switch {
	case c.Name == "":
		e.add("metadata.name", "required")
	case len(c.Name) > 253 || !dns1123Subdomain.MatchString(c.Name):
		e.add("metadata.name", "%q is not a valid DNS-1123 subdomain", c.Name)
	}
	if len(c.Namespace) > 63 || !dns1123Label.MatchString(c.Namespace) {
		e.add("metadata.namespace", "%q is not a valid DNS-1123 label", c.Namespace)
	}
	if v, ok := c.Annotations[mesh.AnnotationDryRun]; ok {
		switch {
		case c.Kind != mesh.KindAuthorizationPolicy:
			// As in Istio the annotation has no effect here: the object is
			// enforced. Worth a warning, not a rejection.
			e.warnCode(CodeStricter, key("metadata.annotations", mesh.AnnotationDryRun), "only AuthorizationPolicy supports the %s annotation: this %s is enforced", mesh.AnnotationDryRun, c.Kind)
		case v != "true" && v != "false":
			e.add(key("metadata.annotations", mesh.AnnotationDryRun), "must be \"true\" or \"false\", got %q", v)
		}
	}
}

// Decoding with protojson never yields nil messages for set fields, but
// validators are also called on objects built in code; isNil guards them.
func isNil(m proto.Message) bool { return m == nil || !m.ProtoReflect().IsValid() }
