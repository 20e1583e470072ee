package coord

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"supervisor-sim/goruntime/protocol"
)

// Comms is the lock-step request/response client on the comm socket: one request in flight,
// ids counting up from 0, and every reply's id checked against its request's.
//
// There is no timeout on the wait for a reply: the supervisor may spend minutes retrying HTTP
// calls before it answers (protocol.md §9.8).
type Comms struct {
	mu     sync.Mutex
	conn   io.ReadWriteCloser
	r      *bufio.Reader
	nextID int64
	broken error // set once the stream is out of sync; every later request fails fast
}

// NewComms wraps the comm connection.
func NewComms(conn io.ReadWriteCloser) *Comms {
	return &Comms{conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
}

// ReadFirst reads the supervisor's single unsolicited frame.
func (c *Comms) ReadFirst() (protocol.Frame, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := protocol.ReadFrame(c.r)
	if err != nil {
		c.broken = err
	}
	return f, err
}

// Request sends one request body and returns the reply frame.
func (c *Comms) Request(body any) (protocol.Frame, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return protocol.Frame{}, fmt.Errorf("comm channel unusable: %w", c.broken)
	}
	id := c.nextID
	// Encode before touching the socket: an unencodable value is the caller's error and must
	// not leave half a frame on the wire.
	frame, err := protocol.EncodeRequest(id, body)
	if err != nil {
		return protocol.Frame{}, err
	}
	c.nextID++
	if _, err := c.conn.Write(frame); err != nil {
		c.broken = err
		return protocol.Frame{}, err
	}
	reply, err := protocol.ReadFrame(c.r)
	if err != nil {
		c.broken = err
		return protocol.Frame{}, err
	}
	if reply.ID != id {
		c.broken = &protocol.ProtocolError{
			Msg: fmt.Sprintf("reply id %d does not match request id %d", reply.ID, id),
		}
		return protocol.Frame{}, c.broken
	}
	return reply, nil
}

// Send sends one body as a request frame without waiting for a reply: the runtime is about to
// exit and nothing will read one.
func (c *Comms) Send(body any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	frame, err := protocol.EncodeRequest(c.nextID, body)
	if err != nil {
		return err
	}
	c.nextID++
	_, err = c.conn.Write(frame)
	return err
}

// Broken returns why the stream is out of sync, or nil.
func (c *Comms) Broken() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

// Close closes the comm connection.
func (c *Comms) Close() error {
	if tcp, ok := c.conn.(*net.TCPConn); ok {
		_ = tcp.CloseWrite()
	}
	err := c.conn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
