// Command grpc-agent is an example AMS agent that talks over the gRPC
// public API (ams.v1 StreamService.Connect). It creates an account, joins
// the conversation of a magic link, and answers every line another
// participant streams (examples/ws-agent) by streaming it back in capitals,
// word by word. It leaves when the last other participant has left.
//
//	go run ./examples/grpc-agent -link '<magic link>' [-grpc localhost:9090]
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/amsrouter/ams/pkg/ams"
	"github.com/amsrouter/ams/pkg/wire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "grpc-agent:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	base := flag.String("url", envOr("AMS_URL", "http://localhost:8080"), "AMS gateway URL (control plane)")
	grpcAddr := flag.String("grpc", envOr("AMS_GRPC", "localhost:9090"), "AMS gateway gRPC address (stream plane)")
	link := flag.String("link", "", "magic link of the conversation to join (required)")
	flag.Parse()
	if *link == "" {
		flag.Usage()
		return errors.New("-link is required")
	}

	c := &ams.Client{BaseURL: *base}
	acct, err := c.CreateAccount(ctx, "grpc-agent-"+strings.ToLower(rand.Text()[:8]))
	if err != nil {
		return err
	}
	c.Namespace, c.Credential = acct.Namespace, acct.Credential

	s, err := c.Join(ctx, *link, ams.WithGRPC(*grpcAddr), ams.WithStreamName("shouter"),
		ams.WithPeerIdentity(wire.PeerIdentity{Kind: "agent", Client: "grpc-agent"}))
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Printf("joined as %s over gRPC\n", s.Joined().StreamName)

	peers := len(s.Joined().Peers)
	lines := map[string]*strings.Builder{} // per stream: the line so far
	answered := 0
	for {
		var ev wire.Event
		select {
		case e, ok := <-s.Events():
			if !ok {
				return errors.Join(errors.New("session ended"), s.Err())
			}
			ev = e
		case <-ctx.Done():
			return ctx.Err()
		}
		switch ev := ev.(type) {
		case wire.StreamJoined:
			peers++
		case wire.StreamLeft:
			if peers--; peers == 0 {
				fmt.Printf("answered %d lines; everyone left\n", answered)
				return s.Close()
			}
		case wire.Token:
			b := lines[ev.StreamID]
			if b == nil {
				b = &strings.Builder{}
				lines[ev.StreamID] = b
			}
			b.WriteString(ev.Data)
			if !strings.HasSuffix(b.String(), "\n") {
				continue
			}
			line := strings.TrimSpace(b.String())
			b.Reset()
			fmt.Printf("%s said: %s\n", ev.StreamName, line)
			words := strings.Fields(strings.ToUpper(line))
			for i, w := range words {
				if i > 0 {
					w = " " + w
				}
				if err := s.Send(ctx, w); err != nil {
					return err
				}
			}
			if err := s.Send(ctx, "!\n"); err != nil {
				return err
			}
			answered++
		}
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
