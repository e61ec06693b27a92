package rpcwire

import (
	"bufio"
	"context"
	"encoding/gob"
	"errors"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrServerClosed is what Serve returns after Shutdown.
var ErrServerClosed = errors.New("rpcwire: server closed")

// Server answers net/rpc calls over HTTP, as an rpc.Server registered as an HTTP handler does (at any
// path). Calls on one connection run concurrently, as net/rpc's do.
type Server struct {
	// HandshakeTimeout bounds the time a client has to send its CONNECT; 0 is no limit.
	HandshakeTimeout time.Duration

	methods map[string]method

	mu       sync.Mutex
	ln       net.Listener
	conns    map[net.Conn]struct{}
	active   int // calls running
	shutdown bool
}

// method reads a call's arguments from the stream and returns the call to run.
type method func(dec *gob.Decoder) (func() (reply any, err error), error)

// NewServer returns a server with no methods.
func NewServer() *Server {
	return &Server{methods: map[string]method{}, conns: map[net.Conn]struct{}{}}
}

// Handle registers fn as name ("Service.Method"): it is called with the decoded arguments and a zero
// reply to fill, as a net/rpc method (func (t *T) Method(args *A, reply *R) error) is. Register every
// method before Serve.
func Handle[A, R any](s *Server, name string, fn func(args *A, reply *R) error) {
	s.methods[name] = func(dec *gob.Decoder) (func() (any, error), error) {
		args := new(A)
		if err := dec.Decode(args); err != nil {
			return nil, err
		}
		return func() (any, error) {
			reply := new(R)
			return reply, fn(args, reply)
		}, nil
	}
}

// Serve accepts connections on ln and serves each until its client hangs up. It returns
// ErrServerClosed after Shutdown, or the listener's error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.ln = ln
	s.mu.Unlock()
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			down := s.shutdown
			s.mu.Unlock()
			if down {
				return ErrServerClosed
			}
			if !transient(err) {
				return err
			}
			// Out of descriptors or memory, or a client gone before it was accepted: the daemon
			// stays up and tries again, as an http.Server does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Printf("rpcwire: accept: %v; retrying in %v", err, backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !s.track(conn, true) {
			conn.Close()
			continue
		}
		go func() {
			defer s.track(conn, false)
			s.ServeConn(conn)
		}()
	}
}

// transient tells whether an Accept error passes: the process or the system ran out of descriptors or
// memory, or the connection was aborted before it was accepted.
func transient(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.EAGAIN, syscall.EINTR} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// track adds or removes a connection; it refuses a new one once the server shuts down.
func (s *Server) track(conn net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, conn)
		return true
	}
	if s.shutdown {
		return false
	}
	s.conns[conn] = struct{}{}
	return true
}

// Shutdown stops accepting, lets the calls running finish until ctx ends, then closes every
// connection. Calls that arrive meanwhile are answered with an error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	s.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !s.idle() {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-tick.C:
			continue
		}
		break
	}
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	return err
}

// ServeConn answers the CONNECT on conn, then serves calls until the client hangs up, and closes it.
func (s *Server) ServeConn(conn net.Conn) {
	defer conn.Close()
	if s.HandshakeTimeout > 0 {
		_ = conn.SetReadDeadline(time.Now().Add(s.HandshakeTimeout))
	}
	r := bufio.NewReader(conn)
	first, err := readHeader(r)
	if err != nil {
		if errors.Is(err, errHeaderTooLong) {
			_, _ = io.WriteString(conn, "HTTP/1.0 400 Bad Request\r\nConnection: close\r\n\r\n")
		}
		return
	}
	if verb, _, _ := strings.Cut(first, " "); verb != "CONNECT" {
		_, _ = io.WriteString(conn, "HTTP/1.0 405 Method Not Allowed\r\n"+
			"Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n405 must CONNECT\n")
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	if _, err := io.WriteString(conn, "HTTP/1.0 "+connected+"\n\n"); err != nil {
		return
	}
	s.serveCalls(r, conn)
}

// serveCalls reads calls from r and runs each in its own goroutine; replies go out one at a time.
func (s *Server) serveCalls(r *bufio.Reader, conn net.Conn) {
	dec := gob.NewDecoder(r)
	w := bufio.NewWriter(conn)
	enc := gob.NewEncoder(w)
	var sending sync.Mutex
	reply := func(req *request, body any, err error) {
		resp := response{ServiceMethod: req.ServiceMethod, Seq: req.Seq}
		if err != nil {
			resp.Error, body = err.Error(), invalid
		}
		sending.Lock()
		defer sending.Unlock()
		if err := enc.Encode(&resp); err != nil {
			return
		}
		if err := enc.Encode(body); err != nil {
			// The reply does not encode (net/rpc logs and sends it half-written too); the client
			// sees the stream fail.
			log.Printf("rpcwire: encode the reply to %s: %v", req.ServiceMethod, err)
		}
		_ = w.Flush()
	}
	var calls sync.WaitGroup
	defer calls.Wait()
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			return // the client hung up, or the stream is beyond reading
		}
		m, ok := s.methods[req.ServiceMethod]
		if !ok {
			if err := discard(dec); err != nil {
				return
			}
			reply(&req, nil, errors.New(s.notFound(req.ServiceMethod)))
			continue
		}
		call, err := m(dec)
		if err != nil {
			reply(&req, nil, errors.New("rpc: server cannot decode the arguments of "+req.ServiceMethod+": "+err.Error()))
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return
			}
			continue
		}
		if !s.begin() {
			reply(&req, nil, errors.New("rpc: the server is shutting down"))
			continue
		}
		calls.Add(1)
		go func() {
			defer calls.Done()
			defer s.end()
			body, err := call()
			reply(&req, body, err)
		}()
	}
}

// notFound is net/rpc's error text for a call it has no method for.
func (s *Server) notFound(serviceMethod string) string {
	dot := strings.LastIndex(serviceMethod, ".")
	if dot < 0 {
		return "rpc: service/method request ill-formed: " + serviceMethod
	}
	for name := range s.methods {
		if strings.HasPrefix(name, serviceMethod[:dot+1]) {
			return "rpc: can't find method " + serviceMethod
		}
	}
	return "rpc: can't find service " + serviceMethod
}

func (s *Server) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active == 0
}

func (s *Server) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false
	}
	s.active++
	return true
}

func (s *Server) end() {
	s.mu.Lock()
	s.active--
	s.mu.Unlock()
}
