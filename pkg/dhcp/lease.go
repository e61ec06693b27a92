package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/conf"
)

// errNoMoreTries is why an exchange stopped retrying: the daemon's -resendtimeout passed.
var errNoMoreTries = errors.New("no more tries")

// errLinkGone says the pod's namespace or interface no longer exists: the lease has nothing to serve.
var errLinkGone = errors.New("interface or namespace gone")

// ClientConfig is how the daemon's DHCP client behaves (its -timeout, -resendmax and -resendtimeout).
type ClientConfig struct {
	Timeout       time.Duration // wait for an answer to one message
	ResendMax     time.Duration // the longest wait between retransmissions
	ResendTimeout time.Duration // when an exchange gives up
}

// attachment names the pod interface a lease is for.
type attachment struct {
	containerID, network, ifName string
	netns                        string // the namespace's path on the daemon's host (hostprefix included)
}

// lease is one attachment's DHCP lease, maintained by a goroutine from acquisition until stop: renewed
// at T1, rebound at T2, and at expiry the interface is set down. It opens the pod's namespace for each
// exchange only, so it never keeps a deleted pod's namespace alive; when the namespace or the
// interface is gone, maintenance ends.
type lease struct {
	att      attachment
	clientID string
	opts     []dhcpv4.Option
	cfg      ClientConfig

	mu    sync.Mutex
	cur   *nclient4.Lease
	sched schedule

	ctx    context.Context // cancelled by stop: ends any exchange in flight
	cancel context.CancelFunc
	wake   chan struct{} // a CHECK: re-examine the link now
	quit   chan struct{} // closed by stop before it cancels ctx: release, then end
	done   chan struct{} // closed when maintenance has ended
	once   sync.Once
}

// acquireLease gets a lease for att from a server and starts maintaining it.
func acquireLease(att attachment, clientID string, opts []dhcpv4.Option, cfg ClientConfig) (*lease, error) {
	ctx, cancel := context.WithCancel(context.Background())
	l := &lease{
		att: att, clientID: clientID, opts: opts, cfg: cfg,
		ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
	}
	log.Printf("%s: acquiring a lease on %s in %s", clientID, att.ifName, att.netns)
	if err := l.acquire(cfg.ResendTimeout); err != nil {
		cancel()
		return nil, err
	}
	log.Printf("%s: leased %s until %s", clientID, l.ack().YourIPAddr, l.schedule().expire.Format(time.RFC3339))
	go l.maintain()
	return l, nil
}

// ack is the latest acknowledgment.
func (l *lease) ack() *dhcpv4.DHCPv4 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur.ACK
}

func (l *lease) schedule() schedule {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sched
}

func (l *lease) commit(nl *nclient4.Lease) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cur, l.sched = nl, scheduleFor(nl.ACK, time.Now())
}

// alive reports whether the lease is still maintained.
func (l *lease) alive() bool {
	select {
	case <-l.done:
		return false
	default:
		return true
	}
}

// check wakes maintenance to look at the link now (a CHECK); it never blocks.
func (l *lease) check() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// stop ends maintenance after sending a DHCPRELEASE (when the interface is still there), and waits.
func (l *lease) stop() {
	l.once.Do(func() {
		close(l.quit)
		l.cancel()
	})
	<-l.done
}

// abandon ends maintenance without releasing: the daemon is exiting and the pod keeps its address
// until the lease expires, as with the reference daemon.
func (l *lease) abandon() {
	l.once.Do(l.cancel)
}

func (l *lease) maintain() {
	defer close(l.done)
	for {
		if err := l.linkPresent(); errors.Is(err, errLinkGone) {
			log.Printf("%s: %v; lease maintenance ends", l.clientID, err)
			return
		} else if err != nil {
			log.Printf("%s: %v", l.clientID, err)
		}
		ph, wait := l.schedule().at(time.Now())
		switch ph {
		case renewing:
			if err := l.renew(wait); err != nil {
				log.Printf("%s: renewing: %v", l.clientID, err)
				wait = min(wait, resendDelay0)
			} else {
				log.Printf("%s: renewed %s until %s", l.clientID, l.ack().YourIPAddr, l.schedule().expire.Format(time.RFC3339))
				continue
			}
		case rebinding:
			if err := l.acquire(min(wait, l.cfg.ResendTimeout)); err != nil {
				log.Printf("%s: rebinding: %v", l.clientID, err)
				wait = min(wait, resendDelay0)
			} else {
				log.Printf("%s: rebound %s until %s", l.clientID, l.ack().YourIPAddr, l.schedule().expire.Format(time.RFC3339))
				continue
			}
		case expired:
			log.Printf("%s: lease expired; setting %s down", l.clientID, l.att.ifName)
			l.setDown()
			return
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-l.wake:
			timer.Stop()
		case <-l.ctx.Done(): // stopped (quit is closed too) or abandoned
			timer.Stop()
			select {
			case <-l.quit:
				if err := l.release(); err != nil {
					log.Printf("%s: release: %v", l.clientID, err)
				}
			default:
			}
			return
		}
	}
}

// exchange runs f with a DHCP client whose socket is bound to the interface inside the pod's namespace;
// the socket keeps that namespace, so f runs anywhere. A down interface is set up first: DHCP needs it.
// Messages go out from 0.0.0.0, or from the address from when it is valid.
func (l *lease) exchange(from net.IP, f func(*nclient4.Client) error) error {
	var c *nclient4.Client
	err := l.inPod(func() error {
		link, err := netlinksafe.LinkByName(l.att.ifName)
		if err != nil {
			return linkError(l.att, err)
		}
		if link.Attrs().Flags&net.FlagUp == 0 {
			if err := netlink.LinkSetUp(link); err != nil {
				return fmt.Errorf("set %s up: %w", l.att.ifName, err)
			}
		}
		c, err = newClient(l.att.ifName, from, l.cfg.Timeout)
		return err
	})
	if err != nil {
		return err
	}
	defer c.Close()
	return f(c)
}

// newClient opens a DHCP client on ifName in the current namespace, sending from 0.0.0.0 or from.
func newClient(ifName string, from net.IP, timeout time.Duration) (*nclient4.Client, error) {
	if from == nil || from.IsUnspecified() {
		return nclient4.New(ifName, nclient4.WithTimeout(timeout))
	}
	ifc, err := net.InterfaceByName(ifName)
	if err != nil {
		return nil, err
	}
	raw, err := packet.Listen(ifc, packet.Datagram, unix.ETH_P_IP, nil)
	if err != nil {
		return nil, fmt.Errorf("open a packet socket on %s: %w", ifName, err)
	}
	conn := nclient4.NewBroadcastUDPConn(raw, &net.UDPAddr{IP: from, Port: nclient4.ClientPort})
	c, err := nclient4.NewWithConn(conn, ifc.HardwareAddr, nclient4.WithTimeout(timeout))
	if err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// inPod runs f inside the pod's namespace; a namespace that no longer exists is errLinkGone.
func (l *lease) inPod(f func() error) error {
	err := ns.WithNetNSPath(l.att.netns, func(ns.NetNS) error { return f() })
	var missing ns.NSPathNotExistErr
	if errors.As(err, &missing) {
		return fmt.Errorf("%w: %w", conf.InvalidEnv("CNI_NETNS", "%q does not exist on the daemon's host (is -hostprefix right?)", l.att.netns), errLinkGone)
	}
	return err
}

func linkError(att attachment, err error) error {
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return fmt.Errorf("%w: %w", conf.InvalidEnv("CNI_IFNAME", "no interface %q in %s; the main plugin must create it before dhcp runs", att.ifName, att.netns), errLinkGone)
	}
	return fmt.Errorf("look up %s in %s: %w", att.ifName, att.netns, err)
}

// retry repeats one exchange with backoff until it succeeds, the lease is stopped, or limit passes.
func (l *lease) retry(limit time.Duration, f func(context.Context) (*nclient4.Lease, error)) (*nclient4.Lease, error) {
	ctx, cancel := context.WithTimeoutCause(l.ctx, limit, errNoMoreTries)
	defer cancel()
	b := newBackoff(l.cfg.ResendMax)
	for {
		nl, err := f(ctx)
		if err == nil {
			return nl, nil
		}
		if errors.Is(err, errLinkGone) {
			return nil, err
		}
		wait := b.next()
		log.Printf("%s: %v; retrying in %.1f s", l.clientID, err, wait.Seconds())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (last error: %v)", context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

// acquire runs a whole DISCOVER/OFFER/REQUEST/ACK exchange: at ADD, and to rebind (as the reference).
func (l *lease) acquire(limit time.Duration) error {
	nl, err := l.retry(limit, func(ctx context.Context) (nl *nclient4.Lease, err error) {
		err = l.exchange(nil, func(c *nclient4.Client) error {
			nl, err = c.Request(ctx, withClientID(l.clientID), withOptions(l.opts))
			return err
		})
		return nl, err
	})
	if err != nil {
		if errors.Is(err, errNoMoreTries) {
			return conf.TryAgain("no DHCP server answered on %s in %s within %v (the daemon's -resendtimeout): %v", l.att.ifName, l.att.netns, limit, err)
		}
		return err
	}
	l.commit(nl)
	return nil
}

// renew asks the server that granted the lease to extend it, until limit passes (T2 at most).
func (l *lease) renew(limit time.Duration) error {
	cur := l.current()
	nl, err := l.retry(min(limit, l.cfg.ResendTimeout), func(ctx context.Context) (nl *nclient4.Lease, err error) {
		err = l.exchange(nil, func(c *nclient4.Client) error {
			nl, err = c.Renew(ctx, cur, withClientID(l.clientID), withOptions(l.opts))
			return err
		})
		return nl, err
	})
	if err != nil {
		return err
	}
	l.commit(nl)
	return nil
}

func (l *lease) current() *nclient4.Lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

// release sends a DHCPRELEASE for the lease (one message; the server does not answer). It goes out from
// the leased address: a server's kernel drops a unicast datagram from 0.0.0.0 (a martian source) before
// a server on a UDP socket, such as dnsmasq, sees it. (The reference sends it from 0.0.0.0.)
func (l *lease) release() error {
	cur := l.current()
	log.Printf("%s: releasing %s", l.clientID, cur.ACK.YourIPAddr)
	return l.exchange(cur.ACK.YourIPAddr, func(c *nclient4.Client) error {
		return c.Release(cur, withClientID(l.clientID))
	})
}

// linkPresent returns errLinkGone (wrapped) when the namespace or the interface is gone, another error
// when it cannot tell.
func (l *lease) linkPresent() error {
	return l.inPod(func() error {
		_, err := netlinksafe.LinkByName(l.att.ifName)
		if err != nil {
			return linkError(l.att, err)
		}
		return nil
	})
}

func (l *lease) setDown() {
	err := l.inPod(func() error {
		link, err := netlinksafe.LinkByName(l.att.ifName)
		if err != nil {
			return err
		}
		return netlink.LinkSetDown(link)
	})
	if err != nil {
		log.Printf("%s: set %s down: %v", l.clientID, l.att.ifName, err)
	}
}
