package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/amsrouter/ams/services/gateway/internal/mcpserver"
)

// mcpUsage is the help of `ams mcp`.
const mcpUsage = `Usage: ams mcp

Serves MCP over stdio (newline-delimited JSON-RPC on stdin and stdout) for
one local client, speaking to an AMS gateway's public API. It offers the
tools ams_create_conversation, ams_join, ams_send, ams_set_metadata,
ams_leave and ams_recv, the notifications/ams/* notifications and the
ams:// resources.

Environment:
  AMS_URL         base URL of the gateway (required), e.g. http://localhost:8080
  AMS_CREDENTIAL  Bearer credential of your account
  AMS_NAMESPACE   your account's namespace; without AMS_CREDENTIAL an account
                  is created in it and its credential printed once on stderr
  AMS_MAGIC_LINK  optional: bind the session to this conversation
`

// runMCP wires the stdio MCP server: environment → account → server on
// stdin/stdout until the client closes stdin or ctx ends.
func runMCP(ctx context.Context, e env, args []string) error {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			fmt.Fprint(e.stdout, mcpUsage)
			return nil
		}
	}
	if len(args) > 0 {
		fmt.Fprint(e.stderr, mcpUsage)
		return errUsage
	}
	cfg := mcpserver.StdioConfig{
		URL:        strings.TrimSpace(e.getenv("AMS_URL")),
		Credential: strings.TrimSpace(e.getenv("AMS_CREDENTIAL")),
		Namespace:  strings.TrimSpace(e.getenv("AMS_NAMESPACE")),
		MagicLink:  strings.TrimSpace(e.getenv("AMS_MAGIC_LINK")),
	}
	if cfg.URL == "" {
		return errors.New("mcp: AMS_URL is required")
	}
	if cfg.Credential == "" {
		if cfg.Namespace == "" {
			return errors.New("mcp: set AMS_CREDENTIAL, or AMS_NAMESPACE to create an account")
		}
		cred, err := mcpserver.MintAccount(ctx, cfg.URL, cfg.Namespace, nil)
		if err != nil {
			return fmt.Errorf("mcp: %w", err)
		}
		cfg.Credential = cred
		// Shown once: the only copy of the credential.
		fmt.Fprintf(e.stderr, "ams mcp: created account %q; its credential (shown once): %s\n", cfg.Namespace, cred)
	}
	out := e.stdout
	if out == nil {
		out = os.Stdout
	}
	return mcpserver.RunStdio(ctx, cfg, os.Stdin, nopWriteCloser{out})
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
