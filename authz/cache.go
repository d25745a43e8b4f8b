package authz

import (
	"encoding/binary"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// decisionCache memoises decisions of one Prepared (one policy set of one
// snapshot: a new snapshot builds a new engine, so entries never outlive
// the policies they came from). The key holds exactly the request
// attributes the policies can read — every Attr they test, the headers and
// claim paths they name — so two requests with equal keys are decided
// identically. It is bounded: when full, it is cleared (two generations
// would keep hot entries; clearing keeps the code obviously correct).
type decisionCache struct {
	attrs   map[Attr]bool
	claims  [][]string
	headers []string // sorted
	max     int

	mu sync.RWMutex
	m  map[string]Decision
}

func newDecisionCache(ps []*Policy, max int) *decisionCache {
	c := &decisionCache{attrs: map[Attr]bool{}, max: max, m: map[string]Decision{}}
	seen := map[string]bool{}
	hs := map[string]bool{}
	for _, p := range ps {
		for _, r := range p.Rules {
			for _, m := range r.all() {
				c.attrs[m.Attr] = true
				if m.Attr == AttrHeader && !hs[m.Key[0]] {
					hs[m.Key[0]] = true
					c.headers = append(c.headers, m.Key[0])
				}
				if m.Attr == AttrClaim {
					k := strings.Join(m.Key, "\x00")
					if !seen[k] {
						seen[k] = true
						c.claims = append(c.claims, m.Key)
					}
				}
			}
		}
	}
	sort.Strings(c.headers)
	return c
}

func (c *decisionCache) get(key string) (Decision, bool) {
	c.mu.RLock()
	d, ok := c.m[key]
	c.mu.RUnlock()
	return d, ok
}

func (c *decisionCache) put(key string, d Decision) {
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[key] = d
	c.mu.Unlock()
}

// keyWriter appends length-prefixed fields, so no value can forge a
// separator.
type keyWriter struct{ b []byte }

func (w *keyWriter) add(s string) {
	w.b = binary.AppendUvarint(w.b, uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *keyWriter) flag(x bool) {
	if x {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

// key renders the attributes the policies read.
func (c *decisionCache) key(r *Request) string {
	w := &keyWriter{}
	w.flag(r.HTTP != nil)
	c.connKey(w, r)
	if r.HTTP != nil {
		c.httpKey(w, r.HTTP)
	}
	c.authKey(w, r.Auth)
	return string(w.b)
}

func (c *decisionCache) connKey(w *keyWriter, r *Request) {
	if c.attrs[AttrPrincipal] || c.attrs[AttrNamespace] || c.attrs[AttrServiceAccount] || c.attrs[AttrTrustDomain] {
		w.add(strings.TrimPrefix(r.Source.Principal, "spiffe://"))
	}
	if c.attrs[AttrSourceIP] {
		w.add(r.Source.IP)
	}
	if c.attrs[AttrRemoteIP] {
		w.add(r.RemoteIP)
		w.add(r.Source.IP)
	}
	if c.attrs[AttrDestIP] {
		w.add(r.Destination.IP)
	}
	if c.attrs[AttrDestPort] {
		w.b = binary.AppendUvarint(w.b, uint64(r.Destination.Port))
	}
	if c.attrs[AttrSNI] {
		w.add(r.SNI)
	}
}

func (c *decisionCache) httpKey(w *keyWriter, h *HTTPRequest) {
	if c.attrs[AttrMethod] {
		w.add(h.Method)
	}
	if c.attrs[AttrPath] {
		w.add(h.matchPath())
	}
	if c.attrs[AttrHost] {
		w.add(strings.ToLower(h.Host))
	}
	for _, name := range c.headers {
		v, ok := headerValue(h.Headers, name)
		w.flag(ok)
		w.add(name)
		w.add(v)
	}
}

func (c *decisionCache) authKey(w *keyWriter, a *Auth) {
	add, flag := w.add, w.flag
	flag(a != nil)
	if a == nil {
		return
	}
	if c.attrs[AttrRequestPrincipal] {
		add(a.Principal)
	}
	if c.attrs[AttrAudience] {
		add(strconv.Itoa(len(a.Audiences)))
		for _, x := range a.Audiences {
			add(x)
		}
	}
	if c.attrs[AttrPresenter] {
		add(a.Presenter)
	}
	for _, path := range c.claims {
		v, ok := claimAt(a.Claims, path)
		flag(ok)
		j, _ := json.Marshal(v) // claims are JSON values
		add(string(j))
	}
}

// headerValue looks a header up by lower-case name in a map whose keys
// may have any case, as Request.Input does.
func headerValue(hs map[string]string, name string) (string, bool) {
	if v, ok := hs[name]; ok {
		return v, true
	}
	for k, v := range hs {
		if strings.ToLower(k) == name {
			return v, true
		}
	}
	return "", false
}

func claimAt(claims map[string]any, path []string) (any, bool) {
	var v any = claims
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}
