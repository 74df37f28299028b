package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/amsrouter/ams/pkg/ams"
)

// runConversation is `ams conversation <command>`.
func runConversation(ctx context.Context, e env, args []string) error {
	c, rest, err := runGroup(e, "conversation", []command{
		{"create", "mint a conversation and print its magic link", runConversationCreate},
		{"get", "show a conversation and its live streams", runConversationGet},
	}, args)
	if err != nil {
		return help(err)
	}
	return c.run(ctx, e, rest)
}

// runConversationCreate is `ams conversation create`: it mints a
// conversation with the configured account and prints its magic link.
func runConversationCreate(ctx context.Context, e env, args []string) error {
	var (
		cf                                    clientFlags
		alias, streamName, metadata, streamMD string
		expiresIn                             time.Duration
		asJSON                                bool
	)
	fs := newFlagSet(e, "conversation create", "",
		"Mints a conversation owned by the configured account and prints its magic link: anyone holding\n"+
			"the link and an account can join it (ams join <magic link>).")
	cf.register(fs)
	fs.StringVar(&alias, "alias", "", "the conversation's alias in your namespace (default: a random one)")
	fs.StringVar(&streamName, "stream-name", "", "the stream name you mean to join with (default: a random one)")
	fs.StringVar(&metadata, "metadata", "", "the conversation's metadata, a JSON object")
	fs.StringVar(&streamMD, "stream-metadata", "", "stream metadata echoed in the answer, a JSON object")
	fs.DurationVar(&expiresIn, "expires-in", 0, "make the link expire after this long (1m to 8760h; default: never)")
	fs.BoolVar(&asJSON, "json", false, "print the whole answer as JSON instead of the link")
	if _, err := parseArgs(fs, args, 0); err != nil {
		return help(err)
	}
	cfg, path, err := cf.load(e)
	if err != nil {
		return err
	}
	c, err := cfg.client(path, true)
	if err != nil {
		return err
	}
	o := ams.ConversationOptions{Alias: alias, StreamName: streamName, LinkExpiresIn: expiresIn}
	if o.Metadata, err = jsonObject("-metadata", metadata); err != nil {
		return err
	}
	if o.StreamMetadata, err = jsonObject("-stream-metadata", streamMD); err != nil {
		return err
	}
	conv, err := c.CreateConversation(ctx, o)
	if err != nil {
		return apiError(err)
	}
	if asJSON {
		return printJSON(e, conv)
	}
	fmt.Fprintln(e.stdout, conv.MagicLink)
	return nil
}

// runConversationGet is `ams conversation get <alias | magic link>`.
func runConversationGet(ctx context.Context, e env, args []string) error {
	var cf clientFlags
	fs := newFlagSet(e, "conversation get", " <alias | magic link>",
		"Prints a conversation and its live streams as JSON: one of your namespace by alias, or any\n"+
			"conversation by its magic link.")
	cf.register(fs)
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return help(err)
	}
	cfg, path, err := cf.load(e)
	if err != nil {
		return err
	}
	var conv any
	if strings.Contains(pos[0], "://") {
		c, _ := cfg.client(path, false)
		conv, err = c.GetConversationByLink(ctx, pos[0])
	} else {
		c, cerr := cfg.client(path, true)
		if cerr != nil {
			return cerr
		}
		conv, err = c.GetConversation(ctx, pos[0])
	}
	if err != nil {
		return apiError(err)
	}
	return printJSON(e, conv)
}

// jsonObject checks that a flag's value is a JSON object; "" is nil.
func jsonObject(flagName, s string) (json.RawMessage, error) {
	if s == "" {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil || m == nil {
		return nil, fmt.Errorf("%s must be a JSON object, like '{\"topic\":\"demo\"}'", flagName)
	}
	return json.RawMessage(s), nil
}

func printJSON(e env, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(e.stdout, string(b))
	return err
}
