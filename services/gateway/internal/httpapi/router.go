package httpapi

import (
	"net/http"
	"strings"
)

// Route names are the path patterns of spec 3.1; they label metrics.
const (
	routeHealthz   = "/healthz"
	routeReadyz    = "/readyz"
	routeMetrics   = "/metrics"
	routeJWKS      = "/.well-known/jwks.json"
	routeAccounts  = "/v1/accounts"
	routeRotate    = "/v1/{ns}/credentials/rotate"
	routeMint      = "/v1/{ns}/conversations"
	routeInspect   = "/v1/{ns}/conversations/{alias}"
	routeLinks     = "/v1/{ns}/conversations/{alias}/links"
	routeLink      = "/v1/{ns}/conversations/{alias}/links/{link_id}"
	routeConnect   = "/{ns}/conversations/{alias}/connect"
	routeTokens    = "/{ns}/conversations/{alias}/streams/{stream_name}/tokens"
	routeMetadata  = "/{ns}/conversations/{alias}/streams/{stream_name}/metadata"
	routeMCP       = "/mcp"
	routeMagicLink = "/{ns}/conversations/{alias}"
	routeUnknown   = "other"
)

// Params are the named path segments of a matched route.
type Params struct {
	NS, Alias, LinkID, StreamName string
}

// match maps a path to its route. The conversation and magic-link paths
// (everything under /{ns}/conversations and /v1/{ns}/conversations) accept
// one trailing slash. Paths are matched on raw segments: a segment can hold
// no '/', and the handlers validate every value.
func match(path string) (string, Params) {
	switch path {
	case "/healthz":
		return routeHealthz, Params{}
	case "/readyz":
		return routeReadyz, Params{}
	case "/metrics":
		return routeMetrics, Params{}
	case "/.well-known/jwks.json":
		return routeJWKS, Params{}
	case "/v1/accounts":
		return routeAccounts, Params{}
	case "/mcp":
		return routeMCP, Params{}
	}
	if !strings.HasPrefix(path, "/") {
		return routeUnknown, Params{}
	}
	seg := strings.Split(path[1:], "/")
	trailing := len(seg) > 1 && seg[len(seg)-1] == ""
	if trailing {
		seg = seg[:len(seg)-1]
	}
	for _, s := range seg {
		if s == "" {
			return routeUnknown, Params{}
		}
	}
	if len(seg) >= 3 && seg[0] == "v1" {
		p := Params{NS: seg[1]}
		switch {
		case len(seg) == 4 && seg[2] == "credentials" && seg[3] == "rotate" && !trailing:
			return routeRotate, p
		case len(seg) == 3 && seg[2] == "conversations":
			return routeMint, p
		case len(seg) == 4 && seg[2] == "conversations":
			p.Alias = seg[3]
			return routeInspect, p
		case len(seg) == 5 && seg[2] == "conversations" && seg[4] == "links":
			p.Alias = seg[3]
			return routeLinks, p
		case len(seg) == 6 && seg[2] == "conversations" && seg[4] == "links":
			p.Alias, p.LinkID = seg[3], seg[5]
			return routeLink, p
		}
	}
	if len(seg) >= 3 && seg[1] == "conversations" {
		p := Params{NS: seg[0], Alias: seg[2]}
		switch {
		case len(seg) == 3:
			return routeMagicLink, p
		case len(seg) == 4 && seg[3] == "connect":
			return routeConnect, p
		case len(seg) == 6 && seg[3] == "streams" && seg[5] == "tokens":
			p.StreamName = seg[4]
			return routeTokens, p
		case len(seg) == 6 && seg[3] == "streams" && seg[5] == "metadata":
			p.StreamName = seg[4]
			return routeMetadata, p
		}
	}
	return routeUnknown, Params{}
}

// allowedMethods lists the methods of each route (spec 3.1). A known path
// with another method is `404 not_found`, like an unknown path.
var allowedMethods = map[string][]string{
	routeHealthz:   {http.MethodGet, http.MethodHead},
	routeReadyz:    {http.MethodGet},
	routeMetrics:   {http.MethodGet},
	routeJWKS:      {http.MethodGet},
	routeAccounts:  {http.MethodPost},
	routeRotate:    {http.MethodPost},
	routeMint:      {http.MethodPost},
	routeInspect:   {http.MethodGet},
	routeLinks:     {http.MethodPost, http.MethodGet},
	routeLink:      {http.MethodDelete},
	routeConnect:   {http.MethodGet},
	routeTokens:    {http.MethodPost},
	routeMetadata:  {http.MethodPut},
	routeMCP:       {http.MethodGet, http.MethodPost, http.MethodDelete},
	routeMagicLink: {http.MethodGet, http.MethodPost, http.MethodDelete},
}

// isControl reports the control-plane routes of spec 3.2 to 3.6, which
// the per-client and per-credential rate limits cover.
func isControl(route string) bool {
	switch route {
	case routeAccounts, routeRotate, routeMint, routeInspect, routeLinks, routeLink:
		return true
	}
	return false
}

func methodAllowed(route, method string) bool {
	for _, m := range allowedMethods[route] {
		if m == method {
			return true
		}
	}
	return false
}
