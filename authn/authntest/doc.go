// Package authntest holds test helpers for JWT keys and tokens: it loads the
// private JWKs in authn/testdata (found through runtime.Caller, so any
// package's tests can use them), renders their public halves as a JWKS and
// signs tokens with them. It imports no Ward package, so authn's own tests
// can use it.
package authntest
