package ams_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"

	"github.com/amsrouter/ams/pkg/ams"
	"github.com/amsrouter/ams/pkg/ams/amstest"
	"github.com/amsrouter/ams/pkg/wire"
)

// Two participants in one conversation: Alice mints it and shares the
// magic link, Bob joins with his own account, Alice streams a sentence
// token by token and Bob reads it live. (baseURL is the address of a
// running AMS, http://localhost:8080 with `make run`.)
func Example() {
	ctx := context.Background()

	// Alice: an account (the credential is shown only once) and a
	// conversation.
	alice := &ams.Client{BaseURL: baseURL}
	acct, err := alice.CreateAccount(ctx, amstest.Namespace("alice"))
	if err != nil {
		log.Fatal(err)
	}
	alice.Namespace, alice.Credential = acct.Namespace, acct.Credential
	conv, err := alice.CreateConversation(ctx, ams.ConversationOptions{
		Alias:    "standup",
		Metadata: json.RawMessage(`{"topic":"release"}`),
	})
	if err != nil {
		log.Fatal(err)
	}

	// Bob: his own account, and the link Alice gave him.
	bob := &ams.Client{BaseURL: baseURL}
	acct, err = bob.CreateAccount(ctx, amstest.Namespace("bob"))
	if err != nil {
		log.Fatal(err)
	}
	bob.Namespace, bob.Credential = acct.Namespace, acct.Credential
	bs, err := bob.Join(ctx, conv.MagicLink, ams.WithStreamName("bob"))
	if err != nil {
		log.Fatal(err)
	}
	defer bs.Close()

	as, err := alice.Join(ctx, conv.MagicLink, ams.WithStreamName("alice"))
	if err != nil {
		log.Fatal(err)
	}
	for _, tok := range []string{"ship", " it", " today"} {
		if err := as.Send(ctx, tok); err != nil {
			log.Fatal(err)
		}
	}
	as.Close() // Bob sees her leave

	for ev := range bs.Events() {
		switch ev := ev.(type) {
		case wire.Joined:
			fmt.Printf("bob joined, %d peers\n", len(ev.Peers))
		case wire.StreamJoined:
			fmt.Printf("%s joined\n", ev.StreamName)
		case wire.Token:
			fmt.Printf("%s #%d: %q\n", ev.StreamName, ev.Seq, ev.Data)
		case wire.StreamLeft:
			fmt.Printf("%s left\n", ev.StreamName)
			return
		}
	}
	// Output:
	// bob joined, 0 peers
	// alice joined
	// alice #1: "ship"
	// alice #2: " it"
	// alice #3: " today"
	// alice left
}

// Errors from the server carry the protocol's code.
func ExampleError() {
	ctx := context.Background()
	c := &ams.Client{BaseURL: baseURL}
	ns := amstest.Namespace("taken")
	if _, err := c.CreateAccount(ctx, ns); err != nil {
		log.Fatal(err)
	}
	_, err := c.CreateAccount(ctx, ns)

	var e *ams.Error
	if errors.As(err, &e) {
		fmt.Println(e.Status, e.Code)
	}
	fmt.Println(ams.IsCode(err, wire.CodeNamespaceTaken))
	// Output:
	// 409 namespace_taken
	// true
}

// A revoked link refuses new joins, with close code 4001.
func ExampleClient_RevokeLink() {
	ctx := context.Background()
	c := &ams.Client{BaseURL: baseURL}
	acct, err := c.CreateAccount(ctx, amstest.Namespace("owner"))
	if err != nil {
		log.Fatal(err)
	}
	c.Namespace, c.Credential = acct.Namespace, acct.Credential
	conv, err := c.CreateConversation(ctx, ams.ConversationOptions{Alias: "review"})
	if err != nil {
		log.Fatal(err)
	}
	guest, err := c.CreateLink(ctx, "review", ams.LinkOptions{Label: "for the reviewer"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.RevokeLink(ctx, "review", guest.LinkID); err != nil {
		log.Fatal(err)
	}
	links, err := c.ListLinks(ctx, "review")
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range links {
		fmt.Println(l.LinkID == conv.LinkID, l.RevokedAt != nil)
	}

	_, err = c.Join(ctx, guest.MagicLink)
	fmt.Println(err)
	// Output:
	// true false
	// false true
	// link_revoked: the link was revoked
}

// A session's cursor lets a later session continue where it stopped:
// what was delivered is not delivered again, what it missed is replayed.
func ExampleWithResume() {
	ctx := context.Background()
	c := &ams.Client{BaseURL: baseURL}
	acct, err := c.CreateAccount(ctx, amstest.Namespace("resume"))
	if err != nil {
		log.Fatal(err)
	}
	c.Namespace, c.Credential = acct.Namespace, acct.Credential
	conv, err := c.CreateConversation(ctx, ams.ConversationOptions{})
	if err != nil {
		log.Fatal(err)
	}

	reader, err := c.Join(ctx, conv.MagicLink, ams.WithStreamName("reader"))
	if err != nil {
		log.Fatal(err)
	}
	writer, err := c.Join(ctx, conv.MagicLink, ams.WithStreamName("writer"))
	if err != nil {
		log.Fatal(err)
	}
	defer writer.Close()
	readTokens := func(s *ams.Session, n int) {
		for ev := range s.Events() {
			if tok, ok := ev.(wire.Token); ok {
				fmt.Println(tok.Seq, tok.Data)
				if n--; n == 0 {
					return
				}
			}
		}
	}

	writer.Send(ctx, "one")
	readTokens(reader, 1)
	cursor := reader.Cursor()
	reader.Close()

	writer.Send(ctx, "two") // while the reader is away
	writer.Send(ctx, "three")

	reader, err = c.Join(ctx, conv.MagicLink, ams.WithStreamName("reader"), ams.WithResume(cursor))
	if err != nil {
		log.Fatal(err)
	}
	defer reader.Close()
	readTokens(reader, 2)
	// Output:
	// 1 one
	// 2 two
	// 3 three
}
