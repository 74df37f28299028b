package deploy

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// endpoint is one side of a connection: a pod (namespace, labels, ports)
// or, with external set, an address outside the cluster.
type endpoint struct {
	name     string
	ns       string
	nsLabels map[string]string
	labels   map[string]string
	ports    []corev1.ContainerPort
	external bool
}

// netpolEval answers "may from open a connection to to:port?" under a set
// of NetworkPolicies, with the semantics of networking.k8s.io/v1: a pod
// selected by no policy of a direction is open in that direction; a pod
// selected by some is open only to what one of their rules allows; both
// the sender's egress and the receiver's ingress must allow.
type netpolEval struct {
	t    *testing.T
	pols []*networkingv1.NetworkPolicy
}

func (e netpolEval) allowed(from, to endpoint, port int32, proto corev1.Protocol) bool {
	return e.direction(from, to, port, proto, networkingv1.PolicyTypeEgress) &&
		e.direction(to, from, port, proto, networkingv1.PolicyTypeIngress)
}

// direction checks the policies selecting self, in direction dir, against
// the peer; port is always the receiver's (to) port.
func (e netpolEval) direction(self, peer endpoint, port int32, proto corev1.Protocol, dir networkingv1.PolicyType) bool {
	if self.external {
		return true // outside the cluster: no policy applies
	}
	receiver := peer
	if dir == networkingv1.PolicyTypeIngress {
		receiver = self
	}
	selected := false
	for _, p := range e.pols {
		if p.Namespace != self.ns || !e.matches(&p.Spec.PodSelector, self.labels) || !hasType(p, dir) {
			continue
		}
		selected = true
		if dir == networkingv1.PolicyTypeEgress {
			for _, r := range p.Spec.Egress {
				if e.peersMatch(p.Namespace, r.To, peer) && portsMatch(r.Ports, receiver, port, proto) {
					return true
				}
			}
		} else {
			for _, r := range p.Spec.Ingress {
				if e.peersMatch(p.Namespace, r.From, peer) && portsMatch(r.Ports, receiver, port, proto) {
					return true
				}
			}
		}
	}
	return !selected
}

func hasType(p *networkingv1.NetworkPolicy, dir networkingv1.PolicyType) bool {
	if len(p.Spec.PolicyTypes) == 0 {
		// Defaulting: Ingress always, Egress if there are egress rules.
		return dir == networkingv1.PolicyTypeIngress || len(p.Spec.Egress) > 0
	}
	for _, t := range p.Spec.PolicyTypes {
		if t == dir {
			return true
		}
	}
	return false
}

func (e netpolEval) matches(sel *metav1.LabelSelector, set map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		e.t.Fatalf("selector %v: %v", sel, err)
	}
	return s.Matches(labels.Set(set))
}

func (e netpolEval) peersMatch(policyNS string, peers []networkingv1.NetworkPolicyPeer, ep endpoint) bool {
	if len(peers) == 0 {
		return true // no to/from: everything
	}
	for _, p := range peers {
		switch {
		case p.IPBlock != nil:
			// Only addresses outside the cluster are modelled as IPs.
			if ep.external && p.IPBlock.CIDR == "0.0.0.0/0" {
				return true
			}
		case ep.external:
			// Pod and namespace selectors never match outside addresses.
		case p.NamespaceSelector == nil:
			if ep.ns == policyNS && e.matches(p.PodSelector, ep.labels) {
				return true
			}
		default:
			if e.matches(p.NamespaceSelector, ep.nsLabels) && (p.PodSelector == nil || e.matches(p.PodSelector, ep.labels)) {
				return true
			}
		}
	}
	return false
}

func portsMatch(ports []networkingv1.NetworkPolicyPort, receiver endpoint, port int32, proto corev1.Protocol) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		if p.Port == nil {
			return true
		}
		if p.Port.IntVal == port && p.Port.StrVal == "" {
			return true
		}
		if p.EndPort != nil && p.Port.StrVal == "" && port >= p.Port.IntVal && port <= *p.EndPort {
			return true
		}
		if p.Port.StrVal != "" {
			for _, cp := range receiver.ports {
				if cp.Name == p.Port.StrVal && cp.ContainerPort == port {
					return true
				}
			}
		}
	}
	return false
}

func checkNetworkPolicies(t *testing.T, m *manifests, ns string) {
	t.Helper()
	// A default deny for both directions, selecting every pod.
	deny := false
	for _, p := range m.netpols {
		if len(p.Spec.PodSelector.MatchLabels) == 0 && len(p.Spec.PodSelector.MatchExpressions) == 0 &&
			hasType(p, networkingv1.PolicyTypeIngress) && hasType(p, networkingv1.PolicyTypeEgress) &&
			len(p.Spec.Ingress) == 0 && len(p.Spec.Egress) == 0 {
			deny = true
		}
	}
	if !deny {
		t.Error("no default-deny NetworkPolicy (empty podSelector, Ingress and Egress, no rules)")
	}

	nsLabels := map[string]string{"kubernetes.io/metadata.name": ns}
	pods := map[string]endpoint{}
	for _, w := range m.workloads() {
		var ports []corev1.ContainerPort
		for _, c := range w.tmpl.Spec.Containers {
			ports = append(ports, c.Ports...)
		}
		pods[w.name] = endpoint{name: w.name, ns: ns, nsLabels: nsLabels, labels: w.tmpl.Labels, ports: ports}
	}
	ingressNginx := endpoint{name: "ingress-nginx", ns: "ingress-nginx",
		nsLabels: map[string]string{"kubernetes.io/metadata.name": "ingress-nginx"},
		labels:   map[string]string{"app.kubernetes.io/name": "ingress-nginx"}}
	prometheus := endpoint{name: "prometheus", ns: "monitoring",
		nsLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"},
		labels:   map[string]string{"app.kubernetes.io/name": "prometheus"}}
	kubeDNS := endpoint{name: "kube-dns", ns: "kube-system",
		nsLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"},
		labels:   map[string]string{"k8s-app": "kube-dns"}}
	internet := endpoint{name: "outside", external: true}
	postgres, inCluster := pods["postgres"]
	if !inCluster {
		postgres = endpoint{name: "external postgres", external: true}
	}

	ev := netpolEval{t: t, pols: m.netpols}
	tcp := corev1.ProtocolTCP
	for _, c := range []struct {
		from, to endpoint
		port     int32
		proto    corev1.Protocol
		want     bool
	}{
		// What AMS needs.
		{ingressNginx, pods["gateway"], 8080, tcp, true},
		{ingressNginx, pods["gateway"], 9090, tcp, true}, // gRPC (ams.v1)
		{pods["gateway"], pods["account"], 7001, tcp, true},
		{pods["gateway"], pods["link"], 7002, tcp, true},
		{pods["gateway"], pods["nats"], 4222, tcp, true},
		{pods["nats"], pods["nats"], 6222, tcp, true},
		{pods["account"], postgres, 5432, tcp, true},
		{pods["link"], postgres, 5432, tcp, true},
		{pods["gateway"], kubeDNS, 53, corev1.ProtocolUDP, true},
		{pods["account"], kubeDNS, 53, tcp, true},
		// What nothing needs.
		{internet, pods["gateway"], 9090, tcp, false},
		{ingressNginx, pods["account"], 7101, tcp, false},
		{prometheus, pods["gateway"], 9090, tcp, false},
		{prometheus, pods["account"], 7001, tcp, false},
		{prometheus, pods["link"], 7002, tcp, false},
		{prometheus, pods["nats"], 4222, tcp, false},
		{pods["gateway"], pods["account"], 7101, tcp, false},
		{ingressNginx, pods["account"], 7001, tcp, false},
		{ingressNginx, pods["nats"], 4222, tcp, false},
		{internet, pods["gateway"], 8080, tcp, false},
		{pods["account"], pods["nats"], 4222, tcp, false},
		{pods["link"], pods["account"], 7001, tcp, false},
		{pods["nats"], pods["account"], 7001, tcp, false},
		{pods["gateway"], pods["nats"], 6222, tcp, false},
		{pods["gateway"], postgres, 5432, tcp, false},
		{pods["gateway"], internet, 443, tcp, false},
		{pods["account"], internet, 443, tcp, false},
		{pods["nats"], internet, 4222, tcp, false},
	} {
		if got := ev.allowed(c.from, c.to, c.port, c.proto); got != c.want {
			verb := "blocks"
			if got {
				verb = "allows"
			}
			t.Errorf("NetworkPolicies %s %s -> %s:%d/%s", verb, c.from.name, c.to.name, c.port, c.proto)
		}
	}
	// Prometheus (namespace monitoring) reaches every port the scrape
	// annotations name.
	for _, w := range m.workloads() {
		if port := scrapePort(t, w); port != 0 && !ev.allowed(prometheus, pods[w.name], port, tcp) {
			t.Errorf("NetworkPolicies block prometheus -> %s:%d, which its scrape annotations name", w.name, port)
		}
	}
}
