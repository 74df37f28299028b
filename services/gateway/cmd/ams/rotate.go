package main

import (
	"context"
	"fmt"
)

// runRotate is `ams rotate`: it replaces the account's credential and
// saves the new one to the config file.
func runRotate(ctx context.Context, e env, args []string) error {
	var cf clientFlags
	var show bool
	fs := newFlagSet(e, "rotate", "",
		"Replaces the configured account's credential and saves the new one to the config file. The old\n"+
			"credential stops working within seconds; connections already joined stay.")
	cf.register(fs)
	fs.BoolVar(&show, "show-credential", false, "also print the new credential on stdout")
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
	a, err := c.RotateCredential(ctx)
	if err != nil {
		return apiError(err)
	}
	cfg.Credential, cfg.AccountID = a.Credential, a.AccountID
	if err := saveConfig(path, cfg); err != nil {
		fmt.Fprintf(e.stderr, "new credential (not saved, shown only now): %s\n", a.Credential)
		return err
	}
	if show {
		fmt.Fprintln(e.stdout, a.Credential)
	}
	fmt.Fprintf(e.stderr, "rotated the credential of %s; saved to %s\n", a.Namespace, path)
	return nil
}
