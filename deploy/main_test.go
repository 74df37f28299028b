package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// root is the repository root (the tests run in deploy/).
const root = ".."

// binDir holds the binaries built once from the Dockerfile's build stage,
// shared by every test of this package (see builtBinaries).
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ams-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoPath returns the path of a repository file given slash-separated.
func repoPath(rel string) string { return filepath.Join(root, filepath.FromSlash(rel)) }

func readRepoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(repoPath(rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// envVarRE matches the environment variables a binary's -h names: "[AMS_X]"
// after each flag, "(or set AMS_X)" for secrets.
var envVarRE = regexp.MustCompile(`\[(AMS_[A-Z0-9_]+)\]|or set (AMS_[A-Z0-9_]+)\)`)

// knownEnv returns, per program ("account", "link", "gateway", "ams migrate",
// "ams dev"), the AMS_* environment variables it reads, from its -h output.
func knownEnv(t *testing.T) map[string]map[string]bool {
	t.Helper()
	dir := builtBinaries(t)
	progs := map[string][]string{
		"account":     {"account", "-h"},
		"link":        {"link", "-h"},
		"gateway":     {"gateway", "-h"},
		"ams migrate": {"ams", "migrate", "-h"},
		"ams dev":     {"ams", "dev", "-h"},
	}
	out := map[string]map[string]bool{}
	for name, argv := range progs {
		help := runHelp(t, filepath.Join(dir, argv[0]), argv[1:]...)
		vars := map[string]bool{}
		for _, m := range envVarRE.FindAllStringSubmatch(help, -1) {
			vars[m[1]+m[2]] = true
		}
		if len(vars) < 2 {
			t.Fatalf("%s -h names %d environment variables, want several:\n%s", name, len(vars), help)
		}
		out[name] = vars
	}
	return out
}

// checkEnv reports every AMS_* name in env that the program does not read:
// a typo there is a setting silently ignored.
func checkEnv(t *testing.T, where, program string, known map[string]map[string]bool, env []string) {
	t.Helper()
	vars, ok := known[program]
	if !ok {
		t.Fatalf("%s: unknown program %q", where, program)
	}
	for _, name := range env {
		if strings.HasPrefix(name, "AMS_") && !vars[name] {
			t.Errorf("%s: %s is not a variable %s reads (see %s -h)", where, name, program, program)
		}
	}
}
