package mcpserver

import (
	"errors"
	"net/http"

	"github.com/amsrouter/ams/services/gateway/internal/controlplane"
	"github.com/amsrouter/ams/services/gateway/internal/limits"
)

// limit applies the abuse controls to a POST of n JSON-RPC messages: an
// initialize counts against its client's control-plane budget (it creates
// a session record), any other request against its session's frame rate
// on this gateway.
func (s *Server) limit(r *http.Request, sid string, initialize bool, n int) error {
	l := s.cfg.Limits
	if l == nil {
		return nil
	}
	if initialize {
		cred, _ := controlplane.BearerCredential(r.Header.Get("Authorization"))
		return l.Control(l.ClientAddr(r.RemoteAddr, r.Header.Values("X-Forwarded-For")), cred)
	}
	sess := s.session(sid)
	for i := 0; i < n; i++ {
		if err := sess.frames.Frame(); err != nil {
			return err
		}
	}
	return nil
}

// rateLimited answers a request over a limit: 429 with Retry-After and a
// JSON-RPC error whose message is the code, rate_limited.
func rateLimited(w http.ResponseWriter, err error) {
	after := "1"
	var le *limits.Error
	if errors.As(err, &le) {
		after = limits.RetryAfterSeconds(le.RetryAfter())
	}
	w.Header().Set("Retry-After", after)
	rpcError(w, http.StatusTooManyRequests, codeServer, "rate_limited")
}
