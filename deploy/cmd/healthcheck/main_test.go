package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			w.Write([]byte("ok"))
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		case "/redirect":
			http.Redirect(w, r, "/readyz", http.StatusFound)
		default:
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)

	tests := []struct {
		name    string
		args    []string
		wantErr string // empty: success
	}{
		{"ok", []string{srv.URL + "/readyz"}, ""},
		{"not ready", []string{srv.URL + "/notready"}, "503"},
		{"redirect is not followed", []string{srv.URL + "/redirect"}, "302"},
		{"timeout", []string{"-timeout", "50ms", srv.URL + "/slow"}, "deadline"},
		{"no server", []string{"http://127.0.0.1:1/readyz"}, "refused"},
		{"no url", nil, "exactly one URL"},
		{"two urls", []string{srv.URL, srv.URL}, "exactly one URL"},
		{"not http", []string{"ftp://example/readyz"}, "not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			err := run(t.Context(), tt.args, &stderr)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("run(%q) = %v, want nil", tt.args, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("run(%q) = %v, want error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
}
