package benchkit

import (
	"os/exec"
	"syscall"
)

// dieWithKit makes the child process get SIGKILL when the kit's thread
// that started it ends, so that a kit killed mid-run (Ctrl-C twice, a
// closed pipe) leaves no gateway behind to reconnect to the next run's
// NATS on a reused port.
func dieWithKit(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
