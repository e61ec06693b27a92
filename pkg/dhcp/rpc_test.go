package dhcp

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/rpc"
	"path/filepath"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/plugin"
	"github.com/netloom/netloom/pkg/rpcwire"
)

// serveDaemon runs the daemon's RPC server for svc on a socket in a temp dir until t ends.
func serveDaemon(t *testing.T, svc *Service) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "dhcp.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := svc.server()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return sock
}

// serve runs net/rpc's own server, as the reference daemon does, with rcvr registered as "DHCP" on a
// socket in a temp dir until t ends.
func serve(t *testing.T, rcvr any) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "dhcp.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	rs := rpc.NewServer()
	if err := rs.RegisterName(ServiceName, rcvr); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rs}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock
}

// referenceService has the reference daemon's methods only (no GC).
type referenceService struct{}

func (referenceService) Allocate(*plugin.Args, *current.Result) error {
	return errors.New("error parsing netconf: boom")
}
func (referenceService) Release(*plugin.Args, *struct{}) error { return nil }

func TestRPC(t *testing.T) {
	sock := serveDaemon(t, NewService(ClientConfig{}, ""))
	args := func(stdin string) *plugin.Args {
		return &plugin.Args{ContainerID: "c", Netns: "/run/netns/x", IfName: "eth0", StdinData: []byte(stdin)}
	}
	const good = `{"cniVersion":"1.1.0","name":"n","type":"dhcp","ipam":{"type":"dhcp"}}`

	if err := Ping(sock); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	// Release of a lease the daemon does not hold succeeds.
	if err := Call(sock, MethodRelease, args(good), &struct{}{}); err != nil {
		t.Errorf("Release of nothing: %v", err)
	}
	// A daemon's coded error keeps its code across the wire.
	err := Call(sock, MethodAllocate, args(`{"cniVersion":"1.1.0","name":"n","type":"dhcp","ipam":{"type":"dhcp","request":[{"option":"x"}]}}`), &current.Result{})
	if conf.Code(err) != conf.CodeInvalidConfig || !strings.Contains(err.Error(), "ipam.request[0].option") {
		t.Errorf("Allocate with a bad option: %v (code %d), want code 7 naming the key", err, conf.Code(err))
	}
	err = Call(sock, MethodAllocate, args(good), &current.Result{})
	if err == nil || conf.Code(err) == conf.CodeInternal || conf.Code(err) == 0 {
		t.Errorf("Allocate in a namespace that does not exist: %v (code %d), want a coded error", err, conf.Code(err))
	}
	if err := GC(sock, &GCRequest{Network: "n"}); err != nil {
		t.Errorf("GC: %v", err)
	}

	// The reference daemon: no GC method is not an error; its errors are code 999 with its message.
	ref := serve(t, referenceService{})
	if err := GC(ref, &GCRequest{Network: "n"}); err != nil {
		t.Errorf("GC against a daemon without GC: %v", err)
	}
	err = Call(ref, MethodAllocate, args(good), &current.Result{})
	if conf.Code(err) != conf.CodeInternal || !strings.Contains(err.Error(), "boom") {
		t.Errorf("reference daemon error: %v", err)
	}

	// The reference plugin (net/rpc's client) calling netloom's daemon: the same answers.
	rc, err := rpc.DialHTTP("unix", sock)
	if err != nil {
		t.Fatalf("net/rpc client: %v", err)
	}
	defer rc.Close()
	if err := rc.Call(MethodRelease, args(good), &struct{}{}); err != nil {
		t.Errorf("net/rpc client, Release: %v", err)
	}
	err = rc.Call(MethodAllocate, args(`{"cniVersion":"1.1.0","name":"n","type":"dhcp","ipam":{"type":"dhcp","request":[{"option":"x"}]}}`), &current.Result{})
	var se rpc.ServerError
	if !errors.As(err, &se) || !strings.Contains(string(se), "ipam.request[0].option") {
		t.Errorf("net/rpc client, Allocate with a bad option: %v", err)
	}

	// No daemon: an error naming the socket and how to start one, which NoDaemon recognizes.
	missing := filepath.Join(t.TempDir(), "none.sock")
	err = Call(missing, MethodAllocate, args(good), &current.Result{})
	if !NoDaemon(err) || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "dhcp daemon") {
		t.Errorf("no daemon: %v (NoDaemon %v)", err, NoDaemon(err))
	}
	if err := Ping(missing); !NoDaemon(err) {
		t.Errorf("Ping with no daemon: %v", err)
	}
}

func TestWireError(t *testing.T) {
	for _, err := range []error{
		conf.Invalid("ipam.priority", "bad"),
		conf.TryAgain("no DHCP server answered"),
		errors.New("plain"),
	} {
		back := fromWire(MethodAllocate, rpcwire.ServerError(wireError(err).Error()))
		if conf.Code(back) != conf.ForRuntime(err).Code || !strings.Contains(back.Error(), conf.ForRuntime(err).Msg) {
			t.Errorf("%v came back as %v (code %d)", err, back, conf.Code(back))
		}
	}
	if wireError(nil) != nil {
		t.Error("wireError(nil) != nil")
	}
}
