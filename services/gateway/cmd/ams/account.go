package main

import (
	"context"
	"fmt"
)

// runAccount is `ams account <command>`.
func runAccount(ctx context.Context, e env, args []string) error {
	c, rest, err := runGroup(e, "account", []command{
		{"create", "create an account and save its credential to the config file", runAccountCreate},
	}, args)
	if err != nil {
		return help(err)
	}
	return c.run(ctx, e, rest)
}

// runAccountCreate is `ams account create <namespace>`: it creates an
// account, saves URL and credential to the config file (0600) and prints
// the account id. The credential is printed only with -show-credential.
func runAccountCreate(ctx context.Context, e env, args []string) error {
	var cf clientFlags
	var show, force bool
	fs := newFlagSet(e, "account create", " <namespace>",
		"Creates an account owning the namespace (1-63 of a-z, 0-9, -) and saves the gateway URL and the\n"+
			"account's credential to the config file (mode 0600). The credential is shown only at creation.")
	cf.register(fs)
	fs.BoolVar(&show, "show-credential", false, "also print the credential on stdout")
	fs.BoolVar(&force, "force", false, "replace an account already in the config file (its credential is lost)")
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return help(err)
	}
	cfg, path, err := cf.load(e)
	if err != nil {
		return err
	}
	if cfg.Credential != "" && e.getenv("AMS_CREDENTIAL") == "" && !force {
		return fmt.Errorf("%s already holds account %s (%s): use -force to replace it, or -config for another file", path, cfg.AccountID, cfg.Namespace)
	}
	c, _ := cfg.client(path, false)
	a, err := c.CreateAccount(ctx, pos[0])
	if err != nil {
		return apiError(err)
	}
	cfg = clientConfig{URL: cfg.URL, Namespace: a.Namespace, AccountID: a.AccountID, Credential: a.Credential}
	if err := saveConfig(path, cfg); err != nil {
		// Shown once: printed rather than lost.
		fmt.Fprintf(e.stderr, "credential of %s (not saved, shown only now): %s\n", a.AccountID, a.Credential)
		return fmt.Errorf("account %s was created but its credential could not be saved: %w", a.AccountID, err)
	}
	fmt.Fprintln(e.stdout, a.AccountID)
	if show {
		fmt.Fprintln(e.stdout, a.Credential)
	}
	fmt.Fprintf(e.stderr, "saved the credential of %s to %s\n", a.Namespace, path)
	return nil
}
