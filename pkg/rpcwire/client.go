package rpcwire

import (
	"bufio"
	"encoding/gob"
	"fmt"
	"io"
	"net"
	"strings"
)

// Client is one connection to a net/rpc server. Its calls run one at a time.
type Client struct {
	conn net.Conn
	w    *bufio.Writer
	enc  *gob.Encoder
	dec  *gob.Decoder
	seq  uint64
}

// Dial connects to the net/rpc server at address over HTTP, as rpc.DialHTTP does. The error of a
// failed connect is net.Dial's, so errors.Is finds its errno (ENOENT, ECONNREFUSED).
func Dial(network, address string) (*Client, error) {
	conn, err := net.Dial(network, address)
	if err != nil {
		return nil, err
	}
	c, err := handshake(conn)
	if err != nil {
		conn.Close()
		return nil, &net.OpError{Op: "dial-http", Net: network + " " + address, Err: err}
	}
	return c, nil
}

func handshake(conn net.Conn) (*Client, error) {
	if _, err := io.WriteString(conn, "CONNECT "+Path+" HTTP/1.0\n\n"); err != nil {
		return nil, err
	}
	r := bufio.NewReader(conn)
	status, err := readHeader(r)
	if err != nil {
		return nil, fmt.Errorf("read the HTTP response: %w", err)
	}
	proto, rest, _ := strings.Cut(status, " ")
	if !strings.HasPrefix(proto, "HTTP/1.") || rest != connected {
		return nil, fmt.Errorf("unexpected HTTP response: %q", status)
	}
	w := bufio.NewWriter(conn)
	return &Client{conn: conn, w: w, enc: gob.NewEncoder(w), dec: gob.NewDecoder(r)}, nil
}

// Call runs method ("Service.Method") with args and decodes the result into reply, a pointer. An error
// the server reports is a ServerError; anything else is the connection's.
func (c *Client) Call(method string, args, reply any) error {
	c.seq++
	if err := c.enc.Encode(&request{ServiceMethod: method, Seq: c.seq}); err != nil {
		return fmt.Errorf("send %s: %w", method, err)
	}
	if err := c.enc.Encode(args); err != nil {
		return fmt.Errorf("send %s: %w", method, err)
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("send %s: %w", method, err)
	}
	var resp response
	if err := c.dec.Decode(&resp); err != nil {
		return fmt.Errorf("read the reply to %s: %w", method, unexpectedEOF(err))
	}
	if resp.Seq != c.seq {
		return fmt.Errorf("read the reply to %s: it answers call %d, not %d", method, resp.Seq, c.seq)
	}
	if resp.Error != "" {
		if err := discard(c.dec); err != nil {
			return fmt.Errorf("read the reply to %s: %w", method, unexpectedEOF(err))
		}
		return ServerError(resp.Error)
	}
	if err := c.dec.Decode(reply); err != nil {
		return fmt.Errorf("read the reply to %s: %w", method, unexpectedEOF(err))
	}
	return nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// unexpectedEOF says that the server hung up in the middle of a call, which io.EOF alone does not.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
