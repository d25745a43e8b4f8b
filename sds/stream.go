package sds

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"strconv"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// SecretType is the type URL of SDS resources.
const SecretType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

// view is the published secrets, the current version and the channel the
// next update closes.
func (s *Server) view() (map[string]*secret, string, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.secrets), "sds-" + strconv.FormatUint(s.version, 10), s.changed
}

// subscription is what one stream asked for and was sent. Both protocols
// answer one response at a time: the next goes out once the proxy has
// answered (ACK or NACK) the last, with whatever changed meanwhile; a
// NACKed version is not sent again.
type subscription struct {
	names    map[string]bool
	wildcard bool
	sent     map[string]string // name → version sent on this stream
	nonce    uint64
	last     string // nonce of the last response
	waiting  bool   // the last response is unanswered
}

func newSubscription() *subscription {
	return &subscription{names: map[string]bool{}, sent: map[string]string{}}
}

// wants lists the subscribed names that exist, sorted.
func (sub *subscription) wants(secrets map[string]*secret) []string {
	var out []string
	for n := range secrets {
		if sub.wildcard || sub.names[n] {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// changed lists the wanted names whose version this stream has not sent.
func (sub *subscription) changed(secrets map[string]*secret) []string {
	var out []string
	for _, n := range sub.wants(secrets) {
		if sub.sent[n] != secrets[n].version {
			out = append(out, n)
		}
	}
	return out
}

// answer records the nonce of a request: it answers the last response
// (true), or is stale (false: it answers a superseded one).
func (sub *subscription) answer(nonce string) bool {
	if nonce == "" || nonce == sub.last {
		sub.waiting = false
		return true
	}
	return false
}

func (sub *subscription) nextNonce() string {
	sub.nonce++
	sub.last = strconv.FormatUint(sub.nonce, 10)
	sub.waiting = true
	return sub.last
}

func checkType(url string) error {
	if url != "" && url != SecretType {
		return status.Errorf(codes.InvalidArgument, "sds serves only %s", SecretType)
	}
	return nil
}

// StreamSecrets serves state-of-the-world SDS: each response carries every
// subscribed secret, sent when one of them is new to the stream.
func (s *Server) StreamSecrets(st secretservice.SecretDiscoveryService_StreamSecretsServer) error {
	reqs, errc := receive(st.Context(), st.Recv)
	sub := newSubscription()
	subscribed := false
	for {
		secrets, version, changed := s.view()
		if subscribed && !sub.waiting && len(sub.changed(secrets)) > 0 {
			if err := s.sendSotW(st, sub, secrets, version); err != nil {
				return err
			}
		}
		select {
		case <-st.Context().Done():
			return nil
		case err := <-errc:
			return endOf(err)
		case <-changed:
		case r := <-reqs:
			if err := checkType(r.GetTypeUrl()); err != nil {
				return err
			}
			if !sub.answer(r.GetResponseNonce()) {
				continue // stale: the proxy will answer the newer response
			}
			if d := r.GetErrorDetail(); d != nil {
				s.log.Warn("secret rejected", "names", r.GetResourceNames(), "version", r.GetVersionInfo(), "detail", d.GetMessage())
			}
			subscribed = true
			sub.wildcard = len(r.GetResourceNames()) == 0
			sub.names = map[string]bool{}
			for _, n := range r.GetResourceNames() {
				sub.names[n] = true
			}
			for n := range sub.sent {
				if !sub.wildcard && !sub.names[n] {
					delete(sub.sent, n) // resent if subscribed again
				}
			}
		}
	}
}

func (s *Server) sendSotW(st secretservice.SecretDiscoveryService_StreamSecretsServer, sub *subscription, secrets map[string]*secret, version string) error {
	names := sub.wants(secrets)
	resp := &discovery.DiscoveryResponse{VersionInfo: version, TypeUrl: SecretType, Nonce: sub.nextNonce()}
	for _, n := range names {
		resp.Resources = append(resp.Resources, secrets[n].any)
		sub.sent[n] = secrets[n].version
	}
	if err := st.Send(resp); err != nil {
		return err
	}
	s.pushed(names)
	return nil
}

// DeltaSecrets serves incremental SDS: each response carries the
// subscribed secrets the stream does not have in their current version.
func (s *Server) DeltaSecrets(st secretservice.SecretDiscoveryService_DeltaSecretsServer) error {
	reqs, errc := receive(st.Context(), st.Recv)
	sub := newSubscription()
	first := true
	for {
		secrets, version, changed := s.view()
		if names := sub.changed(secrets); !sub.waiting && len(names) > 0 {
			resp := &discovery.DeltaDiscoveryResponse{SystemVersionInfo: version, TypeUrl: SecretType, Nonce: sub.nextNonce()}
			for _, n := range names {
				resp.Resources = append(resp.Resources, &discovery.Resource{Name: n, Version: secrets[n].version, Resource: secrets[n].any})
				sub.sent[n] = secrets[n].version
			}
			if err := st.Send(resp); err != nil {
				return err
			}
			s.pushed(names)
		}
		select {
		case <-st.Context().Done():
			return nil
		case err := <-errc:
			return endOf(err)
		case <-changed:
		case r := <-reqs:
			if err := checkType(r.GetTypeUrl()); err != nil {
				return err
			}
			if sub.answer(r.GetResponseNonce()) && r.GetErrorDetail() != nil {
				s.log.Warn("secret rejected", "nonce", r.GetResponseNonce(), "detail", r.GetErrorDetail().GetMessage())
			}
			if first {
				maps.Copy(sub.sent, r.GetInitialResourceVersions()) // what a reconnecting proxy already holds
				first = false
			}
			deltaSubscribe(sub, r)
		}
	}
}

// deltaSubscribe applies a delta request's subscription changes ("*" is
// the wildcard).
func deltaSubscribe(sub *subscription, r *discovery.DeltaDiscoveryRequest) {
	for _, n := range r.GetResourceNamesSubscribe() {
		if n == "*" {
			sub.wildcard = true
		} else {
			sub.names[n] = true
		}
	}
	for _, n := range r.GetResourceNamesUnsubscribe() {
		if n == "*" {
			sub.wildcard = false
		} else {
			delete(sub.names, n)
		}
		delete(sub.sent, n)
	}
}

// FetchSecrets answers a unary request with the named secrets (all of
// them when none are named).
func (s *Server) FetchSecrets(_ context.Context, r *discovery.DiscoveryRequest) (*discovery.DiscoveryResponse, error) {
	if err := checkType(r.GetTypeUrl()); err != nil {
		return nil, err
	}
	secrets, version, _ := s.view()
	sub := newSubscription()
	sub.wildcard = len(r.GetResourceNames()) == 0
	for _, n := range r.GetResourceNames() {
		sub.names[n] = true
	}
	resp := &discovery.DiscoveryResponse{VersionInfo: version, TypeUrl: SecretType}
	for _, n := range sub.wants(secrets) {
		resp.Resources = append(resp.Resources, secrets[n].any)
	}
	return resp, nil
}

// endOf is a handler's result when Recv failed with err: the proxy
// closing its side (io.EOF) is a normal end.
func endOf(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

func (s *Server) pushed(names []string) {
	if s.cfg.OnPush != nil {
		s.cfg.OnPush(names)
	}
}

// receive reads a stream's requests into a channel until Recv fails (the
// stream ended); the error goes to errc. The goroutine ends with the
// stream: Recv fails once the handler has returned.
func receive[T any](ctx context.Context, recv func() (*T, error)) (<-chan *T, <-chan error) {
	out, errc := make(chan *T), make(chan error, 1)
	go func() {
		for {
			r, err := recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case out <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, errc
}
