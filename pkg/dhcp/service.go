package dhcp

import (
	"fmt"
	"log"
	"path/filepath"
	"sync"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/plugin"
	"github.com/netloom/netloom/pkg/rpcwire"
)

// ServiceName is the net/rpc service the daemon registers and the plugin calls, as the reference's.
const ServiceName = "DHCP"

// The RPC methods. Allocate and Release are the reference's (its plugin calls Allocate for ADD and
// CHECK, Release for DEL); GC is netloom's, and a reference daemon answers it with "can't find method".
const (
	MethodAllocate = ServiceName + ".Allocate"
	MethodRelease  = ServiceName + ".Release"
	MethodGC       = ServiceName + ".GC"
)

// Service is the daemon's RPC service: the leases it maintains, keyed by client identifier. Its
// exported methods are the RPC methods, with the reference's argument and result types (plugin.Args
// in, current.Result out), so the reference plugin can call it.
type Service struct {
	cfg        ClientConfig
	hostPrefix string

	mu     sync.Mutex
	leases map[string]*lease
	busy   map[string]*clientLock // one ADD/CHECK/DEL at a time per client identifier
}

type clientLock struct {
	sync.Mutex
	refs int
}

// GCRequest is the argument of DHCP.GC: the network, and the attachments that must keep their leases.
type GCRequest struct {
	Network string
	Valid   []conf.Attachment
}

// NewService returns a service with no leases; hostPrefix is prepended to every namespace path.
func NewService(cfg ClientConfig, hostPrefix string) *Service {
	return &Service{cfg: cfg, hostPrefix: hostPrefix, leases: map[string]*lease{}, busy: map[string]*clientLock{}}
}

// server returns an RPC server with the service's methods.
func (s *Service) server() *rpcwire.Server {
	srv := rpcwire.NewServer()
	rpcwire.Handle(srv, MethodAllocate, s.Allocate)
	rpcwire.Handle(srv, MethodRelease, s.Release)
	rpcwire.Handle(srv, MethodGC, s.GC)
	return srv
}

// Allocate returns the attachment's lease, acquiring one from a server when the daemon holds none
// (the first ADD, or a CHECK after a daemon restart: the server sees the same client identifier and
// hands out the same address). An existing lease is looked at again (link present, renewal due).
func (s *Service) Allocate(args *plugin.Args, result *current.Result) error {
	return wireError(s.allocate(args, result))
}

func (s *Service) allocate(args *plugin.Args, result *current.Result) error {
	nc, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	opts, err := Options(nc.IPAM, args.Args)
	if err != nil {
		return err
	}
	if !filepath.IsAbs(args.Netns) {
		return conf.InvalidEnv("CNI_NETNS", "%q is not an absolute path", args.Netns)
	}
	id := ClientID(args.ContainerID, nc.Name, args.IfName)
	defer s.lock(id)()
	l := s.lease(id)
	if l != nil && !l.alive() {
		log.Printf("%s: the lease's maintenance had ended; acquiring a new one", id)
		s.setLease(id, nil)
		l = nil
	}
	if l != nil {
		l.check()
	} else {
		att := attachment{containerID: args.ContainerID, network: nc.Name, ifName: args.IfName, netns: s.hostPrefix + args.Netns}
		if l, err = acquireLease(att, id, opts, s.cfg); err != nil {
			return err
		}
	}
	res, err := Result(l.ack(), nc.IPAM.Priority)
	if err != nil {
		l.stop()
		s.setLease(id, nil)
		return err
	}
	s.setLease(id, l)
	*result = *res
	return nil
}

// Release stops maintaining the attachment's lease and sends the server a DHCPRELEASE. Releasing a
// lease the daemon does not hold succeeds.
func (s *Service) Release(args *plugin.Args, _ *struct{}) error {
	nc, err := ParseConfig(args.StdinData)
	if err != nil {
		return wireError(err)
	}
	id := ClientID(args.ContainerID, nc.Name, args.IfName)
	defer s.lock(id)()
	if l := s.lease(id); l != nil {
		l.stop()
		s.setLease(id, nil)
	}
	return nil
}

// GC releases the network's leases whose attachment is not in req.Valid.
func (s *Service) GC(req *GCRequest, _ *struct{}) error {
	valid := make(map[conf.Attachment]bool, len(req.Valid))
	for _, a := range req.Valid {
		valid[a] = true
	}
	s.mu.Lock()
	var stale []string
	for id, l := range s.leases {
		a := conf.Attachment{ContainerID: l.att.containerID, IfName: l.att.ifName}
		if l.att.network == req.Network && !valid[a] {
			stale = append(stale, id)
		}
	}
	s.mu.Unlock()
	for _, id := range stale {
		func() {
			defer s.lock(id)()
			if l := s.lease(id); l != nil {
				log.Printf("%s: GC: not a valid attachment; releasing", id)
				l.stop()
				s.setLease(id, nil)
			}
		}()
	}
	return nil
}

// abandonAll ends every lease's maintenance without releasing (the daemon is exiting).
func (s *Service) abandonAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.leases {
		l.abandon()
	}
}

func (s *Service) lease(id string) *lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leases[id]
}

func (s *Service) setLease(id string, l *lease) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l == nil {
		delete(s.leases, id)
		return
	}
	s.leases[id] = l
}

// lock serializes the calls for one client identifier and returns the unlock.
func (s *Service) lock(id string) func() {
	s.mu.Lock()
	cl := s.busy[id]
	if cl == nil {
		cl = &clientLock{}
		s.busy[id] = cl
	}
	cl.refs++
	s.mu.Unlock()
	cl.Lock()
	return func() {
		cl.Unlock()
		s.mu.Lock()
		if cl.refs--; cl.refs == 0 {
			delete(s.busy, id)
		}
		s.mu.Unlock()
	}
}

// codePrefix starts an RPC error message that carries a CNI error code: net/rpc sends only a string,
// so the code travels in it. A reference plugin shows the message as it is, which stays readable.
const codePrefix = "[cni code "

// wireError turns a CNI error into an RPC error string that keeps its code.
func wireError(err error) error {
	if err == nil {
		return nil
	}
	e := conf.ForRuntime(err)
	return fmt.Errorf("%s%d] %s", codePrefix, e.Code, e.Msg)
}
