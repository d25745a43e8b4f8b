package webhook

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/wardmesh/ward/ca"
)

// maxBody caps an AdmissionReview (the API server's own limit is 3 MiB
// objects; a review carries object and oldObject).
const maxBody = 8 << 20

// Config configures a Server.
type Config struct {
	// Addr is the listen address (default ":15017"); Listener, when set,
	// is used instead.
	Addr     string
	Listener net.Listener
	// GetCertificate returns the serving certificate (see FromCA).
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Client looks up namespaces for injection decisions.
	Client kubernetes.Interface
	Inject InjectConfig
	Log    *slog.Logger
}

// Server serves /inject, /validate and /healthz over TLS 1.2+.
type Server struct {
	cfg Config
	mux *http.ServeMux
}

// New checks cfg and builds the handlers.
func New(cfg Config) (*Server, error) {
	if cfg.GetCertificate == nil || cfg.Client == nil {
		return nil, errors.New("webhook: GetCertificate and Client are required")
	}
	if cfg.Addr == "" {
		cfg.Addr = ":15017"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.mux.HandleFunc("POST /inject", s.review(s.inject))
	s.mux.HandleFunc("POST /validate", s.review(s.validate))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	return s, nil
}

// Handler returns the webhook's HTTP handler (plaintext; Run adds TLS).
func (s *Server) Handler() http.Handler { return s.mux }

// Run serves until ctx ends, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.Addr); err != nil {
			return fmt.Errorf("webhook: listen %s: %w", s.cfg.Addr, err)
		}
	}
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       90 * time.Second,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.cfg.GetCertificate},
		ErrorLog:          slog.NewLogLogger(s.cfg.Log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("webhook: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// FromCA returns a GetCertificate serving the control plane's certificate
// issued by Ward's CA (its ServerNames must include the webhook Service's
// DNS name). The CA renews it at half its life and whenever the signing
// root changes, so the webhook's certificate rotates without a restart.
func FromCA(c *ca.CA) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	base := c.ServerTLSConfig()
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		cfg, err := base.GetConfigForClient(hello)
		if err != nil {
			return nil, err
		}
		if len(cfg.Certificates) == 0 {
			return nil, errors.New("webhook: ca returned no serving certificate")
		}
		return &cfg.Certificates[0], nil
	}
}

// review decodes an AdmissionReview, calls h and writes the response with
// the request's UID. A request that cannot be decoded gets 400.
func (s *Server) review(h func(context.Context, *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil || len(body) > maxBody {
			http.Error(w, "request body unreadable or too large", http.StatusBadRequest)
			return
		}
		var rev admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &rev); err != nil || rev.Request == nil {
			http.Error(w, "not an admission.k8s.io/v1 AdmissionReview", http.StatusBadRequest)
			return
		}
		resp := h(r.Context(), rev.Request)
		resp.UID = rev.Request.UID
		out := admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Response: resp}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}
}

func deny(code int32, msg string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Status: metav1.StatusFailure, Code: code, Message: msg, Reason: metav1.StatusReasonInvalid}}
}
