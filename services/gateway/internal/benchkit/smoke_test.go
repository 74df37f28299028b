package benchkit

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// workerEnv makes the test binary a client worker (see TestMain).
const workerEnv = "AMS_BENCHKIT_TEST_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		if err := RunWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testWorker starts this test binary as a client worker.
func testWorker() *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), workerEnv+"=1")
	return cmd
}

// TestSmokeEveryScenario runs every scenario in its tiny size (seconds
// each) against real gateway processes, so that the kit does not rot. It
// checks that the kit runs and reports, not the figures.
func TestSmokeEveryScenario(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	var out, progress bytes.Buffer
	err := Main(ctx, []string{"all", "-tiny", "-progress", "1s"}, func(string) string { return "" }, &out, &progress, testWorker)
	if err != nil {
		t.Fatalf("ams bench all -tiny: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), progress.String())
	}
	for _, want := range []string{
		"#### fanout, closed loop", "#### fanout, fixed rate", "#### ingest, one stream as fast as it goes",
		"#### ingest, one stream at a fixed rate", "#### resume:", "#### idle:", "#### avalanche:", "#### kill:",
		"#### jitter:", "#### targets", "machine: ", "waiting for a core, µs per run",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// Every target is reported, met or not.
	for _, goal := range []string{"fan-out through two gateways", "p99 publish → deliver", "idle WebSocket connections",
		"one stream ≥ 1,000", "resuming 1,000 missed", "avalanche of 5,000", "kill: 100%", "jitter: 100%"} {
		if !strings.Contains(out.String(), goal) {
			t.Errorf("targets table lacks %q", goal)
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), progress.String())
	}
}

// TestProfilesOfShortPhases takes profiles of phases shorter than the
// captures (a tiny fixed-rate phase against a CPU profile of whole
// seconds; an avalanche over before its goroutine profile's time): the
// gateways stay up until every capture is taken.
func TestProfilesOfShortPhases(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	for _, scenario := range []string{"fanout", "avalanche"} {
		var out, progress bytes.Buffer
		err := Main(ctx, []string{scenario, "-tiny", "-profile", dir}, func(string) string { return "" }, &out, &progress, testWorker)
		if err != nil {
			t.Fatalf("ams bench %s -tiny -profile: %v\nstderr:\n%s", scenario, err, progress.String())
		}
		if strings.Contains(progress.String(), "connection refused") {
			t.Errorf("ams bench %s -tiny -profile: a capture found its gateway gone:\n%s", scenario, progress.String())
		}
	}
	for _, f := range []string{
		"fanout-2-gateways-fixed-rate-gw-0.cpu.pprof", "fanout-2-gateways-fixed-rate-gw-1.cpu.pprof",
		"fanout-2-gateways-fixed-rate-gw-1.goroutine.pprof", "fanout-2-gateways-fixed-rate-nats.cpu.pprof",
		"avalanche-reconnect-gw-0.cpu.pprof", "avalanche-reconnect-gw-1.goroutine.pprof",
	} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("profile %s: %v (want a non-empty file)", f, err)
		}
	}
}

func TestMainUsage(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if err := Main(t.Context(), []string{"-h"}, func(string) string { return "" }, &out, &errOut, nil); err != nil {
		t.Errorf("-h: %v", err)
	}
	for _, s := range Scenarios {
		if !strings.Contains(out.String(), s.Name) {
			t.Errorf("usage lacks %s", s.Name)
		}
	}
	if err := Main(t.Context(), []string{"nope"}, func(string) string { return "" }, &out, &errOut, nil); err == nil {
		t.Errorf("an unknown scenario is not an error")
	}
}
