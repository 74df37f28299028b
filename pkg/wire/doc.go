// Package wire holds the frame, event and error types of the AMS wire
// protocol, shared by the Go SDK and the servers.
package wire
