// Package natstest starts embedded NATS servers (with JetStream) for
// tests: in process, on no port, with their store in the test's temporary
// directory, stopped when the test ends.
package natstest

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/amsrouter/ams/services/internal/natsserver"
)

// Start starts a server for t.
func Start(t testing.TB) *natsserver.Server {
	t.Helper()
	srv, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// ConnectTo returns a connection to srv, closed when t ends.
func ConnectTo(t testing.TB, srv *natsserver.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect("", srv.ConnectOption())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Connect starts a server for t and returns a connection to it.
func Connect(t testing.TB) *nats.Conn {
	t.Helper()
	return ConnectTo(t, Start(t))
}
