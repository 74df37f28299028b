package linkdb

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][2]string{
		"postgres://u:p@h/db":   {"postgres", ""},
		"postgresql://h/db":     {"postgres", ""},
		"sqlite:data/link.db":   {"sqlite", "data/link.db"},
		"sqlite:///abs/link.db": {"sqlite", "/abs/link.db"},
		"sqlite://rel/link.db":  {"sqlite", "rel/link.db"},
		"mysql://h/db":          {"", ""},
		"/just/a/path":          {"", ""},
		"":                      {"", ""},
	} {
		kind, path := parse(in)
		if kind != want[0] || path != want[1] {
			t.Errorf("parse(%q) = %q, %q; want %q, %q", in, kind, path, want[0], want[1])
		}
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), "mysql://root:secret@h/db")
	if err == nil || s != nil {
		t.Fatalf("Open(mysql) = %v, %v", s, err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error leaks the URL: %v", err)
	}
	// A failed open returns a nil interface, not a typed nil.
	s, err = Open(t.Context(), "postgres://u:secret@127.0.0.1:1/db?connect_timeout=2")
	if err == nil || s != nil {
		t.Fatalf("Open(unreachable) = %v, %v", s, err)
	}
	s, err = Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "missing-dir", "x.db"))
	if err == nil || s != nil {
		t.Fatalf("Open(sqlite in a missing directory) = %v, %v", s, err)
	}
}

func TestMigrateSQLite(t *testing.T) {
	t.Parallel()
	u := "sqlite:" + filepath.Join(t.TempDir(), "link.db")
	if err := Migrate(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}
