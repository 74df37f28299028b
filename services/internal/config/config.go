// Package config fills a service's Config from flags whose defaults come
// from the environment (AMS_<SERVICE>_<NAME>), and loads secrets from files
// or the environment, never from the command line.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// Secret is a secret value. It prints and logs as [redacted].
type Secret []byte

func (Secret) String() string               { return "[redacted]" }
func (Secret) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (s Secret) Set() bool                  { return len(s) > 0 }
func (Secret) GoString() string             { return "[redacted]" }
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// FlagSet is a flag.FlagSet whose flags default to environment variables.
type FlagSet struct {
	*flag.FlagSet
	prefix  string
	getenv  func(string) string
	secrets []secretFlag
	errs    []error
}

type secretFlag struct {
	dst      *Secret
	name     string
	file     *string
	required bool
}

// New returns a FlagSet for the named program; env variables are
// AMS_<prefix>_<FLAG_NAME>.
func New(program, prefix string, getenv func(string) string, out io.Writer) *FlagSet {
	fs := flag.NewFlagSet(program, flag.ContinueOnError)
	fs.SetOutput(out)
	f := &FlagSet{FlagSet: fs, prefix: prefix, getenv: getenv}
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage of %s:\n", program)
		fmt.Fprintf(out, "Every flag can also be set by the environment variable shown in brackets.\n\n")
		fs.PrintDefaults()
	}
	return f
}

// Env returns the environment variable name of a flag.
func (f *FlagSet) Env(name string) string {
	return "AMS_" + f.prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func (f *FlagSet) usage(name, usage string) string {
	return usage + " [" + f.Env(name) + "]"
}

// String defines a string flag.
func (f *FlagSet) String(p *string, name, def, usage string) {
	if v := f.getenv(f.Env(name)); v != "" {
		def = v
	}
	f.StringVar(p, name, def, f.usage(name, usage))
}

// Int defines an int flag.
func (f *FlagSet) Int(p *int, name string, def int, usage string) {
	if v := f.getenv(f.Env(name)); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s: %w", f.Env(name), err))
		} else {
			def = n
		}
	}
	f.IntVar(p, name, def, f.usage(name, usage))
}

// Int64 defines an int64 flag.
func (f *FlagSet) Int64(p *int64, name string, def int64, usage string) {
	if v := f.getenv(f.Env(name)); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s: %w", f.Env(name), err))
		} else {
			def = n
		}
	}
	f.Int64Var(p, name, def, f.usage(name, usage))
}

// Bool defines a bool flag.
func (f *FlagSet) Bool(p *bool, name string, def bool, usage string) {
	if v := f.getenv(f.Env(name)); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s: %w", f.Env(name), err))
		} else {
			def = b
		}
	}
	f.BoolVar(p, name, def, f.usage(name, usage))
}

// Duration defines a duration flag.
func (f *FlagSet) Duration(p *time.Duration, name string, def time.Duration, usage string) {
	if v := f.getenv(f.Env(name)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s: %w", f.Env(name), err))
		} else {
			def = d
		}
	}
	f.DurationVar(p, name, def, f.usage(name, usage))
}

// Float64 defines a float64 flag.
func (f *FlagSet) Float64(p *float64, name string, def float64, usage string) {
	if v := f.getenv(f.Env(name)); v != "" {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s: %w", f.Env(name), err))
		} else {
			def = x
		}
	}
	f.Float64Var(p, name, def, f.usage(name, usage))
}

// Secret defines a secret read from the file named by -<name>-file (or
// AMS_<P>_<NAME>_FILE), else from AMS_<P>_<NAME>. There is deliberately no
// flag carrying the value itself: command lines are visible to every user
// of the machine.
func (f *FlagSet) Secret(p *Secret, name string, required bool, usage string) {
	file := new(string)
	f.String(file, name+"-file", "", usage+"; a file holding it (or set "+f.Env(name)+")")
	f.secrets = append(f.secrets, secretFlag{dst: p, name: name, file: file, required: required})
}

// Parse parses args, then loads secrets. -h prints the flags and returns
// flag.ErrHelp.
func (f *FlagSet) Parse(args []string) error {
	if err := errors.Join(f.errs...); err != nil {
		return err
	}
	if err := f.FlagSet.Parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", f.Arg(0))
	}
	for _, s := range f.secrets {
		switch {
		case *s.file != "":
			b, err := os.ReadFile(*s.file)
			if err != nil {
				return fmt.Errorf("read %s: %w", s.name, err)
			}
			*s.dst = Secret(strings.TrimRight(string(b), "\r\n"))
		case f.getenv(f.Env(s.name)) != "":
			*s.dst = Secret(f.getenv(f.Env(s.name)))
		}
		if s.required && len(*s.dst) == 0 {
			return fmt.Errorf("%s is required: set -%s-file or %s", s.name, s.name, f.Env(s.name))
		}
	}
	return nil
}

// LogAttrs returns every flag as a log attribute; secret files show their
// path only, and secret values never appear.
func (f *FlagSet) LogAttrs() []any {
	var attrs []any
	f.VisitAll(func(fl *flag.Flag) {
		attrs = append(attrs, slog.String(strings.ReplaceAll(fl.Name, "-", "_"), fl.Value.String()))
	})
	return attrs
}
