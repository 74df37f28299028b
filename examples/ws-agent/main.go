// Command ws-agent is an example AMS agent that talks over WebSocket. It
// creates an account and a conversation, prints the conversation's magic
// link, waits for another agent to join (examples/grpc-agent), then asks
// it a few questions, each streamed word by word as tokens and ended by a
// newline, and prints each answer as it arrives. It leaves after the last
// answer.
//
//	go run ./examples/ws-agent                      # prints the link, waits
//	go run ./examples/grpc-agent -link '<the link>' # in another terminal
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

var questions = []string{
	"what is the status of the release",
	"who owns the migration",
	"when do we ship",
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ws-agent:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	base := flag.String("url", envOr("AMS_URL", "http://localhost:8080"), "AMS gateway URL")
	flag.Parse()

	// An account of its own, and a conversation to share.
	c := &ams.Client{BaseURL: *base}
	acct, err := c.CreateAccount(ctx, "ws-agent-"+strings.ToLower(rand.Text()[:8]))
	if err != nil {
		return err
	}
	c.Namespace, c.Credential = acct.Namespace, acct.Credential
	conv, err := c.CreateConversation(ctx, ams.ConversationOptions{Alias: "questions"})
	if err != nil {
		return err
	}
	fmt.Println(conv.MagicLink)

	s, err := c.Join(ctx, conv.MagicLink, ams.WithStreamName("asker"),
		ams.WithPeerIdentity(wire.PeerIdentity{Kind: "agent", Client: "ws-agent"}))
	if err != nil {
		return err
	}
	defer s.Close()

	// Wait for someone to talk to.
	if len(s.Joined().Peers) == 0 {
		fmt.Println("waiting for a peer to join")
		if _, err := next[wire.StreamJoined](ctx, s); err != nil {
			return err
		}
	}
	for _, q := range questions {
		fmt.Println("asker:", q)
		for i, word := range strings.Fields(q) {
			if i > 0 {
				word = " " + word
			}
			if err := s.Send(ctx, word); err != nil {
				return err
			}
		}
		if err := s.Send(ctx, "\n"); err != nil {
			return err
		}
		// The answer streams in token by token, up to a newline.
		var answer strings.Builder
		for !strings.HasSuffix(answer.String(), "\n") {
			tok, err := next[wire.Token](ctx, s)
			if err != nil {
				return err
			}
			answer.WriteString(tok.Data)
		}
		fmt.Printf("answer: %s", answer.String())
	}
	return s.Close()
}

// next returns the next event of type T, skipping others; it fails when
// the session ends.
func next[T wire.Event](ctx context.Context, s *ams.Session) (T, error) {
	var zero T
	for {
		select {
		case ev, ok := <-s.Events():
			if !ok {
				return zero, errors.Join(errors.New("session ended"), s.Err())
			}
			if e, is := ev.(T); is {
				return e, nil
			}
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
