// Package natsserver runs an embedded NATS server with JetStream, for the
// all-in-one binary and for tests. Tests get a real server on a random port
// (or in-process only); nothing here ever takes the standard port 4222.
package natsserver

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Options configures an embedded server.
type Options struct {
	// StoreDir is the JetStream directory (required).
	StoreDir string
	// Listen makes the server accept TCP clients on 127.0.0.1 at Port
	// (0 or -1 for a random port). Without it the server is in-process
	// only.
	Listen bool
	Port   int
	// MaxMemory and MaxStore bound JetStream (0: server defaults).
	MaxMemory, MaxStore int64
	// ServerName names the server (default "ams-embedded").
	ServerName string
	// NoJetStream runs the server without JetStream: core NATS only (for
	// tests of a deployment whose JetStream is unavailable).
	NoJetStream bool
}

// Server is a running embedded server.
type Server struct {
	*server.Server
}

// Start starts the server and waits until it is ready for connections.
func Start(o Options) (*Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("natsserver: StoreDir is required")
	}
	name := o.ServerName
	if name == "" {
		name = "ams-embedded"
	}
	opts := &server.Options{
		ServerName:         name,
		JetStream:          !o.NoJetStream,
		StoreDir:           o.StoreDir,
		JetStreamMaxMemory: o.MaxMemory,
		JetStreamMaxStore:  o.MaxStore,
		NoSigs:             true,
		NoLog:              true,
		Host:               "127.0.0.1",
		Port:               server.RANDOM_PORT,
		DontListen:         !o.Listen,
		MaxPayload:         2 << 20,
	}
	if o.Listen && o.Port > 0 {
		opts.Port = o.Port
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsserver: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("natsserver: not ready within 10s")
	}
	return &Server{Server: s}, nil
}

// URL is the client URL of a listening server.
func (s *Server) URL() string { return s.ClientURL() }

// ConnectOption returns the nats.Option that connects in-process.
func (s *Server) ConnectOption() nats.Option { return nats.InProcessServer(s.Server) }

// Stop shuts the server down and waits for it.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}
