// Package e2e tests the gateway's control plane end to end (spec 3): real
// account and link services over gRPC, a real NATS server, real HTTP, one
// or more gateways (gwtest). Test names carry the conformance items
// (C1…C20) of spec 7 they check.
package e2e

import (
	"os"
	"testing"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

func TestMain(m *testing.M) { os.Exit(gwtest.Main(m)) }
