// Package ams is the Go client of AMS, the token-stream router for AI
// agents: the control plane (accounts, conversations, links) over HTTP,
// and the stream plane (join a conversation, write your stream, read the
// others live) over WebSocket or gRPC, with reconnect and resume built in.
//
// An account mints a conversation and gets a magic link; anyone holding
// the link and an account joins it. A Session owns one stream: Send writes
// tokens on it, and Events delivers the other participants' tokens and
// membership changes. When the connection is lost, the session reconnects
// with a resume cursor and the application sees every retained event
// exactly once, in order per stream; events the server no longer retains
// are announced by a wire.ReplayGap.
//
// A complete program:
//
//	package main
//
//	import (
//		"context"
//		"fmt"
//		"log"
//
//		"github.com/amsrouter/ams/pkg/ams"
//		"github.com/amsrouter/ams/pkg/wire"
//	)
//
//	func main() {
//		ctx := context.Background()
//		c := &ams.Client{BaseURL: "http://localhost:8080"}
//
//		// An account: its credential is shown only once.
//		acct, err := c.CreateAccount(ctx, "acme")
//		if err != nil {
//			log.Fatal(err)
//		}
//		c.Namespace, c.Credential = acct.Namespace, acct.Credential
//
//		// A conversation and its magic link, to share with the others.
//		conv, err := c.CreateConversation(ctx, ams.ConversationOptions{Alias: "standup"})
//		if err != nil {
//			log.Fatal(err)
//		}
//
//		// Join it, say something, print what the others say.
//		s, err := c.Join(ctx, conv.MagicLink, ams.WithStreamName("planner"))
//		if err != nil {
//			log.Fatal(err)
//		}
//		defer s.Close()
//		if err := s.Send(ctx, "hello"); err != nil {
//			log.Fatal(err)
//		}
//		for ev := range s.Events() {
//			switch ev := ev.(type) {
//			case wire.Token:
//				fmt.Printf("%s: %s\n", ev.StreamName, ev.Data)
//			case wire.StreamJoined:
//				fmt.Println(ev.StreamName, "joined")
//			case ams.Closed:
//				fmt.Println("closed:", ev.Code, ev.Reason)
//			}
//		}
//	}
//
// Errors the server reports are *Error values carrying the protocol's code
// (wire.Code); check them with errors.As or IsCode. The protocol itself is
// described in docs/ and in the types of package wire.
package ams
