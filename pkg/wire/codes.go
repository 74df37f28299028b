package wire

// Code is an AMS error code: the `error` field of an HTTP error body, the
// reason of a close frame, the `ams-error` or `ams-close-reason` trailer of
// a gRPC call. Codes are contractual; messages are not.
type Code string

// Control-plane codes (spec 3).
const (
	CodeNotFound             Code = "not_found"
	CodeMissingCredential    Code = "missing_credential"
	CodeInvalidCredential    Code = "invalid_credential"
	CodeNamespaceMismatch    Code = "namespace_mismatch"
	CodeInvalidJSON          Code = "invalid_json"
	CodeInvalidNamespace     Code = "invalid_namespace"
	CodeNamespaceTaken       Code = "namespace_taken"
	CodeInvalidAlias         Code = "invalid_alias"
	CodeInvalidStreamName    Code = "invalid_stream_name"
	CodeUnsupportedIDKind    Code = "unsupported_id_kind"
	CodeInvalidMetadata      Code = "invalid_metadata"
	CodeInvalidStreamMeta    Code = "invalid_stream_metadata"
	CodeInvalidLinkExpiry    Code = "invalid_link_expiry"
	CodeAliasTaken           Code = "alias_taken"
	CodeMissingToken         Code = "missing_token"
	CodeInvalidToken         Code = "invalid_token"
	CodeInvalidLabel         Code = "invalid_label"
	CodeLinkNotFound         Code = "link_not_found"
	CodePayloadTooLarge      Code = "payload_too_large"
	CodeRateLimited          Code = "rate_limited"
	CodeInternal             Code = "internal_error"
	CodeUnavailable          Code = "unavailable"
	CodeUnsupportedMediaType Code = "unsupported_media_type"
	CodeUpgradeRequired      Code = "upgrade_required"
	CodeInvalidTokenData     Code = "invalid_token_data"
	CodeStreamNotLive        Code = "stream_not_live"
)

// Stream-plane codes: close reasons (spec 4.2).
const (
	CodeInvalidMagicLink          Code = "invalid_magic_link"
	CodeLinkExpired               Code = "link_expired"
	CodeLinkRevoked               Code = "link_revoked"
	CodeConversationNotFound      Code = "conversation_not_found"
	CodeInvalidStreamNameHeader   Code = "invalid_stream_name_header"
	CodeInvalidStreamMetaHeader   Code = "invalid_stream_metadata_header"
	CodeInvalidPeerIdentityHeader Code = "invalid_peer_identity_header"
	CodeInvalidSubscribeHeader    Code = "invalid_subscribe_streams_header"
	CodeInvalidResumeHeader       Code = "invalid_resume_header"
	CodeStreamNameOwnerConflict   Code = "stream_name_owner_conflict"
	CodeStreamLimitExceeded       Code = "stream_limit_exceeded"
	CodeConversationFull          Code = "conversation_full"
	CodeObserversFull             Code = "observers_full"
	CodeStreamDisplaced           Code = "stream_displaced"
	CodeMalformedFrame            Code = "malformed_frame"
	CodeUnknownFrameType          Code = "unknown_frame_type"
	CodeTokenTooLarge             Code = "token_too_large"
	CodeMetadataTooLarge          Code = "metadata_too_large"
	CodeInvalidSubscription       Code = "invalid_subscription"
	CodeReadOnly                  Code = "read_only"
	CodeSlowConsumer              Code = "slow_consumer"
	CodeMessageTooLarge           Code = "message_too_large"
	CodeGoingAway                 Code = "going_away"
)

// WebSocket close codes of the stream plane (spec 4.2). gRPC Connect calls
// carry the same numbers in their `ams-close-code` trailer.
const (
	CloseNormal          = 1000 // client-initiated close, echoed
	CloseGoingAway       = 1001 // server draining
	CloseAbnormal        = 1006 // no close frame: the connection was lost (never sent)
	CloseMessageTooLarge = 1009 // a message over 1 MiB
	CloseDenied          = 4001 // bad, expired or revoked link; stream displaced
	CloseCredential      = 4002 // missing or invalid credential
	CloseLimit           = 4003 // stream, conversation or observer cap
	CloseConflict        = 4004 // stream name live under another account
	CloseNotFound        = 4005 // no such conversation
	CloseSlowConsumer    = 4290 // outbound queue overflow
	CloseBadRequest      = 4400 // bad header, frame or subscription
	CloseInternal        = 4500 // unexpected server failure
)

// Retryable reports whether a client may reconnect (with a resume cursor)
// after the connection ended with the close code: when it was lost, the
// server drained, the client was too slow, or the server failed. A client
// must not reconnect after 4001 (displaced, revoked, invalid link), 4002,
// 4003, 4004, 4005 or 4400, nor after its own 1000.
func Retryable(closeCode int) bool {
	switch closeCode {
	case CloseGoingAway, CloseAbnormal, CloseSlowConsumer, CloseInternal,
		1011, 1012, 1013, 1014: // server error, restart, try again later, bad gateway
		return true
	}
	return false
}

// descriptions are short human texts for codes that travel without a
// message (close reasons).
var descriptions = map[Code]string{
	CodeNotFound:                  "not found",
	CodeMissingCredential:         "a credential is required",
	CodeInvalidCredential:         "the credential is unknown or was rotated out",
	CodeNamespaceMismatch:         "the namespace is not the credential's",
	CodeNamespaceTaken:            "the namespace is taken",
	CodeAliasTaken:                "the alias is taken",
	CodeInvalidNamespace:          "namespaces are 1-63 of a-z, 0-9 and -, starting with a letter or digit",
	CodeInvalidAlias:              "aliases are 1-63 of a-z, 0-9 and -, starting with a letter or digit",
	CodeInvalidStreamName:         "stream names are 1-63 of A-Z, a-z, 0-9, ., _ and -, starting with a letter or digit",
	CodeLinkNotFound:              "no such link",
	CodeRateLimited:               "too many requests",
	CodeInternal:                  "the server failed",
	CodeUnavailable:               "the service is unavailable",
	CodeInvalidMagicLink:          "the magic link is not valid",
	CodeLinkExpired:               "the link has expired",
	CodeLinkRevoked:               "the link was revoked",
	CodeConversationNotFound:      "no such conversation",
	CodeInvalidStreamNameHeader:   "the stream name is not valid",
	CodeInvalidStreamMetaHeader:   "the stream metadata is not a JSON object of at most 16 KiB",
	CodeInvalidPeerIdentityHeader: "the peer identity is not valid",
	CodeInvalidSubscribeHeader:    "the subscription is not valid",
	CodeInvalidResumeHeader:       "the resume cursor is not valid",
	CodeStreamNameOwnerConflict:   "another account has a live stream of that name here",
	CodeStreamLimitExceeded:       "the account has 10 live streams in this conversation",
	CodeConversationFull:          "the conversation has 100 live streams",
	CodeObserversFull:             "the conversation has 1000 observers",
	CodeStreamDisplaced:           "another connection of this account took over the stream",
	CodeMalformedFrame:            "the server got a malformed frame",
	CodeUnknownFrameType:          "the server got a frame of an unknown type",
	CodeTokenTooLarge:             "a token is over 64 KiB",
	CodeMetadataTooLarge:          "the metadata is over 16 KiB",
	CodeInvalidSubscription:       "the subscription is not valid",
	CodeReadOnly:                  "observers cannot write",
	CodeSlowConsumer:              "the client read too slowly",
	CodeMessageTooLarge:           "a message is over 1 MiB",
	CodeGoingAway:                 "the server is shutting down",
}

// Describe returns a short human description of the code, or "" for codes
// it does not know.
func Describe(c Code) string { return descriptions[c] }
