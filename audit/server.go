package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/wardmesh/ward/authn/jwks"
	"github.com/wardmesh/ward/ca"
)

// ServerState is what a running `ward serve` reports on its debug server
// that a config directory cannot tell: the live CA and JWKS health.
type ServerState struct {
	CA   *ca.Status
	JWKS []jwks.Status
}

// maxDebugBytes bounds one debug response (100k issuance records are
// about 30 MiB).
const maxDebugBytes = 64 << 20

var errNotFound = errors.New("not found")

// FetchServer reads /debug/ca, /debug/ca/issued and /debug/jwks from a
// control plane's debug address (e.g. http://127.0.0.1:15014). The
// issuance records are attached to the CA status; a server without
// /debug/ca/issued (404) leaves them nil.
func FetchServer(ctx context.Context, hc *http.Client, base string) (*ServerState, error) {
	base = strings.TrimSuffix(base, "/")
	st := &ServerState{CA: &ca.Status{}, JWKS: []jwks.Status{}}
	if err := getDebug(ctx, hc, base+"/debug/ca", st.CA); err != nil {
		return nil, err
	}
	issued := &ca.IssuedReport{}
	switch err := getDebug(ctx, hc, base+"/debug/ca/issued", issued); {
	case errors.Is(err, errNotFound):
	case err != nil:
		return nil, err
	default:
		st.CA.Issued = issued
	}
	if err := getDebug(ctx, hc, base+"/debug/jwks", &st.JWKS); err != nil {
		return nil, err
	}
	return st, nil
}

func getDebug(ctx context.Context, hc *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDebugBytes))
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("fetch %s: %w", url, errNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	return nil
}
