// Package schema decodes Istio config objects strictly and validates them.
//
// Decoding walks each object's spec against the protobuf descriptor of its
// istio.io/api type before handing it to protojson, so an unknown field
// (a typo like "principal:" in a DENY rule), a bad enum value or a wrong
// JSON type is reported with its exact field path rather than silently
// dropped. Validation then applies Istio's semantic rules for each kind.
// Both the file source and the validating webhook use this package, so the
// two can never disagree.
//
// The semantic rules are those of Istio's validating webhook
// (pkg/config/validation) plus the CEL rules of its CRDs, one validator per
// kind registered in validators. Every violation is reported, each at the
// JSON path of the offending field ("spec.http[2].route[0].weight",
// "spec.portLevelMtls[8080]"). What Istio only warns about is available
// from Warnings and never rejects an object.
//
// Errors render at the line of the offending field, one per line, and
// name the field or enum value a typo most likely meant. Ward differs from
// Istio only where security needs it (docs/config.md lists every
// difference); checks beyond Istio's that do not protect security are
// warnings with a Code (CodeStricter, CodeMethodTypo, CodeNotImplemented)
// that analyzers report under their own codes.
package schema
