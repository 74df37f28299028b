package benchkit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// rawSub is a lean NATS subscriber speaking the text protocol itself: one
// connection, one read buffer, no allocation per message, so that the
// baseline's client costs what the kit's WebSocket client costs.
type rawSub struct {
	c   net.Conn
	br  *bufio.Reader
	wmu sync.Mutex
	buf []byte
}

// dialRawSub connects to the NATS server at url, subscribes to subjects
// and returns once the server has registered them (PONG to a PING after
// the SUBs).
func dialRawSub(ctx context.Context, url string, subjects []string, local net.IP) (*rawSub, error) {
	addr := strings.TrimPrefix(url, "nats://")
	d := net.Dialer{Timeout: 10 * time.Second}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local}
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("nats dial: %w", err)
	}
	var b strings.Builder
	b.WriteString("CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\n")
	for i, s := range subjects {
		fmt.Fprintf(&b, "SUB %s %d\r\n", s, i+1)
	}
	b.WriteString("PING\r\n")
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(c, b.String()); err != nil {
		c.Close()
		return nil, fmt.Errorf("nats subscribe: %w", err)
	}
	s := &rawSub{c: c, br: bufio.NewReaderSize(c, 64<<10)}
	for {
		line, err := s.br.ReadSlice('\n')
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("nats subscribe: %w", err)
		}
		if bytes.HasPrefix(line, []byte("PONG")) {
			break
		}
		if bytes.HasPrefix(line, []byte("-ERR")) {
			c.Close()
			return nil, fmt.Errorf("nats subscribe: %s", bytes.TrimSpace(line))
		}
	}
	_ = c.SetDeadline(time.Time{})
	return s, nil
}

// next returns the payload of the next message (valid until the next
// call), answering the server's pings.
func (s *rawSub) next() ([]byte, error) {
	for {
		line, err := s.br.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		switch {
		case bytes.HasPrefix(line, []byte("MSG ")):
			line = bytes.TrimRight(line, "\r\n")
			i := bytes.LastIndexByte(line, ' ')
			n, ok := atoi(line[i+1:])
			if !ok {
				return nil, fmt.Errorf("nats: bad MSG line %q", line)
			}
			if cap(s.buf) < int(n)+2 {
				s.buf = make([]byte, n+2)
			}
			s.buf = s.buf[:n+2]
			if _, err := io.ReadFull(s.br, s.buf); err != nil {
				return nil, err
			}
			return s.buf[:n], nil
		case bytes.HasPrefix(line, []byte("PING")):
			s.wmu.Lock()
			_, err := io.WriteString(s.c, "PONG\r\n")
			s.wmu.Unlock()
			if err != nil {
				return nil, err
			}
		case bytes.HasPrefix(line, []byte("-ERR")):
			return nil, errors.New(string(bytes.TrimSpace(line)))
		}
	}
}

func (s *rawSub) Close() error { return s.c.Close() }
