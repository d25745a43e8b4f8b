package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/wardmesh/ward/mesh"
)

// DefaultProviderQuery is the rule a rego provider is asked for when its
// config names none (opa-envoy-plugin's default path).
const DefaultProviderQuery = "data.envoy.authz.allow"

type provider struct {
	name     string
	external bool // envoyExtAuthzGrpc: enforced by its own Envoy filter
	query    rego.PreparedEvalQuery
}

func compileProviders(list []mesh.ExtensionProvider) (map[string]*provider, error) {
	out := map[string]*provider{}
	for _, ep := range list {
		if !ep.IsAuthorization() {
			continue // a telemetry provider
		}
		p := &provider{name: ep.Name, external: ep.Rego == nil}
		if ep.Rego != nil {
			pq, err := PrepareProvider(ep.Name, ep.Rego.Module, ep.Rego.Query)
			if err != nil {
				return nil, err
			}
			p.query = pq
		}
		out[ep.Name] = p
	}
	return out, nil
}

// PrepareProvider compiles an opa-envoy-plugin style module and prepares
// its query (default data.envoy.authz.allow) once.
func PrepareProvider(name, module, query string) (rego.PreparedEvalQuery, error) {
	if query == "" {
		query = DefaultProviderQuery
	}
	pq, err := rego.New(rego.Query(query), rego.Module(name+".rego", module)).PrepareForEval(context.Background())
	if err != nil {
		return rego.PreparedEvalQuery{}, fmt.Errorf("compile rego provider %q: %w", name, err)
	}
	return pq, nil
}

func (p *provider) eval(ctx context.Context, req *Request) (*ProviderResult, error) {
	cr := req.Check
	if cr == nil {
		cr = CheckFromRequest(req)
	}
	in, err := EnvoyInput(cr)
	if err != nil {
		return nil, err
	}
	return EvalProvider(ctx, p.query, in)
}

// EvalProvider evaluates a prepared opa-envoy-plugin style query on input
// and interprets the result: a boolean, or an object with allowed,
// headers, response_headers_to_add, request_headers_to_remove, body,
// http_status and dynamic_metadata. An undefined result denies.
func EvalProvider(ctx context.Context, pq rego.PreparedEvalQuery, input map[string]any) (*ProviderResult, error) {
	v, err := ast.InterfaceToValue(input)
	if err != nil {
		return nil, fmt.Errorf("convert provider input: %w", err)
	}
	rs, err := pq.Eval(ctx, rego.EvalParsedInput(v))
	if err != nil {
		return nil, fmt.Errorf("evaluate provider: %w", err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return &ProviderResult{Allowed: false}, nil
	}
	return ParseProviderResult(rs[0].Expressions[0].Value)
}

// HeaderValue is one header to set.
type HeaderValue struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// ProviderResult is an opa-envoy-plugin style decision.
type ProviderResult struct {
	Allowed                bool           `json:"allowed"`
	Headers                []HeaderValue  `json:"headers,omitempty"`
	ResponseHeadersToAdd   []HeaderValue  `json:"response_headers_to_add,omitempty"`
	RequestHeadersToRemove []string       `json:"request_headers_to_remove,omitempty"`
	Body                   string         `json:"body,omitempty"`
	HTTPStatus             int            `json:"http_status,omitempty"`
	DynamicMetadata        map[string]any `json:"dynamic_metadata,omitempty"`
}

// ParseProviderResult interprets a boolean or object result.
func ParseProviderResult(v any) (*ProviderResult, error) {
	switch x := v.(type) {
	case bool:
		return &ProviderResult{Allowed: x}, nil
	case map[string]any:
		return parseResultObject(x)
	}
	return nil, fmt.Errorf("provider result is %T, want boolean or object", v)
}

func parseResultObject(m map[string]any) (*ProviderResult, error) {
	r := &ProviderResult{}
	var ok bool
	if r.Allowed, ok = m["allowed"].(bool); !ok {
		return nil, errors.New("provider result: \"allowed\" must be a boolean")
	}
	var err error
	if r.Headers, err = parseHeaders(m["headers"]); err != nil {
		return nil, fmt.Errorf("provider result: headers: %w", err)
	}
	if r.ResponseHeadersToAdd, err = parseHeaders(m["response_headers_to_add"]); err != nil {
		return nil, fmt.Errorf("provider result: response_headers_to_add: %w", err)
	}
	if rm, ok := m["request_headers_to_remove"]; ok {
		list, ok := rm.([]any)
		if !ok {
			return nil, errors.New("provider result: request_headers_to_remove must be an array")
		}
		for _, x := range list {
			s, ok := x.(string)
			if !ok {
				return nil, errors.New("provider result: request_headers_to_remove must hold strings")
			}
			r.RequestHeadersToRemove = append(r.RequestHeadersToRemove, s)
		}
	}
	if b, ok := m["body"]; ok {
		if r.Body, ok = b.(string); !ok {
			return nil, errors.New("provider result: body must be a string")
		}
	}
	if s, ok := m["http_status"]; ok {
		n, ok := s.(json.Number)
		code, err := n.Int64()
		if !ok || err != nil || code < 100 || code > 599 {
			return nil, fmt.Errorf("provider result: http_status %v is not an HTTP status", s)
		}
		r.HTTPStatus = int(code)
	}
	if dm, ok := m["dynamic_metadata"]; ok {
		if r.DynamicMetadata, ok = dm.(map[string]any); !ok {
			return nil, errors.New("provider result: dynamic_metadata must be an object")
		}
	}
	return r, nil
}

// parseHeaders accepts {k: v}, {k: [v...]} or an array of such objects.
func parseHeaders(v any) ([]HeaderValue, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return headerObject(x)
	case []any:
		var out []HeaderValue
		for _, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("array element is %T, want object", e)
			}
			hs, err := headerObject(m)
			if err != nil {
				return nil, err
			}
			out = append(out, hs...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("is %T, want object or array", v)
}

func headerObject(m map[string]any) ([]HeaderValue, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []HeaderValue
	for _, k := range keys {
		switch val := m[k].(type) {
		case string:
			out = append(out, HeaderValue{k, val})
		case []any:
			for _, e := range val {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("header %q: values must be strings", k)
				}
				out = append(out, HeaderValue{k, s})
			}
		default:
			return nil, fmt.Errorf("header %q: value must be a string or array of strings", k)
		}
	}
	return out, nil
}
