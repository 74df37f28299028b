package deploy

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

const dockerfilePath = "deploy/docker/Dockerfile"

// imageServices are the values of the Dockerfile's SERVICE argument, each
// with the ports its image exposes.
var imageServices = map[string][]string{
	"account": {"7001", "7101"},
	"link":    {"7002", "7102"},
	"gateway": {"8080"},
	"ams":     {"8080"},
}

// dockerfile is the parsed Dockerfile.
type dockerfile struct {
	stages   []instructions.Stage
	metaArgs map[string]string // ARGs before the first FROM, with defaults
}

func (d *dockerfile) stage(name string) (*instructions.Stage, bool) {
	for i := range d.stages {
		if d.stages[i].Name == name {
			return &d.stages[i], true
		}
	}
	return nil, false
}

// parseDockerfile parses and lints the Dockerfile with BuildKit's parser;
// any parser or lint warning fails the test.
func parseDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	res, err := parser.Parse(bytes.NewReader(readRepoFile(t, dockerfilePath)))
	if err != nil {
		t.Fatalf("parse %s: %v", dockerfilePath, err)
	}
	for _, w := range res.Warnings {
		t.Errorf("%s: parser warning: %s", dockerfilePath, w.Short)
	}
	var lints []string
	lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		lints = append(lints, fmt.Sprintf("line %d: %s: %s", line, rule, msg))
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("instructions of %s: %v", dockerfilePath, err)
	}
	for _, l := range lints {
		t.Errorf("%s: lint: %s", dockerfilePath, l)
	}
	d := &dockerfile{stages: stages, metaArgs: map[string]string{}}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			d.metaArgs[kv.Key] = kv.ValueString()
		}
	}
	return d
}

// mapEnv is a shell.EnvGetter over a map.
type mapEnv map[string]string

func (m mapEnv) Get(k string) (string, bool) { v, ok := m[k]; return v, ok }
func (m mapEnv) Keys() []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// expand expands ${VAR} in word the way BuildKit does.
func expand(t *testing.T, word string, env mapEnv) string {
	t.Helper()
	s, _, err := shell.NewLex('\\').ProcessWord(word, env)
	if err != nil {
		t.Fatalf("expand %q: %v", word, err)
	}
	return s
}

// stageArgs returns the build arguments visible in a stage: the global
// defaults of ARGs the stage redeclares, then its own defaults, overridden
// by overrides (as --build-arg would).
func (d *dockerfile) stageArgs(s *instructions.Stage, overrides map[string]string) mapEnv {
	env := mapEnv{}
	for _, c := range s.Commands {
		a, ok := c.(*instructions.ArgCommand)
		if !ok {
			continue
		}
		for _, kv := range a.Args {
			switch v, over := overrides[kv.Key]; {
			case over:
				env[kv.Key] = v
			case kv.Value != nil:
				env[kv.Key] = *kv.Value
			default:
				env[kv.Key] = d.metaArgs[kv.Key]
			}
		}
	}
	return env
}

// baseChain follows a stage's FROM through the stages to an image
// reference; it returns the stages passed and the image.
func (d *dockerfile) baseChain(t *testing.T, name string, args mapEnv) ([]*instructions.Stage, string) {
	t.Helper()
	var chain []*instructions.Stage
	for range len(d.stages) + 1 {
		s, ok := d.stage(name)
		if !ok {
			return chain, name
		}
		chain = append(chain, s)
		name = expand(t, s.BaseName, args)
	}
	t.Fatalf("FROM loop at stage %q", name)
	return nil, ""
}

// imageTagRE: a reference with an explicit tag that is not latest (a
// registry port is not a tag).
var imageTagRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._/-]*(:[0-9]+)?/?[a-z0-9._/-]*:([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})(@sha256:[0-9a-f]{64})?$`)

// imageTag returns the tag of an image reference, or "" if it has none.
func imageTag(ref string) string {
	m := imageTagRE.FindStringSubmatch(ref)
	if m == nil {
		return ""
	}
	return m[2]
}

func TestDockerfileStages(t *testing.T) {
	t.Parallel()
	d := parseDockerfile(t)
	if len(d.stages) < 3 {
		t.Fatalf("%d stages, want a multi-stage build (build, runtime, per service)", len(d.stages))
	}
	if _, ok := d.metaArgs["SERVICE"]; !ok {
		t.Fatal("no global ARG SERVICE")
	}
	// Every FROM that names an image pins a tag other than latest.
	for _, s := range d.stages {
		ref := expand(t, s.BaseName, mapEnv(d.metaArgs))
		if _, isStage := d.stage(ref); isStage || ref == "${SERVICE}" || imageServices[ref] != nil {
			continue
		}
		if tag := imageTag(ref); tag == "" || tag == "latest" {
			t.Errorf("stage %q: FROM %s: want an explicit tag other than latest", s.Name, ref)
		}
	}
	build, ok := d.stage("build")
	if !ok {
		t.Fatal("no stage named build")
	}
	if ref := expand(t, build.BaseName, mapEnv(d.metaArgs)); !strings.HasPrefix(ref, "golang:1.26") {
		t.Errorf("build stage FROM %s, want golang:1.26.x (go.mod says go 1.26.0)", ref)
	}

	for svc, ports := range imageServices {
		t.Run(svc, func(t *testing.T) {
			args := mapEnv(d.metaArgs)
			args["SERVICE"] = svc
			final := &d.stages[len(d.stages)-1]
			chain, base := d.baseChain(t, final.Name, args)
			chain = append([]*instructions.Stage{final}, chain...)
			if base != "gcr.io/distroless/static-debian12:nonroot" {
				t.Errorf("SERVICE=%s: image based on %s, want gcr.io/distroless/static-debian12:nonroot", svc, base)
			}
			// Walk the chain from the base up, as the image is built.
			var (
				user       string
				entrypoint []string
				exposed    []string
				labels     = map[string]string{}
				copied     = map[string]string{} // dest -> source in build stage
				health     []string
			)
			for i := len(chain) - 1; i >= 0; i-- {
				s := chain[i]
				env := d.stageArgs(s, map[string]string{"SERVICE": svc})
				for _, c := range s.Commands {
					switch c := c.(type) {
					case *instructions.UserCommand:
						user = expand(t, c.User, env)
					case *instructions.EntrypointCommand:
						entrypoint = c.CmdLine
					case *instructions.ExposeCommand:
						exposed = append(exposed, c.Ports...)
					case *instructions.LabelCommand:
						for _, kv := range c.Labels {
							labels[kv.Key] = expand(t, kv.Value, env)
						}
					case *instructions.HealthCheckCommand:
						health = c.Health.Test
					case *instructions.CopyCommand:
						if c.From != "build" {
							t.Errorf("stage %q copies from %q; only the build stage's outputs belong in the image", s.Name, c.From)
						}
						for _, src := range c.SourcePaths {
							copied[c.DestPath] = src
						}
					case *instructions.RunCommand:
						t.Errorf("stage %q runs %v: the runtime image has no shell", s.Name, c.CmdLine)
					}
				}
			}
			if user != "65532:65532" && user != "nonroot" && user != "65532" {
				t.Errorf("USER %q, want the nonroot user 65532", user)
			}
			bin := "/usr/local/bin/" + svc
			if copied[bin] != "/out/"+svc {
				t.Errorf("%s copied from %q, want /out/%s", bin, copied[bin], svc)
			}
			if copied["/usr/local/bin/healthcheck"] != "/out/healthcheck" {
				t.Errorf("no healthcheck binary at /usr/local/bin/healthcheck")
			}
			if !slices.Equal(entrypoint, []string{bin}) {
				t.Errorf("ENTRYPOINT %q, want [%s]", entrypoint, bin)
			}
			if !slices.Equal(exposed, ports) {
				t.Errorf("EXPOSE %v, want %v", exposed, ports)
			}
			if svc != "ams" {
				if len(health) < 3 || health[0] != "CMD" || health[1] != "/usr/local/bin/healthcheck" {
					t.Errorf("HEALTHCHECK %q, want CMD /usr/local/bin/healthcheck URL", health)
				} else if !slices.ContainsFunc(ports, func(p string) bool { return strings.Contains(health[2], ":"+p+"/readyz") }) {
					t.Errorf("HEALTHCHECK probes %s, want /readyz on one of %v", health[2], ports)
				}
			}
			for _, l := range []string{"version", "revision", "created", "source", "title"} {
				if labels["org.opencontainers.image."+l] == "" {
					t.Errorf("no label org.opencontainers.image.%s", l)
				}
			}
			if got := labels["org.opencontainers.image.title"]; got != "ams-"+svc {
				t.Errorf("title label %q, want ams-%s", got, svc)
			}
		})
	}
}

// goBuild is one `go build` of the Dockerfile's build stage.
type goBuild struct {
	dir  string   // repository directory it runs in
	env  []string // KEY=VALUE from ENV and the command line
	args []string // after "go"
	out  string   // the -o directory in the image
}

// goBuilds extracts the go build commands of the build stage, with the
// directory (WORKDIR, /src being the repository root) and environment each
// runs with.
func goBuilds(t *testing.T, d *dockerfile) []goBuild {
	t.Helper()
	build, ok := d.stage("build")
	if !ok {
		t.Fatal("no stage named build")
	}
	args := d.stageArgs(build, map[string]string{
		"TARGETOS": "linux", "TARGETARCH": goEnv(t, "GOARCH"), "VERSION": "test",
	})
	env := map[string]string{}
	var (
		workdir = "/"
		builds  []goBuild
		copied  []string // what COPY puts under /src
	)
	for _, c := range build.Commands {
		switch c := c.(type) {
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				env[kv.Key] = expand(t, kv.Value, mergeEnv(args, env))
			}
		case *instructions.WorkdirCommand:
			if path.IsAbs(c.Path) {
				workdir = path.Clean(c.Path)
			} else {
				workdir = path.Join(workdir, c.Path)
			}
		case *instructions.CopyCommand:
			if c.From != "" {
				t.Errorf("build stage: COPY --from=%s", c.From)
			}
			for _, src := range c.SourcePaths {
				copied = append(copied, path.Clean(src))
				if _, err := os.Stat(repoPath(src)); err != nil {
					t.Errorf("build stage copies %s: %v", src, err)
				}
			}
		case *instructions.RunCommand:
			if !strings.Contains(strings.Join(c.CmdLine, " "), "go build") {
				continue
			}
			words, err := shell.NewLex('\\').ProcessWords(strings.Join(c.CmdLine, " "), mergeEnv(args, env))
			if err != nil {
				t.Fatalf("words of %q: %v", c.CmdLine, err)
			}
			gb := goBuild{}
			for k, v := range env {
				gb.env = append(gb.env, k+"="+v)
			}
			for len(words) > 0 && strings.Contains(words[0], "=") {
				gb.env = append(gb.env, words[0])
				words = words[1:]
			}
			if len(words) < 2 || words[0] != "go" || words[1] != "build" {
				t.Fatalf("RUN %q: want one `[VAR=value...] go build ...` per RUN", c.CmdLine)
			}
			gb.args = words[1:]
			if i := slices.Index(gb.args, "-o"); i >= 0 && i+1 < len(gb.args) {
				gb.out = gb.args[i+1]
			}
			rel, ok := strings.CutPrefix(workdir, "/src")
			if !ok {
				t.Fatalf("go build in %s, want under /src (the repository root)", workdir)
			}
			gb.dir = repoPath(strings.TrimPrefix(rel, "/"))
			// The packages must be in what was copied into /src.
			for _, a := range gb.args {
				if strings.HasPrefix(a, "./") {
					pkg := path.Join(strings.TrimPrefix(workdir, "/src/"), a)
					if !slices.ContainsFunc(copied, func(c string) bool { return pkg == c || strings.HasPrefix(pkg, c+"/") }) {
						t.Errorf("go build of %s, which no COPY brings into /src (%v)", pkg, copied)
					}
				}
			}
			builds = append(builds, gb)
		}
	}
	if len(builds) == 0 {
		t.Fatal("build stage has no go build")
	}
	return builds
}

func mergeEnv(a, b map[string]string) mapEnv {
	m := mapEnv{}
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

var (
	buildOnce sync.Once
	buildErr  error
)

// builtBinaries runs the Dockerfile's go build commands once, as written
// but with -o into binDir, and returns binDir. Two differences from the
// image build: GOTOOLCHAIN=local (the machine's Go 1.26, not the release
// toolchain the Dockerfile fetches), and -buildvcs=false added to GOFLAGS
// (the build context has no .git; this checkout does).
func builtBinaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		// Stays set if a check below stops this goroutine (t.Fatal).
		buildErr = errors.New("the Dockerfile's go build commands could not be run; see the first failing test")
		d := parseDockerfile(t)
		for _, gb := range goBuilds(t, d) {
			args := slices.Clone(gb.args)
			if i := slices.Index(args, "-o"); i >= 0 {
				args[i+1] = binDir + string(filepath.Separator)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
			cmd := exec.CommandContext(ctx, "go", args...)
			cmd.Dir = gb.dir
			cmd.Env = os.Environ()
			for _, kv := range gb.env {
				if strings.HasPrefix(kv, "GOFLAGS=") {
					kv += " -buildvcs=false"
				}
				cmd.Env = append(cmd.Env, kv)
			}
			cmd.Env = append(cmd.Env, "GOTOOLCHAIN=local")
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				buildErr = fmt.Errorf("in %s: go %s: %v\n%s", gb.dir, strings.Join(args, " "), err, out)
				return
			}
		}
		buildErr = nil
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestDockerfileBuildsStaticBinaries(t *testing.T) {
	t.Parallel()
	d := parseDockerfile(t)
	for _, gb := range goBuilds(t, d) {
		env := strings.Join(gb.env, " ")
		for _, want := range []string{"CGO_ENABLED=0", "GOWORK=off"} {
			if !slices.Contains(gb.env, want) {
				t.Errorf("go %s runs with %s, want %s", strings.Join(gb.args, " "), env, want)
			}
		}
		if !slices.Contains(gb.args, "-trimpath") {
			t.Errorf("go %s: want -trimpath", strings.Join(gb.args, " "))
		}
		if gb.out != "/out/" {
			t.Errorf("go build -o %q, want /out/", gb.out)
		}
	}
	dir := builtBinaries(t)
	// Every binary a stage copies from /out was built, and is static.
	for _, s := range d.stages {
		for _, c := range s.Commands {
			cp, ok := c.(*instructions.CopyCommand)
			if !ok || cp.From != "build" {
				continue
			}
			for _, src := range cp.SourcePaths {
				name, ok := strings.CutPrefix(src, "/out/")
				if !ok {
					t.Errorf("stage %q copies %s, which is not a build output", s.Name, src)
					continue
				}
				f, err := elf.Open(filepath.Join(dir, name))
				if err != nil {
					t.Errorf("stage %q copies %s: %v", s.Name, src, err)
					continue
				}
				libs, _ := f.ImportedLibraries()
				if slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP }) || len(libs) > 0 {
					t.Errorf("%s is dynamically linked (%v); distroless/static needs a static binary", name, libs)
				}
				f.Close()
			}
		}
	}
}

// runHelp runs a built binary with args and returns what it printed.
func runHelp(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDockerignore checks that the build context holds what the Dockerfile
// copies and none of the development secrets or the git history.
func TestDockerignore(t *testing.T) {
	t.Parallel()
	patterns, err := ignorefile.ReadAll(bytes.NewReader(readRepoFile(t, ".dockerignore")))
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	excluded := func(p string) bool {
		ex, err := pm.MatchesOrParentMatches(p)
		if err != nil {
			t.Fatal(err)
		}
		return ex
	}
	d := parseDockerfile(t)
	build, _ := d.stage("build")
	for _, c := range build.Commands {
		if cp, ok := c.(*instructions.CopyCommand); ok {
			for _, src := range cp.SourcePaths {
				p := path.Clean(src)
				if strings.HasSuffix(src, "/") {
					p = path.Join(p, "go.mod") // a file inside the directory
				}
				if excluded(p) {
					t.Errorf(".dockerignore excludes %s, which the Dockerfile copies", p)
				}
			}
		}
	}
	for _, p := range []string{"services/gateway/cmd/gateway/main.go", "proto/go.mod", "deploy/cmd/healthcheck/main.go"} {
		if excluded(p) {
			t.Errorf(".dockerignore excludes %s", p)
		}
	}
	for _, p := range []string{".git/config", "deploy/secrets/dev/credential-pepper", "deploy/secrets/dev/signing-keys.pem", "data/nats", "bin/buf", "docker-compose.yml"} {
		if !excluded(p) {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
}
