// Package schema decodes Istio config objects strictly and validates them.
//
// Decoding walks each object's spec against the protobuf descriptor of its
// istio.io/api type before handing it to protojson, so an unknown field
// (a typo like "principal:" in a DENY rule), a bad enum value or a wrong
// JSON type is reported with its exact field path rather than silently
// dropped. Validation then applies Istio's semantic rules for each kind.
// Both the file source and the validating webhook use this package, so the
// two can never disagree.
package schema
