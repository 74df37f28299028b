package e2e

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// Formats of spec 2.1 (C1) and of timestamps.
var (
	accountIDRe    = regexp.MustCompile(`^acc_[0-9A-HJKMNP-TV-Z]{20}$`)
	convIDRe       = regexp.MustCompile(`^conv_[0-9A-HJKMNP-TV-Z]{20}$`)
	linkIDRe       = regexp.MustCompile(`^lnk_[0-9A-HJKMNP-TV-Z]{20}$`)
	streamIDRe     = regexp.MustCompile(`^str_[0-9a-f]{26}$`)
	credentialRe   = regexp.MustCompile(`^ams_sk_[A-Za-z0-9_-]{43}$`)
	randomAliasRe  = regexp.MustCompile(`^[a-z]+-[a-z]+-[1-9][0-9]{3}$`)
	defaultNameRe  = regexp.MustCompile(`^stream-[A-Za-z0-9_-]{8}$`)
	timestampRe    = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$`)
	jwtRe          = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)
	adjectives     = strings.Fields("azure crimson golden silver jade amber ivory violet swift quiet brave keen clever gentle steady wild bright calm fair fierce kind light sharp warm")
	nouns          = strings.Fields("falcon otter stag badger heron raven wolf hawk river mountain forest valley harbor meadow summit canyon pulse echo signal drift tide spark ember comet")
	timestampSlack = 10 * time.Second
)

// start is a system with n in-process gateways.
func start(t *testing.T, n int) *gwtest.System {
	t.Helper()
	return gwtest.Start(t, gwtest.Options{Gateways: n})
}

// wantKeys checks the body is an object with exactly these keys, in order.
func wantKeys(t *testing.T, body []byte, want ...string) {
	t.Helper()
	if got := gwtest.Keys(t, body); !slices.Equal(got, want) {
		t.Errorf("keys = %v, want %v\nbody: %.500s", got, want, body)
	}
}

// wantError checks an HTTP error answer (C13): the status, the
// `{"error","message"}` body with both strings, and the code.
func wantError(t *testing.T, r *gwtest.Response, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("status = %d, want %d (body %.300s)", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("error body is not JSON: %v: %.300s", err, r.Body)
	}
	wantKeys(t, r.Body, "error", "message")
	if got, _ := body["error"].(string); got != code {
		t.Errorf("error = %q, want %q", body["error"], code)
	}
	if _, ok := body["message"].(string); !ok {
		t.Errorf("message is not a string: %v", body["message"])
	}
}

// call is gwtest.DoResponse with the test's T.
func call(t *testing.T, method, url string, header map[string]string, body string) *gwtest.Response {
	t.Helper()
	return gwtest.DoResponse(t, method, url, header, body)
}

// str reads a string field of a decoded body.
func str(t *testing.T, m map[string]any, key string) string {
	t.Helper()
	s, ok := m[key].(string)
	if !ok {
		t.Fatalf("%s = %v (%T), want a string", key, m[key], m[key])
	}
	return s
}

// wantMatch checks a field against a format.
func wantMatch(t *testing.T, what, v string, re *regexp.Regexp) {
	t.Helper()
	if !re.MatchString(v) {
		t.Errorf("%s = %q does not match %s", what, v, re)
	}
}

// wantRecent checks a timestamp field's format and that it is near now.
func wantRecent(t *testing.T, what, v string) time.Time {
	t.Helper()
	wantMatch(t, what, v, timestampRe)
	ts, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		t.Fatalf("%s = %q: %v", what, v, err)
	}
	if d := time.Since(ts); d > timestampSlack || d < -timestampSlack {
		t.Errorf("%s = %s is %s away from now", what, v, d)
	}
	return ts
}

// concurrently sends n requests at once, do(i) making the i-th, and
// returns the answers in order.
func concurrently(n int, do func(i int) *gwtest.Response) []*gwtest.Response {
	var wg sync.WaitGroup
	answers := make([]*gwtest.Response, n)
	for i := range n {
		wg.Go(func() { answers[i] = do(i) })
	}
	wg.Wait()
	return answers
}

// wantOneCreated checks that exactly one answer is 201 and every other
// one is 409 with code (C9).
func wantOneCreated(t *testing.T, answers []*gwtest.Response, code string) {
	t.Helper()
	created := 0
	for _, r := range answers {
		if r.Status == http.StatusCreated {
			created++
			continue
		}
		wantError(t, r, http.StatusConflict, code)
	}
	if created != 1 {
		t.Errorf("%d of %d creations succeeded, want exactly 1", created, len(answers))
	}
}

// eventually polls cond every 20 ms until it holds or within fails,
// returning how long it took.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		<-tick.C
	}
	return time.Since(start)
}

func bearer(cred string) map[string]string { return gwtest.Bearer(cred) }

const (
	get  = http.MethodGet
	post = http.MethodPost
	del  = http.MethodDelete
)
