package main

// What the client subcommands (account, conversation, join, links,
// rotate) share: the config file that holds the account, the common
// flags, argument parsing and error reporting.

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/amsrouter/ams/pkg/ams"
)

// defaultURL is the gateway `make run` serves.
const defaultURL = "http://localhost:8080"

// clientConfig is the config file of the client commands: the account
// `ams account create` made. It holds a credential: mode 0600.
type clientConfig struct {
	URL        string `json:"url"`
	Namespace  string `json:"namespace"`
	AccountID  string `json:"account_id"`
	Credential string `json:"credential"`
}

// clientFlags are the flags every client command has.
type clientFlags struct {
	config string
	url    string
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "config file holding the account [AMS_CONFIG] (default $XDG_CONFIG_HOME/ams/config.json or ~/.config/ams/config.json)")
	fs.StringVar(&f.url, "url", "", "gateway URL [AMS_URL] (default: the config file's, else "+defaultURL+")")
}

// path is the config file: -config, AMS_CONFIG, $XDG_CONFIG_HOME/ams,
// ~/.config/ams.
func (f *clientFlags) path(e env) (string, error) {
	if f.config != "" {
		return f.config, nil
	}
	if p := e.getenv("AMS_CONFIG"); p != "" {
		return p, nil
	}
	if x := e.getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "ams", "config.json"), nil
	}
	home := e.getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", fmt.Errorf("no config file: set -config or AMS_CONFIG (%w)", err)
		}
	}
	return filepath.Join(home, ".config", "ams", "config.json"), nil
}

// load reads the config file; a missing file is an empty config. The URL
// and credential may come from -url / AMS_URL and AMS_CREDENTIAL instead.
func (f *clientFlags) load(e env) (clientConfig, string, error) {
	var cfg clientConfig
	path, err := f.path(e)
	if err != nil {
		return cfg, "", err
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return cfg, path, fmt.Errorf("read config: %w", err)
	default:
		if err := json.Unmarshal(b, &cfg); err != nil {
			return cfg, path, fmt.Errorf("config %s is not valid JSON: %w", path, err)
		}
	}
	switch {
	case f.url != "":
		cfg.URL = f.url
	case e.getenv("AMS_URL") != "":
		cfg.URL = e.getenv("AMS_URL")
	case cfg.URL == "":
		cfg.URL = defaultURL
	}
	cfg.URL = strings.TrimSuffix(cfg.URL, "/")
	if c := e.getenv("AMS_CREDENTIAL"); c != "" {
		cfg.Credential = c
	}
	return cfg, path, nil
}

// client returns an SDK client for the config's account; needAccount
// fails early when there is none.
func (cfg clientConfig) client(path string, needAccount bool) (*ams.Client, error) {
	if needAccount && (cfg.Credential == "" || cfg.Namespace == "") {
		return nil, fmt.Errorf("no account in %s: run `ams account create <namespace>` first (or set AMS_CONFIG)", path)
	}
	return &ams.Client{BaseURL: cfg.URL, Namespace: cfg.Namespace, Credential: cfg.Credential}, nil
}

// saveConfig writes the config file with mode 0600 (its directory 0700),
// replacing it atomically.
func saveConfig(path string, cfg clientConfig) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*") // mode 0600
	if err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(append(b, '\n'))
	if err := errors.Join(werr, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	return nil
}

// newFlagSet returns a flag set for a client command whose -h shows the
// usage line and the description before the flags.
func newFlagSet(e env, name, args, about string) *flag.FlagSet {
	fs := flag.NewFlagSet("ams "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: ams %s [flags]%s\n\n%s\n\nFlags:\n", name, args, about)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses flags placed anywhere among the arguments (the flag
// package stops at the first positional one) and returns the positional
// arguments. It wants exactly n of them, or at least n when atLeast.
// -h prints the usage and returns flag.ErrHelp; a bad command line prints
// the problem and the usage and returns errUsage.
func parseArgs(fs *flag.FlagSet, args []string, n int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage // the flag package printed the problem and usage
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != n {
		switch {
		case len(pos) < n:
			fmt.Fprintf(fs.Output(), "%s: missing arguments\n\n", fs.Name())
		default:
			fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n\n", fs.Name(), pos[n])
		}
		fs.Usage()
		return nil, errUsage
	}
	return pos, nil
}

// help turns flag.ErrHelp (the usage was printed) into success.
func help(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// apiError reduces an error the server reported to its *ams.Error, whose
// text is "code: message" (`ams: link_revoked: the link was revoked`).
func apiError(err error) error {
	var e *ams.Error
	if errors.As(err, &e) {
		return e
	}
	if err != nil && strings.HasPrefix(err.Error(), "ams: ") {
		// The SDK's own errors say "ams: …" already; main adds it.
		return prefixless{err}
	}
	return err
}

// prefixless is an SDK error printed without its "ams: " prefix.
type prefixless struct{ error }

func (p prefixless) Error() string { return strings.TrimPrefix(p.error.Error(), "ams: ") }
func (p prefixless) Unwrap() error { return p.error }

// runGroup runs a subcommand of a command group (ams links list).
func runGroup(e env, name string, subs []command, args []string) (command, []string, error) {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: ams %s <command> [flags]\n\nCommands:\n", name)
		for _, c := range subs {
			fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
		}
		fmt.Fprintf(w, "\nRun \"ams %s <command> -h\" for the flags of a command.\n", name)
	}
	if len(args) == 0 {
		usage(e.stderr)
		return command{}, nil, errUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(e.stdout)
		return command{}, nil, flag.ErrHelp
	}
	for _, c := range subs {
		if c.name == args[0] {
			return c, args[1:], nil
		}
	}
	fmt.Fprintf(e.stderr, "ams %s: unknown command %q\n\n", name, args[0])
	usage(e.stderr)
	return command{}, nil, errUsage
}
