package wireerr

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
)

// The catalogue: unique names, lookups, and no close code in the range
// spec 4.2 reserves (4900–4999).
func TestCatalogue(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range All {
		if seen[c.Name] {
			t.Errorf("%s listed twice", c.Name)
		}
		seen[c.Name] = true
		if got, ok := Lookup(c.Name); !ok || got != c {
			t.Errorf("Lookup(%s) = %v, %v", c.Name, got, ok)
		}
		if c.Close >= 4900 && c.Close <= 4999 {
			t.Errorf("%s closes %d, in the reserved range", c.Name, c.Close)
		}
	}
}

// The abuse-control codes [ext]: rate_limited is 429 / 4429 /
// RESOURCE_EXHAUSTED; connection_limit_exceeded is 4003 / 429.
func TestAbuseControlCodes(t *testing.T) {
	tests := []struct {
		code      Code
		http      int
		close     int
		grpc      codes.Code
		closeGRPC codes.Code
	}{
		{RateLimited, 429, 4429, codes.ResourceExhausted, codes.ResourceExhausted},
		{ConnectionLimitExceeded, 429, 4003, codes.ResourceExhausted, codes.ResourceExhausted},
	}
	for _, tt := range tests {
		if tt.code.HTTP != tt.http || tt.code.Close != tt.close {
			t.Errorf("%s: HTTP %d close %d, want %d %d", tt.code.Name, tt.code.HTTP, tt.code.Close, tt.http, tt.close)
		}
		if got := tt.code.GRPC(); got != tt.grpc {
			t.Errorf("%s: gRPC %v, want %v", tt.code.Name, got, tt.grpc)
		}
		if got := CloseToGRPC(tt.code.Close, tt.code.Name); got != tt.closeGRPC {
			t.Errorf("%s: close %d maps to gRPC %v, want %v", tt.code.Name, tt.code.Close, got, tt.closeGRPC)
		}
		if got := CloseToHTTP(tt.code.Close); got != tt.http {
			t.Errorf("%s: close %d maps to HTTP %d, want %d", tt.code.Name, tt.code.Close, got, tt.http)
		}
	}
}

// A connection closes with the code its error carries, and with
// internal_error for any other error (or a code without a close code).
func TestCloseCode(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want Code
	}{
		{New(RateLimited, "slow down"), RateLimited},
		{fmt.Errorf("join: %w", New(MalformedFrame, "")), MalformedFrame},
		{errors.New("nats: timeout"), Internal},
		{New(Code{Name: "http_only", HTTP: 400}, ""), Internal},
	} {
		if got := CloseCode(tt.err); got != tt.want {
			t.Errorf("CloseCode(%v) = %+v, want %+v", tt.err, got, tt.want)
		}
	}
}
