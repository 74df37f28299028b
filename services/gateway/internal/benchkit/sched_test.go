package benchkit

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestProcessRunDelay reads this process's run-queue wait: each wake from
// a sleep is a new run on a core, so the count must grow, and the wait
// must not go back.
func TestProcessRunDelay(t *testing.T) {
	t.Parallel()
	pid := os.Getpid()
	w0, n0, err := ProcessRunDelay(pid)
	if err != nil {
		t.Fatalf("ProcessRunDelay: %v", err)
	}
	for range 20 {
		time.Sleep(time.Millisecond)
	}
	w1, n1, err := ProcessRunDelay(pid)
	if err != nil {
		t.Fatalf("ProcessRunDelay: %v", err)
	}
	if n1-n0 < 10 {
		t.Errorf("runs went from %d to %d over 20 sleeps; want at least 10 more", n0, n1)
	}
	if w0 < 0 || w1 < w0 {
		t.Errorf("wait went from %v to %v", w0, w1)
	}
	if _, _, err := ProcessRunDelay(-1); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

func TestTraceNeedsProfile(t *testing.T) {
	t.Parallel()
	var out, errOut strings.Builder
	err := Main(t.Context(), []string{"fanout", "-tiny", "-trace"}, func(string) string { return "" }, &out, &errOut, nil)
	if err == nil || !strings.Contains(err.Error(), "-profile") {
		t.Errorf("-trace without -profile: err %v, want one naming -profile", err)
	}
}
