package deploy

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// devSecrets runs scripts/dev-secrets.sh with args and returns its output.
func devSecrets(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "dev-secrets.sh"), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/dev-secrets.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// devSecretFiles returns the names of the files scripts/dev-secrets.sh
// writes, sorted.
func devSecretFiles(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	devSecrets(t, dir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

func TestDevSecrets(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "secrets")
	devSecrets(t, dir)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	first := map[string][]byte{}
	for _, name := range []string{"credential-pepper", "derivation-pepper", "signing-keys.pem"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		// Compose bind-mounts the file; the image's nonroot user must read it.
		if fi.Mode().Perm()&0o004 == 0 {
			t.Errorf("%s has mode %v; uid 65532 in the container cannot read it", name, fi.Mode())
		}
		first[name] = read(name)
	}
	// Peppers: at least the 16 bytes the services demand, after the
	// trailing newline the services strip.
	for _, name := range []string{"credential-pepper", "derivation-pepper"} {
		if p := strings.TrimRight(string(first[name]), "\r\n"); len(p) < 32 {
			t.Errorf("%s is %d bytes, want at least 32", name, len(p))
		}
	}
	if string(first["credential-pepper"]) == string(first["derivation-pepper"]) {
		t.Error("the two peppers are equal")
	}
	// The signing key: one PKCS#8 "PRIVATE KEY" holding an Ed25519 key,
	// what link -generate-key prints and link reads.
	block, rest := pem.Decode(first["signing-keys.pem"])
	if block == nil || block.Type != "PRIVATE KEY" || strings.TrimSpace(string(rest)) != "" {
		t.Fatalf("signing-keys.pem is not one PEM PRIVATE KEY block:\n%s", first["signing-keys.pem"])
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("signing-keys.pem: %v", err)
	}
	if _, ok := key.(ed25519.PrivateKey); !ok {
		t.Errorf("signing key is %T, want ed25519.PrivateKey", key)
	}

	// A second run keeps what exists (a new pepper would invalidate every
	// credential); -f replaces.
	if out := devSecrets(t, dir); strings.Count(out, "kept") != 3 {
		t.Errorf("second run:\n%s\nwant every file kept", out)
	}
	for name, b := range first {
		if string(read(name)) != string(b) {
			t.Errorf("second run changed %s", name)
		}
	}
	devSecrets(t, "-f", dir)
	for name, b := range first {
		if string(read(name)) == string(b) {
			t.Errorf("-f did not replace %s", name)
		}
	}
}

// TestDevSecretsIgnored: the generated files never reach git.
func TestDevSecretsIgnored(t *testing.T) {
	t.Parallel()
	files := devSecretFiles(t)
	args := []string{"-C", root, "check-ignore", "--no-index"}
	for _, f := range files {
		args = append(args, "deploy/secrets/dev/"+f)
	}
	out, err := exec.CommandContext(t.Context(), "git", args...).Output()
	if err != nil {
		t.Fatalf("git check-ignore: %v (the generated secrets are not all ignored)", err)
	}
	if got := strings.Fields(string(out)); len(got) != len(files) {
		t.Errorf("git ignores %v, want all of %v", got, files)
	}
	for _, kept := range []string{"README.md", "kustomization.yaml"} {
		if exec.Command("git", "-C", root, "check-ignore", "-q", "--no-index", "deploy/secrets/dev/"+kept).Run() == nil {
			t.Errorf("deploy/secrets/dev/%s is ignored, want it committed", kept)
		}
	}
}
