package e2e

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// The gateway binary prints its flags, each with its environment
// variable, with -h and exits 0; without its pepper it refuses to start.
func TestGatewayBinaryFlags(t *testing.T) {
	t.Parallel()
	bin := gwtest.GatewayBinary(t)
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-h")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gateway -h: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"-http-addr", "-public-url", "-account-addr", "-link-addr", "-nats-url",
		"-derivation-pepper-file", "-log-format", "-log-level", "[AMS_GATEWAY_HTTP_ADDR]", "AMS_GATEWAY_DERIVATION_PEPPER"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("gateway -h lacks %q:\n%s", want, stderr.String())
		}
	}
	cmd = exec.Command(bin, "-http-addr", "127.0.0.1:0")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "derivation-pepper is required") {
		t.Errorf("gateway without a pepper: %v %s, want a refusal", err, out)
	}
}
