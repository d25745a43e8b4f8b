package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Handler acts on one validated event; its error is the reply's.
type Handler func(ctx context.Context, ev Event) error

// ServerConfig configures a Server.
type ServerConfig struct {
	// Path of the Unix socket (default DefaultSocket). Its directory is
	// created 0700 if missing; a stale socket file is replaced.
	Path    string
	Handler Handler
	// Timeout bounds one exchange (default 10s).
	Timeout time.Duration
	Log     *slog.Logger
}

// Server is the node proxy's end: it accepts the plugin's events on a
// Unix socket that only root can connect to (mode 0600).
type Server struct {
	cfg ServerConfig
	l   net.Listener
}

// Listen opens the socket.
func Listen(cfg ServerConfig) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("cni: Handler is required")
	}
	if cfg.Path == "" {
		cfg.Path = DefaultSocket
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("cni: socket directory: %w", err)
	}
	if err := os.Remove(cfg.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cni: stale socket: %w", err)
	}
	l, err := listen0600(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("cni: listen %s: %w", cfg.Path, err)
	}
	return &Server{cfg: cfg, l: l}, nil
}

// listen0600 listens on path and makes the socket 0600 (root only). The
// socket's directory, created 0700 by Listen when missing, covers the
// moment between bind and chmod.
func listen0600(path string) (net.Listener, error) {
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.cfg.Path }

// Serve handles connections until ctx ends, then closes the socket and
// waits for the exchanges in flight.
func (s *Server) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { s.l.Close() })
	defer stop()
	for {
		c, err := s.l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("cni: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handle(ctx, c)
		}()
	}
}

// Close closes the socket (Serve returns).
func (s *Server) Close() error { return s.l.Close() }

func (s *Server) handle(ctx context.Context, c net.Conn) {
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	dl, _ := ctx.Deadline()
	_ = c.SetDeadline(dl)
	var ev Event
	err := decode(c, &ev)
	if err == nil {
		err = ev.Validate()
	}
	if err == nil {
		err = s.cfg.Handler(ctx, ev)
	}
	var r Reply
	if err != nil {
		r.Error = err.Error()
		s.cfg.Log.Warn("cni: event refused", "command", ev.Command, "namespace", ev.Namespace, "name", ev.Name, "error", err)
	}
	if err := json.NewEncoder(c).Encode(r); err != nil {
		s.cfg.Log.Warn("cni: reply not sent", "namespace", ev.Namespace, "name", ev.Name, "error", err)
	}
}
