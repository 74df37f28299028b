// Package metricstest reads a service's /metrics in tests.
package metricstest

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// Await fetches url (a /metrics endpoint in the Prometheus text format)
// until its body holds every line prefix of wants, or 10 s pass, and
// returns the last body; each prefix still missing then is an error.
// gRPC counts a call's end after its reply has reached the client, so a
// scrape right after a call may not count it yet.
func Await(t testing.TB, url string, wants ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Fatalf("%s = %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		body := string(b)
		missing := slices.DeleteFunc(slices.Clone(wants), func(w string) bool { return strings.Contains(body, w) })
		if len(missing) == 0 {
			return body
		}
		if time.Now().After(deadline) {
			for _, w := range missing {
				t.Errorf("%s lacks %s", url, w)
			}
			return body
		}
		time.Sleep(10 * time.Millisecond)
	}
}
