package enforcer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/rampart-io/rampart/enforcer/extauthz"
	"github.com/rampart-io/rampart/enforcer/framing"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Listeners are what Serve serves on. GRPC is needed in ext_authz_grpc mode
// only. TLS, when configured, is added by Serve.
type Listeners struct {
	HTTP net.Listener
	GRPC net.Listener
}

// Run listens on the configured addresses and serves until ctx ends.
func (e *Enforcer) Run(ctx context.Context) error {
	ls, err := e.Listen()
	if err != nil {
		return err
	}
	return e.Serve(ctx, ls)
}

// Listen binds the configured addresses: listen, and ext_authz's
// grpc_listen in ext_authz_grpc mode. Serve takes them over.
func (e *Enforcer) Listen() (Listeners, error) {
	var ls Listeners
	var err error
	if ls.HTTP, err = net.Listen("tcp", e.cfg.Listen); err != nil {
		return Listeners{}, fmt.Errorf("enforcer: %w", err)
	}
	if e.cfg.Enabled(ModeExtAuthzGRPC) {
		if ls.GRPC, err = net.Listen("tcp", e.cfg.ExtAuthz.GRPCListen); err != nil {
			ls.HTTP.Close()
			return Listeners{}, fmt.Errorf("enforcer: %w", err)
		}
	}
	return ls, nil
}

// Serve serves on ls until ctx ends, then shuts down gracefully, letting
// requests in flight finish (and be recorded). It closes the listeners.
func (e *Enforcer) Serve(ctx context.Context, ls Listeners) error {
	if e.cfg.Enabled(ModeExtAuthzGRPC) && ls.GRPC == nil {
		ls.HTTP.Close()
		return errors.New("enforcer: ext_authz_grpc mode needs a gRPC listener")
	}
	srv := e.httpServer()
	fo := framing.Options{MaxHeaderBytes: e.cfg.MaxHeaderBytes, HandshakeTimeout: e.cfg.Timeouts.ReadHeader, OnRefuse: e.refused}
	var hl net.Listener = framing.Listen(ls.HTTP, fo)
	if e.tls != nil {
		hl = framing.ListenTLS(ls.HTTP, e.tls, fo)
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(hl) }()
	e.log.Info("listening", "addr", ls.HTTP.Addr().String(), "tls", e.tls != nil)
	var gs *grpc.Server
	if ls.GRPC != nil {
		gs = e.grpcServer()
		go func() { errc <- gs.Serve(ls.GRPC) }()
		e.log.Info("ext_authz gRPC listening", "addr", ls.GRPC.Addr().String())
	}
	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), e.cfg.Timeouts.Shutdown)
	defer cancel()
	if gs != nil {
		stopped := make(chan struct{})
		go func() { gs.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-sctx.Done():
			gs.Stop()
		}
	}
	err := srv.Shutdown(sctx)
	if serveErr != nil {
		return fmt.Errorf("enforcer: serve: %w", serveErr)
	}
	if err != nil {
		return fmt.Errorf("enforcer: shutdown: %w", err)
	}
	return nil
}

func (e *Enforcer) httpServer() *http.Server {
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(e.tls != nil)
	protos.SetUnencryptedHTTP2(e.tls == nil && e.cfg.H2C)
	t := e.cfg.Timeouts
	return &http.Server{
		Handler:           e.Handler(),
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    e.cfg.MaxHeaderBytes,
		Protocols:         &protos,
		TLSConfig:         e.tls,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelWarn),
	}
}

func (e *Enforcer) grpcServer() *grpc.Server {
	opts := []grpc.ServerOption{
		// A check carries the body (up to max_body_bytes) and the headers.
		grpc.MaxRecvMsgSize(int(e.cfg.MaxBodyBytes)*2 + e.cfg.MaxHeaderBytes + 64<<10),
		grpc.ConnectionTimeout(e.cfg.Timeouts.ReadHeader),
	}
	if e.tls != nil {
		c := e.tls.Clone()
		c.NextProtos = []string{"h2"}
		opts = append(opts, grpc.Creds(credentials.NewTLS(c)))
	}
	gs := grpc.NewServer(opts...)
	extauthz.Register(gs, authorizer{e})
	return gs
}
