// Package wireerr is the one catalogue of AMS errors: each code's HTTP
// status, WebSocket close code and gRPC status code (spec 3, 4.2, 5.3, 5.4).
// Every transport maps errors to the wire through this package, so a code
// means the same thing everywhere.
package wireerr

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
)

// Code is one entry of the catalogue.
type Code struct {
	// Name is the wire code: the `error` field of an HTTP body, the reason
	// of a close frame, the reason of a gRPC ErrorInfo.
	Name string
	// HTTP is the status of an HTTP answer with this code; 0 if the code is
	// only ever a close reason.
	HTTP int
	// Close is the WebSocket close code carrying this reason; 0 if the code
	// never closes a connection.
	Close int
}

// GRPC returns the gRPC status code for the entry, derived from its HTTP
// status (spec 5.4), or from its close code for stream-plane codes.
func (c Code) GRPC() codes.Code {
	if c.Close != 0 && c.HTTP == 0 {
		return CloseToGRPC(c.Close, c.Name)
	}
	return HTTPToGRPC(c.HTTP)
}

// WithHTTP returns a copy of c answering with another HTTP status, for the
// few routes where the spec gives a code a route-specific status.
func (c Code) WithHTTP(status int) Code { c.HTTP = status; return c }

// The catalogue. HTTP statuses are those of the control plane (spec 3);
// stream-plane codes carry the status their close code maps to on the SSE
// and HTTP emit paths (spec 5.3).
var (
	NotFound             = Code{"not_found", 404, 0}
	MissingCredential    = Code{"missing_credential", 401, 4002}
	InvalidCredential    = Code{"invalid_credential", 401, 4002}
	NamespaceMismatch    = Code{"namespace_mismatch", 403, 0}
	InvalidJSON          = Code{"invalid_json", 400, 0}
	InvalidNamespace     = Code{"invalid_namespace", 400, 0}
	NamespaceTaken       = Code{"namespace_taken", 409, 0}
	InvalidAlias         = Code{"invalid_alias", 400, 0}
	InvalidStreamName    = Code{"invalid_stream_name", 400, 0}
	UnsupportedIDKind    = Code{"unsupported_id_kind", 400, 0}
	InvalidMetadata      = Code{"invalid_metadata", 400, 0}
	InvalidStreamMeta    = Code{"invalid_stream_metadata", 400, 0}
	InvalidLinkExpiry    = Code{"invalid_link_expiry", 400, 0}
	AliasTaken           = Code{"alias_taken", 409, 0}
	MissingToken         = Code{"missing_token", 400, 0}
	InvalidToken         = Code{"invalid_token", 403, 0}
	InvalidLabel         = Code{"invalid_label", 400, 0}
	LinkNotFound         = Code{"link_not_found", 404, 0}
	PayloadTooLarge      = Code{"payload_too_large", 413, 0}
	RateLimited          = Code{"rate_limited", 429, 4429} // [ext] close code: see below
	Internal             = Code{"internal_error", 500, 4500}
	Unavailable          = Code{"unavailable", 503, 0}
	UnsupportedMediaType = Code{"unsupported_media_type", 415, 0}
	UpgradeRequired      = Code{"upgrade_required", 426, 0}

	// Admission (spec 4.2 checks 1 to 4): HTTP statuses of the SSE path.
	InvalidMagicLink     = Code{"invalid_magic_link", 403, 4001}
	LinkExpired          = Code{"link_expired", 403, 4001}
	LinkRevoked          = Code{"link_revoked", 403, 4001}
	ConversationNotFound = Code{"conversation_not_found", 404, 4005}

	// Connect headers and caps (spec 4.2 checks 5 to 10).
	InvalidStreamNameHeader   = Code{"invalid_stream_name_header", 400, 4400}
	InvalidStreamMetaHeader   = Code{"invalid_stream_metadata_header", 400, 4400}
	InvalidPeerIdentityHeader = Code{"invalid_peer_identity_header", 400, 4400}
	InvalidSubscribeHeader    = Code{"invalid_subscribe_streams_header", 400, 4400}
	InvalidResumeHeader       = Code{"invalid_resume_header", 400, 4400}
	StreamNameOwnerConflict   = Code{"stream_name_owner_conflict", 409, 4004}
	StreamLimitExceeded       = Code{"stream_limit_exceeded", 429, 4003}
	ConversationFull          = Code{"conversation_full", 429, 4003}
	ObserversFull             = Code{"observers_full", 429, 4003}

	// Abuse controls [ext]. A connection over its frame rate, or whose
	// account is over its token rate on this gateway, is closed with
	// rate_limited (4429, outside the reserved 4900–4999; gRPC
	// RESOURCE_EXHAUSTED; HTTP 429 with Retry-After). An account with its
	// maximum of live connections on a gateway is refused 4003
	// connection_limit_exceeded (HTTP 429 on SSE).
	ConnectionLimitExceeded = Code{"connection_limit_exceeded", 429, 4003}

	// After joined (spec 4.2 second table).
	StreamDisplaced     = Code{"stream_displaced", 0, 4001}
	MalformedFrame      = Code{"malformed_frame", 0, 4400}
	UnknownFrameType    = Code{"unknown_frame_type", 0, 4400}
	TokenTooLarge       = Code{"token_too_large", 413, 4400}
	MetadataTooLarge    = Code{"metadata_too_large", 413, 4400}
	InvalidSubscription = Code{"invalid_subscription", 0, 4400}
	ReadOnly            = Code{"read_only", 0, 4400}
	SlowConsumer        = Code{"slow_consumer", 0, 4290}
	MessageTooLarge     = Code{"message_too_large", 0, 1009}
	GoingAway           = Code{"going_away", 503, 1001}

	// HTTP emit (spec 5.3).
	InvalidTokenData = Code{"invalid_token_data", 400, 0}
	StreamNotLive    = Code{"stream_not_live", 409, 0}
)

// All lists every catalogue entry, for lookups by name and for tests.
var All = []Code{
	NotFound, MissingCredential, InvalidCredential, NamespaceMismatch, InvalidJSON,
	InvalidNamespace, NamespaceTaken, InvalidAlias, InvalidStreamName, UnsupportedIDKind,
	InvalidMetadata, InvalidStreamMeta, InvalidLinkExpiry, AliasTaken, MissingToken,
	InvalidToken, InvalidLabel, LinkNotFound, PayloadTooLarge, RateLimited, Internal,
	Unavailable, UnsupportedMediaType, UpgradeRequired, InvalidMagicLink, LinkExpired,
	LinkRevoked, ConversationNotFound, InvalidStreamNameHeader, InvalidStreamMetaHeader,
	InvalidPeerIdentityHeader, InvalidSubscribeHeader, InvalidResumeHeader,
	StreamNameOwnerConflict, StreamLimitExceeded, ConversationFull, ObserversFull,
	ConnectionLimitExceeded,
	StreamDisplaced, MalformedFrame, UnknownFrameType, TokenTooLarge, MetadataTooLarge,
	InvalidSubscription, ReadOnly, SlowConsumer, MessageTooLarge, GoingAway,
	InvalidTokenData, StreamNotLive,
}

var byName = func() map[string]Code {
	m := make(map[string]Code, len(All))
	for _, c := range All {
		m[c.Name] = c
	}
	return m
}()

// Lookup returns the catalogue entry with the given name.
func Lookup(name string) (Code, bool) {
	c, ok := byName[name]
	return c, ok
}

// Error is an error with a catalogue code. Message is for humans and is not
// contractual; it never holds secrets or payloads.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code.Name
	}
	return e.Code.Name + ": " + e.Message
}

// New returns an *Error with the code and message.
func New(c Code, msg string) *Error { return &Error{Code: c, Message: msg} }

// Newf returns an *Error with a formatted message.
func Newf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...)}
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// CloseCode is the code a connection closes with for err: the one err
// carries when it has a close code, else internal_error.
func CloseCode(err error) Code {
	if e, ok := As(err); ok && e.Code.Close != 0 {
		return e.Code
	}
	return Internal
}

// HTTPToGRPC maps an HTTP status to the gRPC code of spec 5.4.
func HTTPToGRPC(status int) codes.Code {
	switch status {
	case 400, 415:
		return codes.InvalidArgument
	case 401:
		return codes.Unauthenticated
	case 403:
		return codes.PermissionDenied
	case 404:
		return codes.NotFound
	case 409:
		return codes.AlreadyExists
	case 413, 429:
		return codes.ResourceExhausted
	case 503:
		return codes.Unavailable
	default:
		return codes.Internal
	}
}

// CloseToGRPC maps a close code (and reason) to the gRPC status code that
// ends a Connect call (spec 5.4).
func CloseToGRPC(code int, reason string) codes.Code {
	switch code {
	case 4001:
		if reason == StreamDisplaced.Name {
			return codes.Aborted
		}
		return codes.PermissionDenied
	case 4002:
		return codes.Unauthenticated
	case 4003, 4290, 4429:
		return codes.ResourceExhausted
	case 4004:
		return codes.AlreadyExists
	case 4005:
		return codes.NotFound
	case 4400, 1009:
		return codes.InvalidArgument
	case 1001:
		return codes.Unavailable
	case 1000:
		return codes.OK
	default:
		return codes.Internal
	}
}

// CloseToHTTP maps a close code to the HTTP status of a failure before
// streaming on the SSE path (spec 5.3).
func CloseToHTTP(code int) int {
	switch code {
	case 4001:
		return 403
	case 4002:
		return 401
	case 4003, 4290, 4429:
		return 429
	case 4004:
		return 409
	case 4005:
		return 404
	case 4400:
		return 400
	case 1001:
		return 503
	default:
		return 500
	}
}
