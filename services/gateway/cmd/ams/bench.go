package main

import (
	"context"
	"os"
	"os/exec"

	"github.com/amsrouter/ams/services/gateway/internal/benchkit"
)

// runBench runs the benchmark kit (package benchkit): `ams bench
// <scenario|all> [flags]`. Client workers, which hold connections beyond
// this process's file limit, are this binary as `ams bench worker`.
func runBench(ctx context.Context, e env, args []string) error {
	worker := func() *exec.Cmd {
		self, err := os.Executable()
		if err != nil {
			self = os.Args[0]
		}
		return exec.Command(self, "bench", "worker")
	}
	return benchkit.Main(ctx, args, e.getenv, e.stdout, e.stderr, worker)
}
