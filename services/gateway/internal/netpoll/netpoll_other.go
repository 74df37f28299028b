//go:build !linux

package netpoll

import "net"

// Poller is not available on this system.
type Poller struct{}

// New returns ErrUnsupported.
func New() (*Poller, error) { return nil, ErrUnsupported }

// Close does nothing.
func (p *Poller) Close() {}

// Len is 0.
func (p *Poller) Len() int { return 0 }

// Register returns ErrUnsupported.
func (p *Poller) Register(net.Conn, func()) (*Desc, error) { return nil, ErrUnsupported }

// Arm returns ErrUnsupported.
func (d *Desc) Arm() error { return ErrUnsupported }

// Close does nothing.
func (d *Desc) Close() {}

// PeerClosed cannot tell here: false.
func PeerClosed(net.Conn) bool { return false }
