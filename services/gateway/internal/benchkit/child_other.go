//go:build !linux

package benchkit

import "os/exec"

// dieWithKit is Linux only (Pdeathsig); elsewhere Close stops children.
func dieWithKit(*exec.Cmd) {}
