package rpcwire

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/rpc"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The types a call carries: nested structs, pointers, slices, maps, byte slices (net.IP), as the
// dhcp plugin's arguments and results have.
type EchoArgs struct {
	Name  string
	N     int
	IP    net.IP
	Items []*Item
	Tags  map[string]string
	Delay time.Duration
}

type Item struct {
	Key   string
	Value *int
}

type EchoReply struct {
	Name  string
	Sum   int
	IP    net.IP
	Items []*Item
	Tags  map[string]string
}

// Svc is the service both servers expose as "Svc".
type Svc struct{}

func (Svc) Echo(a *EchoArgs, r *EchoReply) error {
	time.Sleep(a.Delay)
	*r = EchoReply{Name: a.Name, Sum: a.N * 2, IP: a.IP, Items: a.Items, Tags: a.Tags}
	return nil
}

func (Svc) Fail(a *EchoArgs, _ *struct{}) error { return fmt.Errorf("[code 7] %s went wrong", a.Name) }

func newServer() *Server {
	s := NewServer()
	Handle(s, "Svc.Echo", Svc{}.Echo)
	Handle(s, "Svc.Fail", Svc{}.Fail)
	return s
}

func socket(t *testing.T) (string, net.Listener) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "rpc.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	return sock, ln
}

// serveStd runs net/rpc's own server, as the reference dhcp daemon does (rpc.HandleHTTP, http.Serve).
func serveStd(t *testing.T) string {
	t.Helper()
	sock, ln := socket(t)
	rs := rpc.NewServer()
	if err := rs.RegisterName("Svc", Svc{}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(rpc.DefaultRPCPath, rs)
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock
}

func serveOurs(t *testing.T, configure ...func(*Server)) (string, *Server) {
	t.Helper()
	sock, ln := socket(t)
	s := newServer()
	for _, f := range configure {
		f(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		_ = s.Shutdown(context.Background())
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return sock, s
}

func sampleArgs(name string) *EchoArgs {
	v := 42
	return &EchoArgs{Name: name, N: 21, IP: net.ParseIP("10.1.2.3").To4(),
		Items: []*Item{{Key: "a", Value: &v}, {Key: "b"}}, Tags: map[string]string{"k": "v"}}
}

func checkEcho(t *testing.T, a *EchoArgs, got *EchoReply) {
	t.Helper()
	want := EchoReply{Name: a.Name, Sum: a.N * 2, IP: a.IP, Items: a.Items, Tags: a.Tags}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("reply %+v, want %+v", *got, want)
	}
}

// caller is the client side of a test: ours or net/rpc's, behind one shape.
type caller interface {
	Call(method string, args, reply any) error
	Close() error
}

func dialOurs(sock string) (caller, error) { return Dial("unix", sock) }
func dialStd(sock string) (caller, error)  { return rpc.DialHTTP("unix", sock) }

// serverText is the text of a server-side error, whichever client returned it.
func serverText(err error) (string, bool) {
	var ours ServerError
	var std rpc.ServerError
	switch {
	case errors.As(err, &ours):
		return string(ours), true
	case errors.As(err, &std):
		return string(std), true
	}
	return "", false
}

// TestInterop runs the same calls for each pairing of client and server, net/rpc's and this
// package's; every pairing must answer as net/rpc answers net/rpc.
func TestInterop(t *testing.T) {
	pairs := []struct {
		name  string
		dial  func(string) (caller, error)
		serve func(*testing.T) string
	}{
		{"net/rpc client, rpcwire server", dialStd, func(t *testing.T) string { s, _ := serveOurs(t); return s }},
		{"rpcwire client, net/rpc server", dialOurs, serveStd},
		{"rpcwire client, rpcwire server", dialOurs, func(t *testing.T) string { s, _ := serveOurs(t); return s }},
		{"net/rpc client, net/rpc server", dialStd, serveStd},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			c, err := p.dial(p.serve(t))
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			// Several calls on one connection: the gob streams carry type definitions once.
			for _, name := range []string{"first", "second", ""} {
				a := sampleArgs(name)
				var r EchoReply
				if err := c.Call("Svc.Echo", a, &r); err != nil {
					t.Fatalf("Echo(%q): %v", name, err)
				}
				checkEcho(t, a, &r)
			}
			errCases := []struct{ method, want string }{
				{"Svc.Fail", "[code 7] boom went wrong"},
				{"Svc.GC", "rpc: can't find method Svc.GC"},
				{"Other.Echo", "rpc: can't find service Other.Echo"},
				{"NoDot", "rpc: service/method request ill-formed: NoDot"},
			}
			for _, tc := range errCases {
				err := c.Call(tc.method, sampleArgs("boom"), &struct{}{})
				if text, ok := serverText(err); !ok || text != tc.want {
					t.Errorf("%s: error %v (a server error: %v), want server error %q", tc.method, err, ok, tc.want)
				}
			}
			// The connection still works after errors.
			a := sampleArgs("after")
			var r EchoReply
			if err := c.Call("Svc.Echo", a, &r); err != nil {
				t.Fatalf("Echo after errors: %v", err)
			}
			checkEcho(t, a, &r)
		})
	}
}

// TestConcurrentCalls: net/rpc's client multiplexes calls on one connection; the server runs them at
// once and answers each by its sequence number, in whatever order they finish.
func TestConcurrentCalls(t *testing.T) {
	sock, _ := serveOurs(t)
	c, err := rpc.DialHTTP("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := sampleArgs(fmt.Sprintf("call-%d", i))
			a.N = i
			a.Delay = time.Duration(8-i) * 20 * time.Millisecond
			var r EchoReply
			if err := c.Call("Svc.Echo", a, &r); err != nil {
				t.Errorf("call %d: %v", i, err)
				return
			}
			checkEcho(t, a, &r)
		}()
	}
	wg.Wait()
	// Run one after another they would take 720 ms.
	if d := time.Since(start); d > 600*time.Millisecond {
		t.Logf("8 concurrent calls took %v: were they serialised?", d)
	}
}

func TestHandshake(t *testing.T) {
	sock, _ := serveOurs(t, func(s *Server) { s.HandshakeTimeout = 200 * time.Millisecond })

	t.Run("not CONNECT", func(t *testing.T) {
		resp := rawRequest(t, sock, "GET /_goRPC_ HTTP/1.1\r\nHost: x\r\n\r\n")
		if !strings.HasPrefix(resp, "HTTP/1.0 405 ") || !strings.HasSuffix(resp, "405 must CONNECT\n") {
			t.Errorf("response %q, want 405 must CONNECT", resp)
		}
	})
	t.Run("silent client", func(t *testing.T) {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("read from a connection that sent nothing: %v, want EOF after the handshake timeout", err)
		}
	})
	t.Run("header too long", func(t *testing.T) {
		resp := rawRequest(t, sock, "CONNECT /_goRPC_ HTTP/1.0\nX: "+strings.Repeat("a", maxHandshake)+"\n\n")
		if !strings.HasPrefix(resp, "HTTP/1.0 400 ") {
			t.Errorf("response %q, want 400", resp)
		}
	})
	t.Run("not a net/rpc server", func(t *testing.T) {
		sock, ln := socket(t)
		srv := &http.Server{Handler: http.NotFoundHandler()}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		_, err := Dial("unix", sock)
		if err == nil || !strings.Contains(err.Error(), `unexpected HTTP response: "HTTP/1.0 404 Not Found"`) {
			t.Errorf("Dial: %v, want the HTTP status named", err)
		}
	})
}

func rawRequest(t *testing.T, sock, req string) string {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(bufio.NewReader(conn))
	if err != nil && !errors.Is(err, net.ErrClosed) {
		t.Logf("read: %v", err)
	}
	return string(b)
}

// TestShutdown: a call running when Shutdown starts finishes and is answered; Serve then returns.
func TestShutdown(t *testing.T) {
	sock, ln := socket(t)
	s := newServer()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	c, err := Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	called := make(chan error, 1)
	a := sampleArgs("slow")
	a.Delay = 300 * time.Millisecond
	var r EchoReply
	go func() { called <- c.Call("Svc.Echo", a, &r) }()
	time.Sleep(100 * time.Millisecond)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-called; err != nil {
		t.Errorf("the call in flight: %v", err)
	} else {
		checkEcho(t, a, &r)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve: %v, want ErrServerClosed", err)
	}
	if _, err := Dial("unix", sock); err == nil {
		t.Error("Dial after Shutdown succeeded")
	}

	// A call longer than the grace period is cut off, and Shutdown says so.
	sock2, ln2 := socket(t)
	s2 := newServer()
	go func() { _ = s2.Serve(ln2) }()
	c2, err := Dial("unix", sock2)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	b := sampleArgs("slower")
	b.Delay = 2 * time.Second
	go func() { called <- c2.Call("Svc.Echo", b, &r) }()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s2.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown past its deadline: %v", err)
	}
	if err := <-called; err == nil {
		t.Error("a call cut off by Shutdown succeeded")
	}
}

func TestDialErrors(t *testing.T) {
	_, err := Dial("unix", filepath.Join(t.TempDir(), "none.sock"))
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Dial of a missing socket: %v", err)
	}
}

// flakyListener fails its first Accepts with err, then accepts from the real listener.
type flakyListener struct {
	net.Listener
	err   error
	fails int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, l.err
	}
	return l.Listener.Accept()
}

// TestAcceptErrors: running out of descriptors does not stop the server; a listener that is broken
// for good does, with its error.
func TestAcceptErrors(t *testing.T) {
	sock, ln := socket(t)
	s := newServer()
	emfile := &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	served := make(chan error, 1)
	go func() { served <- s.Serve(&flakyListener{Listener: ln, err: emfile, fails: 3}) }()
	c, err := Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	a := sampleArgs("after EMFILE")
	var r EchoReply
	if err := c.Call("Svc.Echo", a, &r); err != nil {
		t.Fatalf("call after transient accept errors: %v", err)
	}
	checkEcho(t, a, &r)
	c.Close()
	_ = s.Shutdown(context.Background())
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve: %v, want ErrServerClosed", err)
	}

	_, ln2 := socket(t)
	defer ln2.Close()
	broken := errors.New("listener broken")
	if err := newServer().Serve(&flakyListener{Listener: ln2, err: broken, fails: 1}); !errors.Is(err, broken) {
		t.Errorf("Serve on a broken listener: %v, want its error", err)
	}
}
