package ams

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/amsrouter/ams/pkg/wire"
)

// Error is an error the AMS server reported: an HTTP error of the control
// plane (Status set), or a close of the stream plane (Close set) such as a
// refused join. Code is the contractual code; Message is for people.
//
//	var e *ams.Error
//	if errors.As(err, &e) && e.Code == wire.CodeLinkRevoked { … }
type Error struct {
	// Status is the HTTP status, 0 for a close.
	Status int
	// Code is the AMS error code ("link_revoked"); empty when the server
	// answered without one (a proxy's error page, say).
	Code wire.Code
	// Message is the server's message, or a description of the code.
	Message string
	// Close is the close code of a stream-plane error, 0 otherwise.
	Close int
}

// Error renders "code: message", the form the ams CLI prints.
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = wire.Describe(e.Code)
	}
	switch {
	case e.Code == "" && e.Close != 0:
		return fmt.Sprintf("connection closed with %d: %s", e.Close, msg)
	case e.Code == "":
		return fmt.Sprintf("HTTP %d: %s", e.Status, msg)
	case msg == "":
		return string(e.Code)
	}
	return string(e.Code) + ": " + msg
}

// IsCode reports whether err is an *Error with the code.
func IsCode(err error, code wire.Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// ErrClosed is returned by the calls of a Session that has ended.
var ErrClosed = errors.New("ams: session closed")

// ErrReadOnly is returned by Send and SetMetadata on an observer session.
var ErrReadOnly = errors.New("ams: observers cannot write")

// httpError builds the *Error of a non-2xx answer from its body.
func httpError(status int, body []byte) *Error {
	var b wire.ErrorBody
	if err := json.Unmarshal(body, &b); err == nil && b.Error != "" {
		return &Error{Status: status, Code: b.Error, Message: b.Message}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 || msg == "" {
		msg = http.StatusText(status)
	}
	return &Error{Status: status, Message: msg}
}

// closeError builds the *Error of a stream-plane close.
func closeError(code int, reason string) *Error {
	return &Error{Close: code, Code: wire.Code(reason)}
}
