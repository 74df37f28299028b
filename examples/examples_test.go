// The examples, built and run against a real AMS (`ams dev`): the
// WebSocket agent and the gRPC agent talk in one conversation.
package examples_test

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amsrouter/ams/pkg/ams/amstest"
)

func TestMain(m *testing.M) { os.Exit(amstest.Main(m)) }

func build(t *testing.T, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// TestAgentsConverse runs ws-agent, hands its magic link to grpc-agent,
// and checks that every question got its answer and both agents ended
// cleanly.
func TestAgentsConverse(t *testing.T) {
	sys := amstest.Start(t)
	if sys.GRPCAddr == "" {
		t.Fatal("ams dev serves no gRPC public API")
	}
	wsBin, grpcBin := build(t, "./ws-agent"), build(t, "./grpc-agent")

	ws := exec.Command(wsBin, "-url", sys.URL)
	stdout, err := ws.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var wsErr strings.Builder
	ws.Stderr = &wsErr
	if err := ws.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Process.Kill(); _ = ws.Wait() })
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var link string
	select {
	case link = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatalf("ws-agent printed no link; stderr: %s", wsErr.String())
	}
	if !strings.Contains(link, "/conversations/questions?t=") {
		t.Fatalf("ws-agent's first line = %q", link)
	}

	g := exec.Command(grpcBin, "-url", sys.URL, "-grpc", sys.GRPCAddr, "-link", link)
	gOut, err := g.CombinedOutput()
	if err != nil {
		t.Fatalf("grpc-agent: %v\n%s\nws-agent stderr: %s", err, gOut, wsErr.String())
	}
	var got []string
	for l := range lines {
		got = append(got, l)
	}
	if err := ws.Wait(); err != nil {
		t.Fatalf("ws-agent: %v\n%s", err, wsErr.String())
	}

	wsText := strings.Join(got, "\n")
	for _, want := range []string{
		"answer: WHAT IS THE STATUS OF THE RELEASE!",
		"answer: WHO OWNS THE MIGRATION!",
		"answer: WHEN DO WE SHIP!",
	} {
		if !strings.Contains(wsText, want) {
			t.Errorf("ws-agent output lacks %q:\n%s", want, wsText)
		}
	}
	for _, want := range []string{"joined as shouter over gRPC", "asker said: who owns the migration", "answered 3 lines; everyone left"} {
		if !strings.Contains(string(gOut), want) {
			t.Errorf("grpc-agent output lacks %q:\n%s", want, gOut)
		}
	}
}
