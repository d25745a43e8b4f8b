package jwks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wardmesh/ward/authn"
)

// FetchError is a failed fetch; Stage says which step failed.
type FetchError struct {
	Stage string // "discovery", "fetch" or "validate"
	URL   string
	Err   error
}

func (e *FetchError) Error() string { return fmt.Sprintf("jwks %s %s: %v", e.Stage, e.URL, e.Err) }
func (e *FetchError) Unwrap() error { return e.Err }

type fetched struct {
	keys authn.NormalizedJWKS
	uri  string
}

func (r *Resolver) fetch(ctx context.Context, src source, timeout time.Duration) (fetched, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	uri := src.URI
	if uri == "" {
		var err error
		if uri, err = r.discover(ctx, src.Issuer); err != nil {
			return fetched{}, err
		}
	}
	body, err := r.get(ctx, uri)
	if err != nil {
		return fetched{}, &FetchError{Stage: "fetch", URL: uri, Err: err}
	}
	keys, err := authn.NormalizeJWKS(body)
	if err != nil {
		return fetched{}, &FetchError{Stage: "validate", URL: uri, Err: err}
	}
	return fetched{keys: keys, uri: uri}, nil
}

// discover reads the issuer's OpenID configuration and returns jwks_uri.
// The document must name the same issuer (OpenID Connect Discovery §4.3).
func (r *Resolver) discover(ctx context.Context, issuer string) (string, error) {
	u := authn.DiscoveryURL(issuer)
	body, err := r.get(ctx, u)
	if err != nil {
		return "", &FetchError{Stage: "discovery", URL: u, Err: err}
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", &FetchError{Stage: "discovery", URL: u, Err: fmt.Errorf("not an OpenID configuration: %w", err)}
	}
	if strings.TrimRight(doc.Issuer, "/") != strings.TrimRight(issuer, "/") {
		return "", &FetchError{Stage: "discovery", URL: u, Err: fmt.Errorf("document names issuer %q, want %q", doc.Issuer, issuer)}
	}
	if p, err := url.Parse(doc.JWKSURI); err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
		return "", &FetchError{Stage: "discovery", URL: u, Err: fmt.Errorf("invalid jwks_uri %q", doc.JWKSURI)}
	}
	return doc.JWKSURI, nil
}

var errStatus = errors.New("unexpected HTTP status")

func (r *Resolver) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%w %d", errStatus, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, authn.MaxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > authn.MaxJWKSBytes {
		return nil, fmt.Errorf("response exceeds %d bytes", authn.MaxJWKSBytes)
	}
	return body, nil
}

func resultOf(err error) string {
	var fe *FetchError
	if errors.As(err, &fe) {
		return fe.Stage + "_error"
	}
	return "error"
}
