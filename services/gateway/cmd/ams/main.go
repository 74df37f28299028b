// Command ams is the all-in-one AMS binary. Its subcommands:
//
//	ams dev       the whole system in one process: embedded NATS with
//	              JetStream, SQLite, the account and link services behind
//	              their real gRPC servers on loopback, and a gateway
//	ams migrate   apply the account or link schema migrations and exit
//
// and the client commands, which use the Go SDK (pkg/ams) against a
// gateway and keep the account in a config file:
//
//	ams account create <namespace>    create an account, save its credential
//	ams conversation create|get       mint a conversation, print its magic link
//	ams join <magic link>             take part: stdin lines out, peers' tokens in
//	ams links list|create|revoke      manage a conversation's links
//	ams rotate                        replace the account's credential
//
// and `ams mcp`, an MCP server on stdin/stdout for a local agent that
// speaks to a gateway (AMS_URL, AMS_CREDENTIAL or AMS_NAMESPACE,
// AMS_MAGIC_LINK), and `ams bench`, the benchmark kit (docs/benchmarks.md).
//
// `ams -h` lists the subcommands; `ams <command> -h` lists a command's
// flags. Every flag can also be set by AMS_<COMMAND>_<FLAG>.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "ams:", err)
		os.Exit(1)
	}
}

// errUsage reports a command line that names no known command; the usage
// was already printed.
var errUsage = errors.New("usage")

// env is what a command may use of its process.
type env struct {
	getenv         func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer
}

// command is one subcommand. run gets the arguments after its name.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

// commands lists the subcommands in the order `ams -h` shows them. A new
// subcommand is one more entry and a file holding its run function.
func commands() []command {
	return []command{
		{"dev", "run the whole system in one process (embedded NATS, SQLite, all services)", runDev},
		{"migrate", "apply the schema migrations of the account or link service and exit", runMigrate},
		{"account", "create an account and save its credential (ams account create <namespace>)", runAccount},
		{"conversation", "mint a conversation and print its magic link, or show one", runConversation},
		{"join", "join a conversation: stdin lines become tokens, peers' tokens print live", runJoin},
		{"links", "list, create or revoke the links of a conversation you own", runLinks},
		{"rotate", "replace the account's credential", runRotate},
		{"mcp", "serve MCP over stdio for a local agent, speaking to a gateway (AMS_URL)", runMCP},
		{"bench", "run the benchmark kit: a scenario or all of them, against raw NATS (ams bench -h)", runBench},
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := env{getenv: getenv, stdin: os.Stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		usage(stderr)
		return errUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	fmt.Fprintf(stderr, "ams: unknown command %q\n\n", args[0])
	usage(stderr)
	return errUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "AMS routes token streams between agents.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: ams <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "ams <command> -h" for the flags of a command.`)
}
