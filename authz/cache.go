package authz

import (
	"encoding/binary"
	"strings"
	"sync"
)

// decisionCache memoises decisions of one Prepared (one policy set of one
// snapshot: a new snapshot builds a new engine, so entries never outlive
// the policies they came from). Its key is the Prepared's inputPlan key:
// exactly the input attributes the workload's compiled rules read,
// rendered as the input renders them, so two requests with equal keys are
// evaluated on equal inputs and decided identically. It is bounded: when
// full, it is cleared (two generations would keep hot entries; clearing
// keeps the code obviously correct).
type decisionCache struct {
	max int

	mu sync.RWMutex
	m  map[string]Decision
}

func newDecisionCache(max int) *decisionCache {
	return &decisionCache{max: max, m: map[string]Decision{}}
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
