package httpapi

import (
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path  string
		route string
		p     Params
	}{
		{"/healthz", routeHealthz, Params{}},
		{"/healthz/", routeUnknown, Params{}},
		{"/readyz", routeReadyz, Params{}},
		{"/metrics", routeMetrics, Params{}},
		{"/.well-known/jwks.json", routeJWKS, Params{}},
		{"/v1/accounts", routeAccounts, Params{}},
		{"/v1/accounts/", routeUnknown, Params{}},
		{"/mcp", routeMCP, Params{}},
		{"/mcp/", routeUnknown, Params{}},
		{"/v1/acme/credentials/rotate", routeRotate, Params{NS: "acme"}},
		{"/v1/acme/credentials/rotate/", routeUnknown, Params{}},
		{"/v1/acme/conversations", routeMint, Params{NS: "acme"}},
		{"/v1/acme/conversations/", routeMint, Params{NS: "acme"}},
		{"/v1/acme/conversations//", routeUnknown, Params{}},
		{"/v1/acme/conversations/room", routeInspect, Params{NS: "acme", Alias: "room"}},
		{"/v1/acme/conversations/room/", routeInspect, Params{NS: "acme", Alias: "room"}},
		{"/v1/acme/conversations/room/links", routeLinks, Params{NS: "acme", Alias: "room"}},
		{"/v1/acme/conversations/room/links/lnk_1", routeLink, Params{NS: "acme", Alias: "room", LinkID: "lnk_1"}},
		{"/v1/acme/conversations/room/links/lnk_1/", routeLink, Params{NS: "acme", Alias: "room", LinkID: "lnk_1"}},
		{"/v1/acme/conversations/room/other", routeUnknown, Params{}},
		{"/acme/conversations/room", routeMagicLink, Params{NS: "acme", Alias: "room"}},
		{"/acme/conversations/room/", routeMagicLink, Params{NS: "acme", Alias: "room"}},
		{"/acme/conversations/room/connect", routeConnect, Params{NS: "acme", Alias: "room"}},
		{"/acme/conversations/room/streams/S.1/tokens", routeTokens, Params{NS: "acme", Alias: "room", StreamName: "S.1"}},
		{"/acme/conversations/room/streams/S.1/metadata", routeMetadata, Params{NS: "acme", Alias: "room", StreamName: "S.1"}},
		{"/acme/conversations/room/streams/S.1", routeUnknown, Params{}},
		{"/v1/conversations/room", routeMagicLink, Params{NS: "v1", Alias: "room"}},
		{"/acme/conversations", routeUnknown, Params{}},
		{"/acme//conversations/room", routeUnknown, Params{}},
		{"", routeUnknown, Params{}},
		{"/", routeUnknown, Params{}},
		{"healthz", routeUnknown, Params{}},
	}
	for _, tc := range tests {
		route, p := match(tc.path)
		if route != tc.route || p != tc.p {
			t.Errorf("match(%q) = %q, %+v; want %q, %+v", tc.path, route, p, tc.route, tc.p)
		}
	}
}

// trailingSlashRoutes accept one trailing slash (spec 3.1: conversation
// and magic-link paths).
var trailingSlashRoutes = map[string]bool{
	routeMint: true, routeInspect: true, routeLinks: true, routeLink: true,
	routeConnect: true, routeTokens: true, routeMetadata: true, routeMagicLink: true,
}

// FuzzMatch checks the router: a matched path is exactly its route
// pattern with the parameters put back (plus at most one trailing slash
// where allowed), parameters are whole non-empty segments, and every
// route has its methods.
func FuzzMatch(f *testing.F) {
	for _, s := range []string{"/healthz", "/v1/accounts", "/v1/a/credentials/rotate", "/v1/a/conversations/",
		"/v1/a/conversations/b/links/lnk_x", "/a/conversations/b/streams/c/tokens", "/a/conversations/b/connect/",
		"/mcp", "//", "/v1//conversations", "/a/conversations/b//", "/%2F/conversations/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		route, p := match(path)
		if route == routeUnknown {
			if p != (Params{}) {
				t.Fatalf("match(%q) = unknown with params %+v", path, p)
			}
			return
		}
		if _, ok := allowedMethods[route]; !ok {
			t.Fatalf("route %q has no methods", route)
		}
		for _, v := range []string{p.NS, p.Alias, p.LinkID, p.StreamName} {
			if strings.Contains(v, "/") {
				t.Fatalf("match(%q): parameter %q holds a slash", path, v)
			}
		}
		rebuilt := strings.NewReplacer("{ns}", p.NS, "{alias}", p.Alias, "{link_id}", p.LinkID, "{stream_name}", p.StreamName).Replace(route)
		switch {
		case rebuilt == path:
		case trailingSlashRoutes[route] && rebuilt+"/" == path:
		default:
			t.Fatalf("match(%q) = %q %+v, which rebuilds %q", path, route, p, rebuilt)
		}
		if strings.Contains(rebuilt, "//") {
			t.Fatalf("match(%q) accepted an empty segment", path)
		}
	})
}
