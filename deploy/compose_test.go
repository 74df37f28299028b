package deploy

import (
	"flag"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
)

// loadCompose loads docker-compose.yml the way `docker compose` does
// (interpolation, merge keys, normalisation, consistency checks), with an
// empty environment so that defaults apply.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(abs, "docker-compose.yml")},
		cli.WithWorkingDirectory(abs),
		cli.WithEnv(nil),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cli.ProjectFromOptions(t.Context(), opts)
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
}

// gateways returns the names of the gateway services, sorted.
func gateways(p *types.Project) []string {
	var names []string
	for name, s := range p.Services {
		if s.Build != nil && s.Build.Args["SERVICE"] != nil && *s.Build.Args["SERVICE"] == "gateway" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func env(s types.ServiceConfig, key string) string {
	if v := s.Environment[key]; v != nil {
		return *v
	}
	return ""
}

func TestComposeServices(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	for _, name := range []string{"postgres", "nats", "account", "link", "migrate-account", "migrate-link"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("no service %q", name)
		}
	}
	gws := gateways(p)
	if len(gws) < 2 {
		t.Fatalf("gateway services %v, want at least two replicas", gws)
	}

	for name, s := range p.Services {
		oneShot := strings.HasPrefix(name, "migrate-")
		// Images: explicit tags, never latest.
		if tag := imageTag(s.Image); tag == "" || tag == "latest" {
			t.Errorf("%s: image %q, want an explicit tag other than latest", name, s.Image)
		}
		// Health checks on everything that keeps running.
		switch {
		case oneShot:
			if s.Restart != types.RestartPolicyNo {
				t.Errorf("%s: one-shot with restart %q, want \"no\"", name, s.Restart)
			}
		case s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) < 2:
			t.Errorf("%s: no health check", name)
		default:
			if s.Restart != types.RestartPolicyUnlessStopped && s.Restart != types.RestartPolicyAlways {
				t.Errorf("%s: restart %q, want unless-stopped", name, s.Restart)
			}
			if s.HealthCheck.Interval == nil || s.HealthCheck.Retries == nil {
				t.Errorf("%s: health check without interval or retries", name)
			}
		}
		// Our images: built from the one Dockerfile with SERVICE and the
		// metadata arguments, named after what they hold.
		if s.Build != nil {
			if s.Build.Dockerfile != dockerfilePath {
				t.Errorf("%s: dockerfile %q, want %s", name, s.Build.Dockerfile, dockerfilePath)
			}
			if s.Build.Context != p.WorkingDir {
				t.Errorf("%s: build context %q, want the repository root", name, s.Build.Context)
			}
			svc := ""
			if v := s.Build.Args["SERVICE"]; v != nil {
				svc = *v
			}
			if imageServices[svc] == nil {
				t.Errorf("%s: build arg SERVICE=%q, want one of account, link, gateway, ams", name, svc)
			}
			for _, a := range []string{"VERSION", "REVISION", "CREATED"} {
				if s.Build.Args[a] == nil {
					t.Errorf("%s: no build arg %s", name, a)
				}
			}
			repo, _, _ := strings.Cut(s.Image, ":")
			if want := map[string]string{"ams": "amsrouter/ams"}[svc]; want != "" && repo != want || want == "" && repo != "amsrouter/ams-"+svc {
				t.Errorf("%s: image %q does not name what SERVICE=%s builds", name, s.Image, svc)
			}
			// Health checks of our images use the binary in the image.
			if hc := s.HealthCheck; hc != nil && !oneShot {
				if hc.Test[0] != "CMD" || hc.Test[1] != "/usr/local/bin/healthcheck" || !strings.HasSuffix(hc.Test[2], "/readyz") {
					t.Errorf("%s: health check %q, want CMD /usr/local/bin/healthcheck http://…/readyz", name, hc.Test)
				}
			}
		}
		// depends_on waits for health or completion, never just a start.
		for dep, d := range s.DependsOn {
			target, ok := p.Services[dep]
			if !ok {
				t.Errorf("%s depends on missing %q", name, dep)
				continue
			}
			switch d.Condition {
			case types.ServiceConditionHealthy:
				if target.HealthCheck == nil {
					t.Errorf("%s waits for %s to be healthy, which has no health check", name, dep)
				}
			case types.ServiceConditionCompletedSuccessfully:
				if !strings.HasPrefix(dep, "migrate-") {
					t.Errorf("%s waits for %s to complete, which is not a one-shot", name, dep)
				}
			default:
				t.Errorf("%s depends on %s with condition %q, want service_healthy or service_completed_successfully", name, dep, d.Condition)
			}
		}
	}

	// The dependency graph: data stores first, migrations, then services.
	wantDeps := map[string]map[string]string{
		"migrate-account": {"postgres": types.ServiceConditionHealthy},
		"migrate-link":    {"postgres": types.ServiceConditionHealthy},
		"account":         {"postgres": types.ServiceConditionHealthy, "migrate-account": types.ServiceConditionCompletedSuccessfully},
		"link":            {"postgres": types.ServiceConditionHealthy, "migrate-link": types.ServiceConditionCompletedSuccessfully},
	}
	for _, gw := range gws {
		wantDeps[gw] = map[string]string{"nats": types.ServiceConditionHealthy, "account": types.ServiceConditionHealthy, "link": types.ServiceConditionHealthy}
	}
	for name, want := range wantDeps {
		for dep, cond := range want {
			if got := p.Services[name].DependsOn[dep].Condition; got != cond {
				t.Errorf("%s depends on %s with condition %q, want %q", name, dep, got, cond)
			}
		}
	}
}

func TestComposeVolumes(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	mountOf := func(svc, target string) *types.ServiceVolumeConfig {
		for _, v := range p.Services[svc].Volumes {
			if v.Target == target {
				return &v
			}
		}
		return nil
	}
	// Postgres and NATS keep their data in named volumes.
	pg := mountOf("postgres", "/var/lib/postgresql/data")
	if pg == nil || pg.Type != types.VolumeTypeVolume {
		t.Errorf("postgres: data directory is not a named volume: %+v", pg)
	} else if _, ok := p.Volumes[pg.Source]; !ok {
		t.Errorf("postgres volume %q is not declared", pg.Source)
	}

	// NATS: parse its command with nats-server's own flag parser.
	nats := p.Services["nats"]
	if len(nats.Command) < 2 || nats.Command[0] != "nats-server" {
		t.Fatalf("nats command %q, want nats-server and flags", nats.Command)
	}
	opts := natsFlags(t, nats.Command[1:])
	if !opts.JetStream {
		t.Error("nats: JetStream is not enabled")
	}
	data := mountOf("nats", opts.StoreDir)
	if opts.StoreDir == "" || data == nil || data.Type != types.VolumeTypeVolume {
		t.Errorf("nats: store dir %q is not a named volume", opts.StoreDir)
	} else if _, ok := p.Volumes[data.Source]; !ok {
		t.Errorf("nats volume %q is not declared", data.Source)
	}
	if hc := strings.Join(nats.HealthCheck.Test, " "); opts.HTTPPort == 0 ||
		!strings.Contains(hc, ":"+strconv.Itoa(opts.HTTPPort)+"/healthz?js-enabled-only=true") {
		t.Errorf("nats: health check %q does not ask the monitoring port %d for /healthz?js-enabled-only=true", hc, opts.HTTPPort)
	}

	// The init script that creates the services' databases exists and
	// creates every database the services connect to.
	init := mountOf("postgres", "/docker-entrypoint-initdb.d/10-ams.sql")
	if init == nil {
		t.Fatal("postgres: no init script")
	}
	sql, err := os.ReadFile(init.Source)
	if err != nil {
		t.Fatalf("postgres init script: %v", err)
	}
	for name, s := range p.Services {
		for k, v := range s.Environment {
			if !strings.HasSuffix(k, "DATABASE_URL") || v == nil {
				continue
			}
			u, err := url.Parse(*v)
			if err != nil || u.Host != "postgres:5432" {
				t.Errorf("%s: %s=%q, want postgres://…@postgres:5432/…", name, k, *v)
				continue
			}
			db := strings.TrimPrefix(u.Path, "/")
			if !strings.Contains(string(sql), "CREATE DATABASE "+db+" ") {
				t.Errorf("%s: database %q is not created by %s", name, db, init.Source)
			}
			if pw, _ := u.User.Password(); pw != env(p.Services["postgres"], "POSTGRES_PASSWORD") || u.User.Username() != env(p.Services["postgres"], "POSTGRES_USER") {
				t.Errorf("%s: %s does not use the postgres service's user and password", name, k)
			}
		}
	}
}

// natsFlags parses nats-server command-line flags with nats-server itself.
func natsFlags(t *testing.T, args []string) *server.Options {
	t.Helper()
	fs := flag.NewFlagSet("nats-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	opts, err := server.ConfigureOptions(fs, args, nil, nil, nil)
	if err != nil {
		t.Fatalf("nats-server %q: %v", args, err)
	}
	return opts
}

func TestComposeSecrets(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	devDir := filepath.Join(p.WorkingDir, "deploy", "secrets", "dev")
	for name, s := range p.Services {
		mounted := map[string]bool{}
		for _, ref := range s.Secrets {
			sec, ok := p.Secrets[ref.Source]
			if !ok {
				t.Errorf("%s uses undeclared secret %q", name, ref.Source)
				continue
			}
			if filepath.Dir(sec.File) != devDir {
				t.Errorf("secret %s comes from %s, want a file in deploy/secrets/dev", ref.Source, sec.File)
			}
			target := ref.Target
			if target == "" {
				target = ref.Source
			}
			if !strings.HasPrefix(target, "/") {
				target = "/run/secrets/" + target
			}
			mounted[target] = true
		}
		// Every *_FILE variable names a mounted secret, and no secret is a
		// plain variable.
		for k, v := range s.Environment {
			switch {
			case strings.HasSuffix(k, "_FILE") && strings.HasPrefix(k, "AMS_"):
				if v == nil || !mounted[*v] {
					t.Errorf("%s: %s points at %v, which is no mounted secret", name, k, v)
				}
			case regexp.MustCompile(`AMS_.*(PEPPER|SIGNING_KEYS)$`).MatchString(k):
				t.Errorf("%s: secret %s set as a plain variable; use a compose secret and %s_FILE", name, k, k)
			}
		}
	}
	// Which service needs which secret.
	wantSecret := map[string]string{
		"account": "AMS_ACCOUNT_CREDENTIAL_PEPPER_FILE",
		"link":    "AMS_LINK_SIGNING_KEYS_FILE",
	}
	for _, gw := range gateways(p) {
		wantSecret[gw] = "AMS_GATEWAY_DERIVATION_PEPPER_FILE"
	}
	var gwPepper string
	for name, k := range wantSecret {
		v := env(p.Services[name], k)
		if v == "" {
			t.Errorf("%s: %s not set", name, k)
		}
		if k == "AMS_GATEWAY_DERIVATION_PEPPER_FILE" {
			// One pepper for every gateway, or derived ids differ by replica.
			if gwPepper != "" && v != gwPepper {
				t.Errorf("%s: derivation pepper %s, other gateways %s: all replicas need the same", name, v, gwPepper)
			}
			gwPepper = v
		}
	}
	// The files compose reads are the ones scripts/dev-secrets.sh writes.
	var composeFiles []string
	for _, sec := range p.Secrets {
		composeFiles = append(composeFiles, filepath.Base(sec.File))
	}
	slices.Sort(composeFiles)
	if got := devSecretFiles(t); !slices.Equal(composeFiles, got) {
		t.Errorf("compose reads secrets %v, scripts/dev-secrets.sh writes %v", composeFiles, got)
	}
}

func TestComposeGateways(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	known := knownEnv(t)
	names, ports := map[string]string{}, map[string]string{}
	for _, gw := range gateways(p) {
		s := p.Services[gw]
		// Each replica publishes its HTTP and its gRPC (ams.v1) listener,
		// on the ports its flags give them, on host ports of its own.
		httpPort, grpcPort := addrPort(t, gw, env(s, "AMS_GATEWAY_HTTP_ADDR")), addrPort(t, gw, env(s, "AMS_GATEWAY_GRPC_ADDR"))
		published := map[uint32]string{}
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s: port %d published on %q, want loopback only (127.0.0.1)", gw, port.Target, port.HostIP)
			}
			if port.Published == "" {
				t.Errorf("%s: port %d has no fixed host port", gw, port.Target)
			}
			if other, dup := ports[port.Published]; dup {
				t.Errorf("%s and %s both publish host port %s", gw, other, port.Published)
			}
			ports[port.Published] = gw
			published[port.Target] = port.Published
		}
		if len(s.Ports) != 2 || published[httpPort] == "" || published[grpcPort] == "" {
			t.Errorf("%s: ports %+v, want a host port for HTTP (%d) and one for gRPC (%d)", gw, s.Ports, httpPort, grpcPort)
			continue
		}
		// Magic links point at the replica's own host port.
		if got, want := env(s, "AMS_GATEWAY_PUBLIC_URL"), "http://localhost:"+published[httpPort]; got != want {
			t.Errorf("%s: AMS_GATEWAY_PUBLIC_URL=%q, want %q", gw, got, want)
		}
		name := env(s, "AMS_GATEWAY_NAME")
		if other, dup := names[name]; name == "" || dup {
			t.Errorf("%s: AMS_GATEWAY_NAME %q empty or shared with %s", gw, name, other)
		}
		names[name] = gw
		if got := env(s, "AMS_GATEWAY_NATS_URL"); got != "nats://nats:4222" {
			t.Errorf("%s: AMS_GATEWAY_NATS_URL=%q, want nats://nats:4222", gw, got)
		}
		if s.StopGracePeriod == nil {
			t.Errorf("%s: no stop_grace_period for the drain", gw)
		}
	}

	// Every AMS_* variable is one the binary reads.
	for name, s := range p.Services {
		var program string
		switch {
		case s.Build == nil:
			continue
		case *s.Build.Args["SERVICE"] == "ams":
			program = "ams " + s.Command[0]
		default:
			program = *s.Build.Args["SERVICE"]
		}
		var keys []string
		for k := range s.Environment {
			keys = append(keys, k)
		}
		checkEnv(t, "docker-compose.yml service "+name, program, known, keys)
	}
}

// addrPort returns the port of a listen address (":9090", "0.0.0.0:9090");
// an empty or portless address fails the test.
func addrPort(t *testing.T, where, addr string) uint32 {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	n, perr := strconv.ParseUint(port, 10, 16)
	if err != nil || perr != nil || n == 0 {
		t.Errorf("%s: listen address %q, want host:port with a fixed port", where, addr)
		return 0
	}
	return uint32(n)
}
