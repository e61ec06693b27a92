package dhcp

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/plugin"
	"github.com/netloom/netloom/pkg/rpcwire"
)

// UnreachableError says no daemon answers on the socket.
type UnreachableError struct {
	Socket string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("no dhcp daemon answers on %s: %v; start it on the node with `dhcp daemon` "+
		"(e.g. /opt/cni/bin/dhcp daemon -socketpath %s, or the cni-dhcp systemd socket and service), "+
		"or set ipam.daemonSocketPath to the socket it listens on", e.Socket, e.Err, e.Socket)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// NoDaemon reports whether err says that nothing listens on the socket at all (no socket file, or
// nobody accepting on it): then no daemon holds a lease either.
func NoDaemon(err error) bool {
	var u *UnreachableError
	return errors.As(err, &u) && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED))
}

// dial connects to the daemon as the reference plugin does: net/rpc's protocol over HTTP on a unix
// socket.
func dial(socket string) (*rpcwire.Client, error) {
	c, err := rpcwire.Dial("unix", socket)
	if err != nil {
		return nil, &UnreachableError{Socket: socket, Err: err}
	}
	return c, nil
}

// Ping checks that a daemon answers on socket (an RPC handshake, no method call).
func Ping(socket string) error {
	c, err := dial(socket)
	if err != nil {
		return err
	}
	return c.Close()
}

// Call runs one RPC method of the daemon on socket with the command's arguments (the namespace path
// made absolute: the daemon runs elsewhere). A daemon's error keeps the CNI code it carries (see
// wireError); one without (a reference daemon's) is code 999 with the daemon's message.
func Call(socket, method string, args *plugin.Args, reply any) error {
	if args.Netns != "" {
		abs, err := filepath.Abs(args.Netns)
		if err != nil {
			return conf.InvalidEnv("CNI_NETNS", "make %q absolute: %v", args.Netns, err)
		}
		args.Netns = abs
	}
	return call(socket, method, args, reply)
}

func call(socket, method string, args, reply any) error {
	c, err := dial(socket)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Call(method, args, reply); err != nil {
		return fromWire(method, err)
	}
	return nil
}

// GC asks the daemon to release the network's leases not in valid. A daemon without the method (the
// reference's) is not an error: it has nothing to collect but what DEL releases.
func GC(socket string, req *GCRequest) error {
	err := call(socket, MethodGC, req, &struct{}{})
	if err != nil && strings.Contains(err.Error(), "can't find method") {
		return nil
	}
	return err
}

// fromWire turns an RPC error back into a CNI error, reading the code wireError put in it.
func fromWire(method string, err error) error {
	var se rpcwire.ServerError
	if !errors.As(err, &se) {
		return conf.IOFailure("dhcp daemon: %s: %v", method, err)
	}
	msg := string(se)
	if rest, ok := strings.CutPrefix(msg, codePrefix); ok {
		if num, text, ok := strings.Cut(rest, "] "); ok {
			if code, perr := strconv.ParseUint(num, 10, 32); perr == nil && code != 0 {
				return types.NewError(uint(code), "dhcp daemon: "+text, "")
			}
		}
	}
	return types.NewError(conf.CodeInternal, "dhcp daemon: "+method+": "+msg, "")
}
