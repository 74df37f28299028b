package benchkit

import (
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProcessRunDelay reads this process's run-queue wait: a thread that
// sleeps in the kernel starts a new run on a core at each wake, so the
// count must grow by at least the number of sleeps, and the wait must not
// go back.
func TestProcessRunDelay(t *testing.T) {
	t.Parallel()
	pid := os.Getpid()
	w0, n0, err := ProcessRunDelay(pid)
	if err != nil {
		t.Fatalf("ProcessRunDelay: %v", err)
	}
	sleepInKernel(20)
	w1, n1, err := ProcessRunDelay(pid)
	if err != nil {
		t.Fatalf("ProcessRunDelay: %v", err)
	}
	if n1-n0 < 20 {
		t.Errorf("runs went from %d to %d over 20 sleeps; want at least 20 more", n0, n1)
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

// sleepInKernel sleeps n times for a millisecond on one thread, in the
// kernel: a time.Sleep may be served by a thread that never stops.
func sleepInKernel(n int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for range n {
		ts := syscall.Timespec{Nsec: int64(time.Millisecond)}
		_ = syscall.Nanosleep(&ts, nil)
	}
}
