package deploy

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// overlays are the kustomize overlays and what each must hold.
var overlays = map[string]struct {
	namespace       string
	gatewayMin      int32 // HPA minReplicas at least
	natsReplicas    int32
	jsReplicas      string // AMS_GATEWAY_JETSTREAM_REPLICAS
	externalSecrets map[string][]string
	tls             bool
	images          string // the AMS images: this prefix, then account, link, gateway
	tag             *regexp.Regexp
}{
	"dev": {
		namespace: "ams-dev", gatewayMin: 2, natsReplicas: 1, jsReplicas: "1",
		// What docker compose builds (TestComposeAndKubernetesAgree).
		images: "amsrouter/ams-", tag: regexp.MustCompile(`^dev$`),
	},
	"prod": {
		namespace: "ams", gatewayMin: 2, natsReplicas: 3, jsReplicas: "3", tls: true,
		images: "ghcr.io/amsrouter/ams-", tag: regexp.MustCompile(`^v\d+\.\d+\.\d+$`),
		// Secrets the operator creates; docs/deploy.md lists them.
		externalSecrets: map[string][]string{
			"ams-account": {"credential-pepper", "database-url"},
			"ams-link":    {"database-url", "signing-keys.pem"},
			"ams-gateway": {"derivation-pepper"},
			"ams-tls":     nil, // kubernetes.io/tls, referenced by the Ingress
		},
	},
}

// strictDecoder decodes with client-go's scheme and fails on unknown or
// duplicate fields.
var strictDecoder = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// manifests is one built overlay, decoded.
type manifests struct {
	objects      []runtime.Object
	deployments  map[string]*appsv1.Deployment
	statefulSets map[string]*appsv1.StatefulSet
	services     map[string]*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler
	pdbs         map[string]*policyv1.PodDisruptionBudget
	netpols      []*networkingv1.NetworkPolicy
	ingresses    map[string]*networkingv1.Ingress
	namespaces   map[string]*corev1.Namespace
}

// kustomizeTree copies deploy/k8s and deploy/secrets into a temporary
// directory and generates the development secrets there, as a developer
// would with scripts/dev-secrets.sh; it returns the copy's deploy/.
func kustomizeTree(t *testing.T) string {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "deploy")
	for _, dir := range []string{"k8s", "secrets"} {
		src := filepath.Join(root, "deploy", dir)
		err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			dst := filepath.Join(tmp, dir, rel)
			if d.IsDir() {
				return os.MkdirAll(dst, 0o755)
			}
			if dir == "secrets" && !slices.Contains([]string{"kustomization.yaml", "README.md", ".gitignore"}, d.Name()) {
				return nil // a developer's generated secrets: not ours to read
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(dst, b, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	devSecrets(t, filepath.Join(tmp, "secrets", "dev"))
	return tmp
}

// build runs kustomize on dir and strict-decodes every object.
func build(t *testing.T, dir string) *manifests {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	m := &manifests{
		deployments: map[string]*appsv1.Deployment{}, statefulSets: map[string]*appsv1.StatefulSet{},
		services: map[string]*corev1.Service{}, configMaps: map[string]*corev1.ConfigMap{},
		secrets: map[string]*corev1.Secret{}, hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, ingresses: map[string]*networkingv1.Ingress{},
		namespaces: map[string]*corev1.Namespace{},
	}
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, gvk, err := strictDecoder.Decode(y, nil, nil)
		if err != nil {
			t.Fatalf("decode %s %s: %v\n%s", r.GetKind(), r.GetName(), err, y)
		}
		m.objects = append(m.objects, obj)
		switch o := obj.(type) {
		case *appsv1.Deployment:
			m.deployments[o.Name] = o
		case *appsv1.StatefulSet:
			m.statefulSets[o.Name] = o
		case *corev1.Service:
			m.services[o.Name] = o
		case *corev1.ConfigMap:
			m.configMaps[o.Name] = o
		case *corev1.Secret:
			m.secrets[o.Name] = o
		case *autoscalingv2.HorizontalPodAutoscaler:
			m.hpas[o.Name] = o
		case *policyv1.PodDisruptionBudget:
			m.pdbs[o.Name] = o
		case *networkingv1.NetworkPolicy:
			m.netpols = append(m.netpols, o)
		case *networkingv1.Ingress:
			m.ingresses[o.Name] = o
		case *corev1.Namespace:
			m.namespaces[o.Name] = o
		default:
			t.Errorf("unexpected object %s %s", gvk, r.GetName())
		}
	}
	return m
}

// workload is a pod template and where it comes from.
type workload struct {
	kind, name string
	tmpl       *corev1.PodTemplateSpec
}

func (m *manifests) workloads() []workload {
	var ws []workload
	for n, d := range m.deployments {
		ws = append(ws, workload{"Deployment", n, &d.Spec.Template})
	}
	for n, s := range m.statefulSets {
		ws = append(ws, workload{"StatefulSet", n, &s.Spec.Template})
	}
	slices.SortFunc(ws, func(a, b workload) int { return strings.Compare(a.name, b.name) })
	return ws
}

// byGeneratedName finds a generated ConfigMap or Secret by its name before
// kustomize added the content hash.
func byGeneratedName[T any](objs map[string]T, name string) (T, string, bool) {
	for n, o := range objs {
		if n == name || regexp.MustCompile(`^`+regexp.QuoteMeta(name)+`-[a-z0-9]{10}$`).MatchString(n) {
			return o, n, true
		}
	}
	var zero T
	return zero, "", false
}

// containerEnv returns a container's environment: envFrom ConfigMaps
// first, then env values (valueFrom ones as "").
func (m *manifests) containerEnv(t *testing.T, c *corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			if cm, ok := m.configMaps[ef.ConfigMapRef.Name]; ok {
				for k, v := range cm.Data {
					env[k] = v
				}
			}
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

func TestKustomizeOverlays(t *testing.T) {
	t.Parallel()
	tree := kustomizeTree(t)
	known := knownEnv(t)
	for name, want := range overlays {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := build(t, filepath.Join(tree, "k8s", "overlays", name))
			checkNamespace(t, m, want.namespace)
			checkWorkloads(t, m, known)
			checkReferences(t, m, want.externalSecrets)
			checkServices(t, m)
			checkGateway(t, m, want.gatewayMin, want.jsReplicas)
			checkNATS(t, m, want.natsReplicas)
			checkNetworkPolicies(t, m, want.namespace)
			checkScrape(t, m)
			checkIngress(t, m, want.tls)
			checkImages(t, m, want.images, want.tag)
		})
	}
	t.Run("base", func(t *testing.T) {
		t.Parallel()
		m := build(t, filepath.Join(tree, "k8s", "base"))
		if len(m.deployments) != 3 || len(m.statefulSets) != 1 {
			t.Errorf("base has %d Deployments and %d StatefulSets, want account, link, gateway and nats", len(m.deployments), len(m.statefulSets))
		}
	})
}

func checkNamespace(t *testing.T, m *manifests, ns string) {
	t.Helper()
	n, ok := m.namespaces[ns]
	if !ok {
		t.Fatalf("no Namespace %s", ns)
	}
	if got := n.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("Namespace %s: pod security %q, want restricted", ns, got)
	}
	for _, o := range m.objects {
		acc, err := metaAccessor(o)
		if err != nil {
			t.Fatal(err)
		}
		if _, isNS := o.(*corev1.Namespace); !isNS && acc.GetNamespace() != ns {
			t.Errorf("%T %s in namespace %q, want %s", o, acc.GetName(), acc.GetNamespace(), ns)
		}
	}
}

func metaAccessor(o runtime.Object) (metav1.Object, error) {
	mo, ok := o.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no metadata", o)
	}
	return mo, nil
}

// programOf maps an AMS image to the binary it runs ("" for others).
func programOf(image string) string {
	for _, p := range []string{"account", "link", "gateway"} {
		if strings.Contains(image, "/ams-"+p+":") {
			return p
		}
	}
	return ""
}

func checkWorkloads(t *testing.T, m *manifests, known map[string]map[string]bool) {
	t.Helper()
	for _, w := range m.workloads() {
		where := w.kind + " " + w.name
		spec := &w.tmpl.Spec
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken is not false", where)
		}
		psc := spec.SecurityContext
		if psc == nil {
			psc = &corev1.PodSecurityContext{}
		}
		if spec.HostNetwork || spec.HostPID || spec.HostIPC {
			t.Errorf("%s: uses host namespaces", where)
		}
		if len(spec.InitContainers) > 0 {
			t.Errorf("%s: init containers are not checked here; add them to the checks", where)
		}
		for i := range spec.Containers {
			c := &spec.Containers[i]
			where := where + " container " + c.Name
			if tag := imageTag(c.Image); tag == "" || tag == "latest" {
				t.Errorf("%s: image %q, want an explicit tag other than latest", where, c.Image)
			}
			if c.ReadinessProbe == nil || c.LivenessProbe == nil {
				t.Errorf("%s: want readiness and liveness probes", where)
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
				if req.IsZero() || lim.IsZero() {
					t.Errorf("%s: want %s request and limit", where, r)
				} else if req.Cmp(lim) > 0 {
					t.Errorf("%s: %s request %s above limit %s", where, r, req.String(), lim.String())
				}
			}
			sc := c.SecurityContext
			if sc == nil {
				t.Errorf("%s: no securityContext", where)
				continue
			}
			nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (sc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
			if !nonRoot {
				t.Errorf("%s: runAsNonRoot is not true", where)
			}
			if uid := sc.RunAsUser; (uid != nil && *uid == 0) || (uid == nil && psc.RunAsUser != nil && *psc.RunAsUser == 0) {
				t.Errorf("%s: runs as uid 0", where)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s: privileged", where)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation is not false", where)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: readOnlyRootFilesystem is not true", where)
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s: capabilities %+v, want drop ALL and add none", where, sc.Capabilities)
			}
			seccomp := sc.SeccompProfile
			if seccomp == nil {
				seccomp = psc.SeccompProfile
			}
			if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: seccomp profile %+v, want RuntimeDefault", where, seccomp)
			}
			// Probes use declared ports.
			for _, p := range []*corev1.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
				if p != nil && p.HTTPGet != nil && !hasPort(c, p.HTTPGet.Port) {
					t.Errorf("%s: probe %s on port %s, which the container does not declare", where, p.HTTPGet.Path, p.HTTPGet.Port.String())
				}
			}
			// Every AMS_* variable is one the binary reads.
			if prog := programOf(c.Image); prog != "" {
				var keys []string
				for k := range m.containerEnv(t, c) {
					keys = append(keys, k)
				}
				checkEnv(t, where, prog, known, keys)
			}
		}
	}
}

func hasPort(c *corev1.Container, p intstr.IntOrString) bool {
	return slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool {
		if p.Type == intstr.String {
			return cp.Name == p.StrVal
		}
		return cp.ContainerPort == p.IntVal
	})
}

// checkReferences: every ConfigMap and Secret a pod or Ingress uses exists
// with the keys asked for, or is one of the external Secrets (with exactly
// the keys documented).
func checkReferences(t *testing.T, m *manifests, external map[string][]string) {
	t.Helper()
	usedExternal := map[string][]string{}
	secretKey := func(where, name, key string) {
		if s, ok := m.secrets[name]; ok {
			_, inData := s.Data[key]
			_, inString := s.StringData[key]
			if key != "" && !inData && !inString {
				t.Errorf("%s: Secret %s has no key %q", where, name, key)
			}
			return
		}
		if _, ok := external[name]; !ok {
			t.Errorf("%s: Secret %s is neither in the overlay nor an expected external Secret", where, name)
			return
		}
		if key != "" && !slices.Contains(usedExternal[name], key) {
			usedExternal[name] = append(usedExternal[name], key)
		}
		if _, ok := usedExternal[name]; !ok {
			usedExternal[name] = nil
		}
	}
	configMapKey := func(where, name, key string) {
		cm, ok := m.configMaps[name]
		if !ok {
			t.Errorf("%s: ConfigMap %s does not exist", where, name)
			return
		}
		if _, ok := cm.Data[key]; key != "" && !ok {
			t.Errorf("%s: ConfigMap %s has no key %q", where, name, key)
		}
	}
	for _, w := range m.workloads() {
		where := w.kind + " " + w.name
		for _, c := range w.tmpl.Spec.Containers {
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil {
					configMapKey(where, ef.ConfigMapRef.Name, "")
				}
				if ef.SecretRef != nil {
					secretKey(where, ef.SecretRef.Name, "")
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					secretKey(where, r.Name, r.Key)
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					configMapKey(where, r.Name, r.Key)
				}
			}
			// Mounts name volumes; *_FILE variables name mounted files.
			for _, vm := range c.VolumeMounts {
				if !slices.ContainsFunc(w.tmpl.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name }) &&
					!slices.ContainsFunc(statefulClaims(m, w), func(n string) bool { return n == vm.Name }) {
					t.Errorf("%s: mount of undefined volume %s", where, vm.Name)
				}
			}
			for _, e := range c.Env {
				if strings.HasPrefix(e.Name, "AMS_") && strings.HasSuffix(e.Name, "_FILE") && !mountedFile(w.tmpl, &c, e.Value) {
					t.Errorf("%s: %s=%s is not a file of a mounted Secret", where, e.Name, e.Value)
				}
			}
		}
		for _, v := range w.tmpl.Spec.Volumes {
			if v.Secret != nil {
				if len(v.Secret.Items) == 0 {
					secretKey(where, v.Secret.SecretName, "")
				}
				for _, it := range v.Secret.Items {
					secretKey(where, v.Secret.SecretName, it.Key)
				}
			}
			if v.ConfigMap != nil {
				configMapKey(where, v.ConfigMap.Name, "")
			}
		}
	}
	for n, ing := range m.ingresses {
		for _, tls := range ing.Spec.TLS {
			secretKey("Ingress "+n, tls.SecretName, "")
		}
	}
	for name, keys := range usedExternal {
		slices.Sort(keys)
		if want := external[name]; !slices.Equal(keys, want) {
			t.Errorf("external Secret %s: used keys %v, documented %v", name, keys, want)
		}
	}
	for name := range external {
		if _, ok := usedExternal[name]; !ok {
			t.Errorf("external Secret %s is expected but nothing uses it", name)
		}
	}
	// The documentation names every external Secret and key.
	if len(external) > 0 {
		doc := string(readRepoFile(t, "docs/deploy.md"))
		for name, keys := range external {
			for _, s := range append([]string{name}, keys...) {
				if !strings.Contains(doc, "`"+s+"`") {
					t.Errorf("docs/deploy.md does not mention `%s` (external Secret %s)", s, name)
				}
			}
		}
	}
}

func statefulClaims(m *manifests, w workload) []string {
	var names []string
	if s, ok := m.statefulSets[w.name]; ok && w.kind == "StatefulSet" {
		for _, c := range s.Spec.VolumeClaimTemplates {
			names = append(names, c.Name)
		}
	}
	return names
}

// mountedFile reports whether path is a file of a Secret volume mounted in c.
func mountedFile(tmpl *corev1.PodTemplateSpec, c *corev1.Container, path string) bool {
	for _, vm := range c.VolumeMounts {
		dir, file := filepath.Split(path)
		if filepath.Clean(dir) != filepath.Clean(vm.MountPath) {
			continue
		}
		for _, v := range tmpl.Spec.Volumes {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			if len(v.Secret.Items) == 0 {
				return true
			}
			for _, it := range v.Secret.Items {
				if it.Path == file {
					return true
				}
			}
		}
	}
	return false
}

// checkServices: every Service selects pods and targets ports they have.
func checkServices(t *testing.T, m *manifests) {
	t.Helper()
	for n, s := range m.services {
		sel := labels.SelectorFromSet(s.Spec.Selector)
		var matched []workload
		for _, w := range m.workloads() {
			if len(s.Spec.Selector) > 0 && sel.Matches(labels.Set(w.tmpl.Labels)) {
				matched = append(matched, w)
			}
		}
		if len(matched) == 0 {
			t.Errorf("Service %s selects no pods", n)
			continue
		}
		for _, p := range s.Spec.Ports {
			for _, w := range matched {
				if !slices.ContainsFunc(w.tmpl.Spec.Containers, func(c corev1.Container) bool { return hasPort(&c, p.TargetPort) }) {
					t.Errorf("Service %s port %s targets %s, which %s %s does not declare", n, p.Name, p.TargetPort.String(), w.kind, w.name)
				}
			}
		}
	}
}

// serviceFor resolves "host:port" (optionally dns:///, nats://) to a Service.
func serviceFor(t *testing.T, m *manifests, addr string) (*corev1.Service, int32) {
	t.Helper()
	addr = strings.TrimPrefix(strings.TrimPrefix(addr, "dns:///"), "nats://")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	s, ok := m.services[host]
	if !ok {
		t.Fatalf("address %q: no Service %s", addr, host)
	}
	n, _ := strconv.Atoi(port)
	if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == int32(n) }) {
		t.Errorf("address %q: Service %s has no port %s", addr, host, port)
	}
	return s, int32(n)
}

func checkGateway(t *testing.T, m *manifests, minReplicas int32, jsReplicas string) {
	t.Helper()
	d, ok := m.deployments["gateway"]
	if !ok {
		t.Fatal("no gateway Deployment")
	}
	if d.Spec.Replicas != nil {
		t.Errorf("gateway Deployment sets replicas %d: the HPA owns the count, and an apply would reset it", *d.Spec.Replicas)
	}
	// The HPA scales the gateway Deployment on CPU.
	var hpa *autoscalingv2.HorizontalPodAutoscaler
	for _, h := range m.hpas {
		if ref := h.Spec.ScaleTargetRef; ref.Kind == "Deployment" && ref.Name == d.Name && ref.APIVersion == "apps/v1" {
			hpa = h
		}
	}
	if hpa == nil {
		t.Fatal("no HorizontalPodAutoscaler scales the gateway Deployment")
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < minReplicas {
		t.Errorf("gateway HPA minReplicas %s, want at least %d", deref(hpa.Spec.MinReplicas), minReplicas)
	} else if hpa.Spec.MaxReplicas < *hpa.Spec.MinReplicas {
		t.Errorf("gateway HPA maxReplicas %d below minReplicas %d", hpa.Spec.MaxReplicas, *hpa.Spec.MinReplicas)
	}
	if !slices.ContainsFunc(hpa.Spec.Metrics, func(ms autoscalingv2.MetricSpec) bool {
		return ms.Type == autoscalingv2.ResourceMetricSourceType && ms.Resource != nil && ms.Resource.Name == corev1.ResourceCPU
	}) {
		t.Error("gateway HPA does not scale on CPU")
	}
	c := &d.Spec.Template.Spec.Containers[0]
	if c.Resources.Requests.Cpu().IsZero() {
		t.Error("gateway has no CPU request, which CPU utilisation is measured against")
	}
	// A PDB covers the gateway pods.
	checkPDB(t, m, "gateway", d.Spec.Template.Labels)

	// Rollouts drain: a new pod is ready before an old one stops; preStop
	// waits for the endpoint to go; the grace period covers preStop and
	// the gateway's own shutdown grace.
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Error("gateway rollout may take a replica down before its successor is ready (want maxUnavailable 0)")
	}
	env := m.containerEnv(t, c)
	var preStop time.Duration
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Error("gateway has no preStop sleep (endpoints must be removed before SIGTERM)")
	} else {
		preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	grace, err := time.ParseDuration(env["AMS_GATEWAY_SHUTDOWN_GRACE"])
	if err != nil {
		t.Errorf("AMS_GATEWAY_SHUTDOWN_GRACE=%q: %v", env["AMS_GATEWAY_SHUTDOWN_GRACE"], err)
	}
	tgp := d.Spec.Template.Spec.TerminationGracePeriodSeconds
	if need := preStop + grace + 5*time.Second; tgp == nil || time.Duration(*tgp)*time.Second < need {
		t.Errorf("gateway terminationGracePeriodSeconds %s, want at least %v (preStop %v + shutdown grace %v + margin)", deref(tgp), need, preStop, grace)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("gateway readiness probe is not GET /readyz")
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Error("gateway liveness probe is not GET /healthz")
	}
	// Wiring: account and link through headless Services (the gRPC client
	// balances over every replica), NATS through its client Service.
	for _, k := range []string{"AMS_GATEWAY_ACCOUNT_ADDR", "AMS_GATEWAY_LINK_ADDR"} {
		if !strings.HasPrefix(env[k], "dns:///") {
			t.Errorf("%s=%q, want dns:///<service>:<port> (round-robin over replicas)", k, env[k])
		}
		s, _ := serviceFor(t, m, env[k])
		if s.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("%s: Service %s is not headless; one gRPC connection would pin one replica", k, s.Name)
		}
	}
	// The public gRPC API (ams.v1): a container port named grpc on the
	// gateway's -grpc-addr, behind a Service port named grpc.
	if grpcPort := int32(addrPort(t, "gateway", env["AMS_GATEWAY_GRPC_ADDR"])); grpcPort != 0 {
		if i := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "grpc" }); i < 0 || c.Ports[i].ContainerPort != grpcPort {
			t.Errorf("gateway container ports %+v, want grpc on %d (AMS_GATEWAY_GRPC_ADDR)", c.Ports, grpcPort)
		}
		svc, ok := m.services["gateway"]
		if !ok {
			t.Fatal("no gateway Service")
		}
		i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "grpc" })
		switch {
		case i < 0:
			t.Errorf("gateway Service has no port named grpc: %+v", svc.Spec.Ports)
		case svc.Spec.Ports[i].TargetPort != intstr.FromString("grpc") && svc.Spec.Ports[i].TargetPort != intstr.FromInt32(grpcPort):
			t.Errorf("gateway Service port grpc targets %s, want the container port grpc", svc.Spec.Ports[i].TargetPort.String())
		case svc.Spec.Ports[i].AppProtocol == nil || *svc.Spec.Ports[i].AppProtocol != "grpc":
			t.Error("gateway Service port grpc has no appProtocol grpc")
		}
	}
	if s, _ := serviceFor(t, m, env["AMS_GATEWAY_NATS_URL"]); s.Spec.Selector["app.kubernetes.io/name"] != "nats" {
		t.Errorf("AMS_GATEWAY_NATS_URL %s does not reach the NATS pods", env["AMS_GATEWAY_NATS_URL"])
	}
	if got := env["AMS_GATEWAY_JETSTREAM_REPLICAS"]; got != jsReplicas {
		t.Errorf("AMS_GATEWAY_JETSTREAM_REPLICAS=%q, want %s", got, jsReplicas)
	}
	if env["AMS_GATEWAY_DERIVATION_PEPPER_FILE"] == "" {
		t.Error("gateway has no derivation pepper")
	}
	checkMemLimit(t, c)
	if e := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "AMS_GATEWAY_NAME" }); e < 0 || c.Env[e].ValueFrom == nil || c.Env[e].ValueFrom.FieldRef == nil || c.Env[e].ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Error("AMS_GATEWAY_NAME is not the pod name (replicas need distinct names)")
	}
	for _, svc := range []string{"account", "link"} {
		checkPDB(t, m, svc, m.deployments[svc].Spec.Template.Labels)
	}
}

// metricsAddr is, per AMS binary, the variable of the listener serving
// /metrics: the gateway's public HTTP port (spec 3.8), the services' admin
// listener.
var metricsAddr = map[string]string{
	"gateway": "AMS_GATEWAY_HTTP_ADDR",
	"account": "AMS_ACCOUNT_ADMIN_ADDR",
	"link":    "AMS_LINK_ADMIN_ADDR",
}

// scrapePort returns the port a workload's prometheus.io annotations ask
// Prometheus to scrape, 0 when it is not scraped.
func scrapePort(t *testing.T, w workload) int32 {
	t.Helper()
	a := w.tmpl.Annotations
	if a["prometheus.io/scrape"] != "true" {
		return 0
	}
	n, err := strconv.ParseInt(a["prometheus.io/port"], 10, 32)
	if err != nil {
		t.Errorf("%s %s: prometheus.io/port %q is not a port number", w.kind, w.name, a["prometheus.io/port"])
		return 0
	}
	return int32(n)
}

// checkScrape: every AMS workload's pods carry the prometheus.io scrape
// annotations, naming the port and path its binary serves /metrics on.
func checkScrape(t *testing.T, m *manifests) {
	t.Helper()
	scraped := 0
	for _, w := range m.workloads() {
		where := w.kind + " " + w.name
		port := scrapePort(t, w)
		if port != 0 {
			scraped++
			if got := w.tmpl.Annotations["prometheus.io/path"]; got != "/metrics" {
				t.Errorf("%s: prometheus.io/path %q, want /metrics", where, got)
			}
			if !slices.ContainsFunc(w.tmpl.Spec.Containers, func(c corev1.Container) bool { return hasPort(&c, intstr.FromInt32(port)) }) {
				t.Errorf("%s: scraped on port %d, which no container declares", where, port)
			}
		}
		for i := range w.tmpl.Spec.Containers {
			c := &w.tmpl.Spec.Containers[i]
			prog := programOf(c.Image)
			if prog == "" {
				continue
			}
			want := int32(addrPort(t, where, m.containerEnv(t, c)[metricsAddr[prog]]))
			if port != want {
				t.Errorf("%s: scrape annotations give port %d, want prometheus.io/scrape \"true\" and port %d (%s, where %s serves /metrics)", where, port, want, metricsAddr[prog], prog)
			}
		}
	}
	if scraped < len(metricsAddr) {
		t.Errorf("%d workloads are scraped, want at least the %d AMS services", scraped, len(metricsAddr))
	}
}

func checkPDB(t *testing.T, m *manifests, what string, podLabels map[string]string) {
	t.Helper()
	for _, p := range m.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		if !sel.Empty() && sel.Matches(labels.Set(podLabels)) {
			if p.Spec.MinAvailable == nil && p.Spec.MaxUnavailable == nil {
				t.Errorf("PDB %s sets neither minAvailable nor maxUnavailable", p.Name)
			}
			return
		}
	}
	t.Errorf("no PodDisruptionBudget selects the %s pods", what)
}

func checkNATS(t *testing.T, m *manifests, replicas int32) {
	t.Helper()
	ss, ok := m.statefulSets["nats"]
	if !ok {
		t.Fatal("no nats StatefulSet")
	}
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != replicas {
		t.Errorf("nats replicas %v, want %d", ss.Spec.Replicas, replicas)
	}
	headless, ok := m.services[ss.Spec.ServiceName]
	if !ok || headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("nats serviceName %q is not a headless Service publishing not-ready addresses", ss.Spec.ServiceName)
	}
	checkPDB(t, m, "nats", ss.Spec.Template.Labels)
	c := &ss.Spec.Template.Spec.Containers[0]
	port := func(name string) int {
		for _, p := range c.Ports {
			if p.Name == name {
				return int(p.ContainerPort)
			}
		}
		return -1
	}
	mountOf := func(vol string) string {
		for _, vm := range c.VolumeMounts {
			if vm.Name == vol {
				return vm.MountPath
			}
		}
		return ""
	}
	// The config file nats-server is started with, from its ConfigMap.
	i := slices.Index(c.Command, "--config")
	if i < 0 || i+1 >= len(c.Command) {
		t.Fatalf("nats command %q has no --config", c.Command)
	}
	confPath := c.Command[i+1]
	var conf string
	for _, v := range ss.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil && mountOf(v.Name) == filepath.Dir(confPath) {
			conf = m.configMaps[v.ConfigMap.Name].Data[filepath.Base(confPath)]
		}
	}
	if conf == "" {
		t.Fatalf("nats config %s is not in a mounted ConfigMap", confPath)
	}
	// Parse it with nats-server, as pod nats-0 would ($SERVER_NAME is the
	// pod name there).
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "SERVER_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
	}) {
		t.Error("nats: SERVER_NAME is not the pod name")
	}
	file := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(conf, "$SERVER_NAME", `"nats-0"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(file)
	if err != nil {
		t.Fatalf("nats.conf: %v", err)
	}
	if opts.ServerName != "nats-0" || !opts.JetStream {
		t.Errorf("nats.conf: server name %q, JetStream %v", opts.ServerName, opts.JetStream)
	}
	if opts.StoreDir == "" || mountOf("data") != opts.StoreDir ||
		!slices.ContainsFunc(ss.Spec.VolumeClaimTemplates, func(p corev1.PersistentVolumeClaim) bool { return p.Name == "data" }) {
		t.Errorf("nats.conf store_dir %q is not the data volume claim's mount (%q)", opts.StoreDir, mountOf("data"))
	}
	if opts.Port != port("client") || opts.HTTPPort != port("monitor") {
		t.Errorf("nats.conf ports client %d monitor %d, container %d and %d", opts.Port, opts.HTTPPort, port("client"), port("monitor"))
	}
	if opts.PidFile == "" || mountOf("pid") != filepath.Dir(opts.PidFile) {
		t.Errorf("nats.conf pid_file %q is not on the pid volume (the preStop lame-duck signal reads it)", opts.PidFile)
	}
	if tgp := ss.Spec.Template.Spec.TerminationGracePeriodSeconds; tgp == nil || time.Duration(*tgp)*time.Second <= opts.LameDuckDuration+opts.LameDuckGracePeriod {
		t.Errorf("nats terminationGracePeriodSeconds %s does not cover lame duck %v + %v", deref(tgp), opts.LameDuckDuration, opts.LameDuckGracePeriod)
	}
	// A cluster of N nodes routes to every pod of the StatefulSet.
	if replicas == 1 {
		if len(opts.Routes) != 0 || opts.Cluster.Port != 0 {
			t.Errorf("single-node nats has cluster routes %v", opts.Routes)
		}
		return
	}
	if opts.Cluster.Port != port("cluster") || opts.Cluster.Name == "" {
		t.Errorf("nats.conf cluster port %d (container %d), name %q", opts.Cluster.Port, port("cluster"), opts.Cluster.Name)
	}
	var routes []string
	for _, r := range opts.Routes {
		routes = append(routes, r.Host)
	}
	var want []string
	for i := range replicas {
		want = append(want, fmt.Sprintf("%s-%d.%s:%d", ss.Name, i, ss.Spec.ServiceName, opts.Cluster.Port))
	}
	if !slices.Equal(routes, want) {
		t.Errorf("nats routes %v, want %v", routes, want)
	}
}

func checkIngress(t *testing.T, m *manifests, tls bool) {
	t.Helper()
	ing, ok := m.ingresses["gateway"]
	if !ok {
		t.Fatal("no gateway Ingress")
	}
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
		t.Errorf("Ingress class %v, want nginx (the annotations are ingress-nginx's)", ing.Spec.IngressClassName)
	}
	// WebSocket and SSE connections outlive nginx's 60s defaults.
	for _, a := range []string{"proxy-read-timeout", "proxy-send-timeout"} {
		v, err := strconv.Atoi(ing.Annotations["nginx.ingress.kubernetes.io/"+a])
		if err != nil || v < 3600 {
			t.Errorf("Ingress %s %q, want at least 3600 seconds", a, ing.Annotations["nginx.ingress.kubernetes.io/"+a])
		}
	}
	if got := ing.Annotations["nginx.ingress.kubernetes.io/proxy-buffering"]; got != "off" {
		t.Errorf("Ingress proxy-buffering %q, want off (SSE)", got)
	}
	if _, sticky := ing.Annotations["nginx.ingress.kubernetes.io/affinity"]; sticky {
		t.Error("Ingress has session affinity; any gateway serves any client")
	}
	for _, r := range ing.Spec.Rules {
		for _, p := range r.HTTP.Paths {
			b := p.Backend.Service
			s, ok := m.services[b.Name]
			if !ok || s.Spec.Selector["app.kubernetes.io/name"] != "gateway" {
				t.Errorf("Ingress backend %s is not the gateway Service", b.Name)
				continue
			}
			if !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool {
				return sp.Name == b.Port.Name && b.Port.Name != "" || sp.Port == b.Port.Number
			}) {
				t.Errorf("Ingress backend port %+v is not a port of Service %s", b.Port, b.Name)
			}
		}
	}
	if tls && len(ing.Spec.TLS) == 0 {
		t.Error("Ingress has no TLS")
	}
}

// checkImages: the AMS images are prefix+service with one tag matching
// tagRE; NATS is the version the tests embed.
func checkImages(t *testing.T, m *manifests, prefix string, tagRE *regexp.Regexp) {
	t.Helper()
	natsVersion := moduleVersion(t, "services/go.mod", "github.com/nats-io/nats-server/v2")
	tags := map[string]bool{}
	for _, w := range m.workloads() {
		for _, c := range w.tmpl.Spec.Containers {
			repo, tag, _ := strings.Cut(c.Image, ":")
			switch {
			case strings.Contains(repo, "ams-"):
				tags[tag] = true
				if prog := programOf(c.Image); repo != prefix+prog || !tagRE.MatchString(tag) {
					t.Errorf("%s %s: image %s, want %s<service>:<tag matching %s>", w.kind, w.name, c.Image, prefix, tagRE)
				}
			case repo == "nats":
				// The server the tests embed is the server we run.
				if !strings.HasPrefix(tag, strings.TrimPrefix(natsVersion, "v")+"-") {
					t.Errorf("nats image %s, want the nats-server version of services/go.mod (%s)", c.Image, natsVersion)
				}
			}
		}
	}
	if len(tags) != 1 {
		t.Errorf("AMS images have tags %v, want one release for all", tags)
	}
}

// deref formats an optional number.
func deref[T int32 | int64](p *T) string {
	if p == nil {
		return "unset"
	}
	return strconv.FormatInt(int64(*p), 10)
}

func moduleVersion(t *testing.T, gomod, module string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(module) + `\s+(v\S+)`).FindStringSubmatch(string(readRepoFile(t, gomod)))
	if m == nil {
		t.Fatalf("%s does not require %s", gomod, module)
	}
	return m[1]
}

// TestStrictDecodeRejectsTypos makes sure the decoder the overlay checks
// use fails on a misspelt field rather than dropping it.
func TestStrictDecodeRejectsTypos(t *testing.T) {
	t.Parallel()
	const typo = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: x
spec:
  replica: 2
  selector:
    matchLabels: {app: x}
  template:
    metadata:
      labels: {app: x}
    spec:
      containers:
      - name: x
        image: x:v1
`
	if _, _, err := strictDecoder.Decode([]byte(typo), nil, nil); err == nil || !strings.Contains(err.Error(), "replica") {
		t.Fatalf("decode of a Deployment with spec.replica: err = %v, want a strict decoding error", err)
	}
	if _, _, err := strictDecoder.Decode([]byte(strings.Replace(typo, "replica:", "replicas:", 1)), nil, nil); err != nil {
		t.Fatalf("decode of the corrected Deployment: %v", err)
	}
}

// TestComposeAndKubernetesAgree: the same NATS image in both, and the dev
// overlay runs the images docker compose builds.
func TestComposeAndKubernetesAgree(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	dev := overlays["dev"]
	for name, s := range p.Services {
		if s.Build == nil || *s.Build.Args["SERVICE"] == "ams" {
			continue
		}
		repo, tag, _ := strings.Cut(s.Image, ":")
		if want := dev.images + *s.Build.Args["SERVICE"]; repo != want || !dev.tag.MatchString(tag) {
			t.Errorf("compose %s builds %s; the dev overlay runs %s:<%s>", name, s.Image, want, dev.tag)
		}
	}
	b := readRepoFile(t, "deploy/k8s/base/kustomization.yaml")
	repo, tag, _ := strings.Cut(p.Services["nats"].Image, ":")
	if !strings.Contains(string(b), "name: "+repo+"\n  newTag: "+tag+"\n") {
		t.Errorf("compose runs %s:%s; deploy/k8s/base/kustomization.yaml pins another nats image", repo, tag)
	}
}

// checkMemLimit: the gateway's GOMEMLIMIT is set, parses as the Go runtime
// reads it, and lies between 75% and 95% of the container's memory limit,
// so that the collector works harder before the kernel kills the pod.
func checkMemLimit(t *testing.T, c *corev1.Container) {
	t.Helper()
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" })
	if i < 0 {
		t.Error("gateway has no GOMEMLIMIT")
		return
	}
	v, ok := parseMemLimit(c.Env[i].Value)
	if !ok {
		t.Errorf("GOMEMLIMIT %q does not parse", c.Env[i].Value)
		return
	}
	limit := c.Resources.Limits.Memory().Value()
	if limit == 0 || v < limit*75/100 || v > limit*95/100 {
		t.Errorf("GOMEMLIMIT %q (%d bytes) against a memory limit of %d bytes: want 75–95%% of it", c.Env[i].Value, v, limit)
	}
}

// parseMemLimit reads a GOMEMLIMIT value as the runtime does: a number of
// bytes with an optional B, KiB, MiB, GiB or TiB suffix.
func parseMemLimit(s string) (int64, bool) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n * mult, true
}
