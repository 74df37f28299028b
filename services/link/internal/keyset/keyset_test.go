package keyset

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/amsrouter/ams/services/internal/linktoken"
)

func gen(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func enc(t *testing.T, k ed25519.PrivateKey) []byte {
	t.Helper()
	b, err := Encode(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func kid(k ed25519.PrivateKey) string { return linktoken.KeyID(k.Public().(ed25519.PublicKey)) }

func TestParseOrder(t *testing.T) {
	t.Parallel()
	a, b, c := gen(t), gen(t), gen(t)
	text := bytes.Join([][]byte{enc(t, a), []byte("\n"), enc(t, b), enc(t, c)}, nil)
	keys, err := Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 || !a.Equal(keys[0]) || !b.Equal(keys[1]) || !c.Equal(keys[2]) {
		t.Fatalf("Parse returned %d keys, not a, b, c in order", len(keys))
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	a := gen(t)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})
	der, _ := x509.MarshalPKCS8PrivateKey(a)
	for name, text := range map[string][]byte{
		"empty":         nil,
		"not pem":       []byte("hello"),
		"ecdsa":         ecPEM,
		"wrong type":    pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}),
		"garbage der":   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}),
		"repeated":      append(enc(t, a), enc(t, a)...),
		"trailing text": append(enc(t, a), "junk"...),
	} {
		keys, err := Parse(text)
		if err == nil {
			t.Errorf("%s: Parse accepted it (%d keys)", name, len(keys))
			continue
		}
		// Errors never carry key material: no line of the PEM body.
		for _, line := range bytes.Split(text, []byte("\n")) {
			if len(line) >= 16 && !bytes.HasPrefix(line, []byte("-----")) && bytes.Contains([]byte(err.Error()), line) {
				t.Errorf("%s: error %q echoes its input", name, err)
			}
		}
	}
}

func TestLoadOrCreate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "link-keys.pem")
	first, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 1 {
		t.Fatalf("created %d keys, want 1", len(first))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	again, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 1 || !first[0].Equal(again[0]) {
		t.Error("second LoadOrCreate returned another key")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the key file", len(entries))
	}
}

func TestLoadOrCreateExisting(t *testing.T) {
	t.Parallel()
	a, b := gen(t), gen(t)
	path := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(path, append(enc(t, a), enc(t, b)...), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !a.Equal(keys[0]) || !b.Equal(keys[1]) {
		t.Error("LoadOrCreate did not return the file's keys in order")
	}
	if err := os.WriteFile(path, []byte("broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(path); err == nil {
		t.Error("LoadOrCreate accepted a broken key file")
	}
}

func TestLoadOrCreateConcurrent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keys.pem")
	const n = 8
	got := make([][]ed25519.PrivateKey, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i], errs[i] = LoadOrCreate(path) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !got[i][0].Equal(got[0][0]) {
			t.Errorf("caller %d got another key than caller 0", i)
		}
	}
}

type fakeLive struct {
	mu    sync.Mutex
	kids  []string
	err   error
	calls int
}

func (f *fakeLive) live(ctx context.Context, now time.Time) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.kids, f.err
}

func (f *fakeLive) set(kids []string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kids, f.err = kids, err
}

func ids(ks []PublicKey) []string {
	var out []string
	for _, k := range ks {
		out = append(out, k.ID)
	}
	return out
}

func TestPublished(t *testing.T) {
	t.Parallel()
	a, b, c := gen(t), gen(t), gen(t)
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	f := &fakeLive{kids: []string{kid(c), kid(a)}}
	s, err := New([]ed25519.PrivateKey{a, b, c}, f.live, Options{TTL: 5 * time.Second, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if s.Active().ID != kid(a) || !s.Active().Private.Equal(a) {
		t.Fatal("the first key is not active")
	}
	ctx := t.Context()
	got := s.Published(ctx)
	// a is active; b has no live links; c has.
	if diff := cmp.Diff([]string{kid(a), kid(c)}, ids(got)); diff != "" {
		t.Errorf("Published (-want +got):\n%s", diff)
	}
	if !got[0].Active || got[1].Active {
		t.Errorf("active flags = %v, %v; want true, false", got[0].Active, got[1].Active)
	}
	if !bytes.Equal(got[1].Key, c.Public().(ed25519.PublicKey)) {
		t.Error("published key is not c's public key")
	}

	// Within the TTL the cached answer is reused.
	f.set(nil, nil)
	now = now.Add(4 * time.Second)
	if diff := cmp.Diff([]string{kid(a), kid(c)}, ids(s.Published(ctx))); diff != "" {
		t.Errorf("cached Published (-want +got):\n%s", diff)
	}
	if f.calls != 1 {
		t.Errorf("live read %d times, want 1", f.calls)
	}
	// After it, c's links are gone and so is c.
	now = now.Add(2 * time.Second)
	if diff := cmp.Diff([]string{kid(a)}, ids(s.Published(ctx))); diff != "" {
		t.Errorf("Published after TTL (-want +got):\n%s", diff)
	}

	// A failing read publishes every key and is not cached.
	now = now.Add(time.Minute)
	f.set(nil, errors.New("database down"))
	if diff := cmp.Diff([]string{kid(a), kid(b), kid(c)}, ids(s.Published(ctx))); diff != "" {
		t.Errorf("Published on error (-want +got):\n%s", diff)
	}
	f.set(nil, nil)
	if diff := cmp.Diff([]string{kid(a)}, ids(s.Published(ctx))); diff != "" {
		t.Errorf("Published after recovery (-want +got):\n%s", diff)
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	a := gen(t)
	if _, err := New(nil, nil, Options{}); err == nil {
		t.Error("New accepted no keys")
	}
	if _, err := New([]ed25519.PrivateKey{a, a}, nil, Options{}); err == nil {
		t.Error("New accepted a repeated key")
	}
	if _, err := New([]ed25519.PrivateKey{a[:10]}, nil, Options{}); err == nil {
		t.Error("New accepted a short key")
	}
	// One key needs no live links at all.
	s, err := New([]ed25519.PrivateKey{a}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Published(t.Context()); len(got) != 1 || got[0].ID != kid(a) || !got[0].Active {
		t.Errorf("Published = %+v", got)
	}
}
