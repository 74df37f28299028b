package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/amsrouter/ams/pkg/ams"
	"github.com/amsrouter/ams/services/internal/timefmt"
)

// runLinks is `ams links <command>`.
func runLinks(ctx context.Context, e env, args []string) error {
	c, rest, err := runGroup(e, "links", []command{
		{"list", "list the links of a conversation you own", runLinksList},
		{"create", "issue another magic link for a conversation you own", runLinksCreate},
		{"revoke", "revoke a link: it admits nobody and its connections close", runLinksRevoke},
	}, args)
	if err != nil {
		return help(err)
	}
	return c.run(ctx, e, rest)
}

func runLinksList(ctx context.Context, e env, args []string) error {
	var cf clientFlags
	fs := newFlagSet(e, "links list", " <alias>", "Lists the links of a conversation you own, oldest first, revoked ones included.")
	cf.register(fs)
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return help(err)
	}
	c, err := accountClient(e, cf)
	if err != nil {
		return err
	}
	links, err := c.ListLinks(ctx, pos[0])
	if err != nil {
		return apiError(err)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LINK ID\tCREATED\tEXPIRES\tREVOKED\tLABEL")
	for _, l := range links {
		label := "-"
		if l.Label != nil {
			label = *l.Label
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.LinkID, timefmt.Format(l.CreatedAt), optTime(l.ExpiresAt), optTime(l.RevokedAt), label)
	}
	return tw.Flush()
}

func runLinksCreate(ctx context.Context, e env, args []string) error {
	var (
		cf        clientFlags
		expiresIn time.Duration
		label     string
	)
	fs := newFlagSet(e, "links create", " <alias>",
		"Issues another magic link for a conversation you own and prints it (shown only now). Each link\n"+
			"can be revoked on its own.")
	cf.register(fs)
	fs.DurationVar(&expiresIn, "expires-in", 0, "make the link expire after this long (1m to 8760h; default: never)")
	fs.StringVar(&label, "label", "", "a label for the link (1-64 characters)")
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return help(err)
	}
	c, err := accountClient(e, cf)
	if err != nil {
		return err
	}
	l, err := c.CreateLink(ctx, pos[0], ams.LinkOptions{ExpiresIn: expiresIn, Label: label})
	if err != nil {
		return apiError(err)
	}
	fmt.Fprintln(e.stdout, l.MagicLink)
	fmt.Fprintf(e.stderr, "link %s, expires %s\n", l.LinkID, optTime(l.ExpiresAt))
	return nil
}

func runLinksRevoke(ctx context.Context, e env, args []string) error {
	var cf clientFlags
	fs := newFlagSet(e, "links revoke", " <alias> <link_id>",
		"Revokes a link: it admits nobody from now on, and its live connections close (4001 link_revoked).")
	cf.register(fs)
	pos, err := parseArgs(fs, args, 2)
	if err != nil {
		return help(err)
	}
	c, err := accountClient(e, cf)
	if err != nil {
		return err
	}
	l, err := c.RevokeLink(ctx, pos[0], pos[1])
	if err != nil {
		return apiError(err)
	}
	fmt.Fprintf(e.stdout, "revoked %s at %s\n", l.LinkID, optTime(l.RevokedAt))
	return nil
}

// accountClient loads the config and returns a client of its account.
func accountClient(e env, cf clientFlags) (*ams.Client, error) {
	cfg, path, err := cf.load(e)
	if err != nil {
		return nil, err
	}
	return cfg.client(path, true)
}

func optTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return timefmt.Format(*t)
}
