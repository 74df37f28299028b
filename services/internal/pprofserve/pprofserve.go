// Package pprofserve serves the runtime profiles of a process on an admin
// listener of their own: the gateway's -pprof-addr, and the benchmark
// kit's NATS worker.
package pprofserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// Serve serves the runtime profiles (/debug/pprof/) on their own admin
// listener at addr until ctx is done. It is opt-in, for benchmarks and
// investigations; never expose it publicly. It returns once the listener
// is bound, with the address it is bound to (addr may name port 0), and a
// function that waits for the server to stop after ctx is done.
func Serve(ctx context.Context, addr string, log *slog.Logger) (bound string, wait func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("listen pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof listener stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Info("pprof serving", "addr", lis.Addr().String())
	return lis.Addr().String(), func() { <-done }, nil
}
