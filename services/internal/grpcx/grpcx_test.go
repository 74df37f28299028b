package grpcx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/amsrouter/ams/services/internal/wireerr"
)

// sqlStateError stands for a driver error carrying a SQLSTATE (pgconn's
// PgError has the same method).
type sqlStateError string

func (e sqlStateError) Error() string    { return "sqlstate " + string(e) }
func (e sqlStateError) SQLState() string { return string(e) }

// A backing store that cannot be reached is `unavailable` end to end:
// Status gives UNAVAILABLE with the ErrorInfo reason, and FromStatus turns
// it back into wireerr.Unavailable (HTTP 503). Other failures stay
// internal.
func TestUnreachableIsUnavailable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tt := range []struct {
		name string
		err  error
		want codes.Code
	}{
		{"refused", fmt.Errorf("create account: %w", refused), codes.Unavailable},
		{"reset", fmt.Errorf("query: %w", syscall.ECONNRESET), codes.Unavailable},
		{"eof", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), codes.Unavailable},
		{"connection exception", fmt.Errorf("insert: %w", sqlStateError("08006")), codes.Unavailable},
		{"admin shutdown", fmt.Errorf("insert: %w", sqlStateError("57P01")), codes.Unavailable},
		{"cannot connect now", sqlStateError("57P03"), codes.Unavailable},
		{"unique violation", fmt.Errorf("insert: %w", sqlStateError("23505")), codes.Internal},
		{"other", errors.New("boom"), codes.Internal},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := Status(tt.err)
			if st.Code() != tt.want {
				t.Fatalf("Status: %v, want %v", st.Code(), tt.want)
			}
			if tt.want != codes.Unavailable {
				return
			}
			we, ok := wireerr.As(FromStatus(st.Err()))
			if !ok || we.Code != wireerr.Unavailable {
				t.Fatalf("FromStatus: %v, want unavailable", we)
			}
		})
	}
}
