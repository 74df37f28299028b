// Package grpce2e tests the public gRPC API (package ams.v1, spec 5.4) end
// to end: real gateways (gwtest) serving gRPC on 127.0.0.1 sockets, the
// account and link services, NATS, and for comparison the HTTP control
// plane and WebSocket participants. Test names carry the conformance items
// (C68…C71) of spec 7 they check.
package grpce2e

import (
	"os"
	"testing"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

func TestMain(m *testing.M) { os.Exit(gwtest.Main(m)) }
