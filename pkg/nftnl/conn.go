// Package nftnl speaks nf_tables over nfnetlink: one socket in the calling thread's network namespace,
// transactions that the kernel applies whole or not at all and that name the message that failed,
// dumps that start over when a concurrent change interrupted them, single set element lookups, and the
// encoders and decoders of tables, chains, rules, sets and elements. It knows no table's layout: the
// nftables backends (pkg/portmap/nftables, pkg/firewall/nftables) decide what to write, and this
// package writes and reads it. Rule expressions are pkg/nftnl/expr values; attributes are framed by
// pkg/nftnl/internal/nlattr, so a plugin links neither google/nftables nor mdlayher/netlink (their
// expression decoder alone brings ~100 KB of code and tables into each binary).
//
// Why not google/nftables' Conn: it cannot send a table comment, look up single set elements, or say
// which message of a batch failed; it does not retry a dump the kernel marked interrupted
// (NLM_F_DUMP_INTR), so a listing taken during another process's commit can silently miss rules; its
// requests wait without a timeout; and it opens a socket per request, so an operation that lists and
// then commits pays the socket teardown (an RCU grace period after a deletion) more than once.
package nftnl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netloom/netloom/pkg/conf"
)

// recvTimeout bounds every wait for the kernel, so a lost reply fails an operation instead of hanging
// the plugin.
const recvTimeout = 30 * time.Second

// dumpAttempts bounds how often a dump is run again after the kernel interrupted it. Every commit in
// the namespace (another pod's portmap, an iptables-nft masquerade) interrupts a dump in flight: under
// heavy churn five back-to-back tries were not always enough (the soak saw one ADD in ~2,000 fail so).
const dumpAttempts = 20

// Conn is a netlink socket of the network namespace of the thread that dialed it. It is not safe for
// concurrent use; any number of processes and Conns may work on one namespace at once.
type Conn struct {
	fd  int
	seq uint32
	buf []byte
	// grace is the wait, started when a transaction that deleted something was sent, for the RCU
	// grace period the kernel's frees of it are queued behind (see Close).
	grace sync.WaitGroup
}

// Dial opens a socket in the calling thread's network namespace.
func Dial() (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("nf_tables netlink socket: %w", err)
	}
	c := &Conn{fd: fd, seq: uint32(time.Now().UnixNano()), buf: make([]byte, 64<<10)}
	// An error reply then carries the failed request's header only, not its whole body.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	tv := unix.NsecToTimeval(recvTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		c.Close()
		return nil, fmt.Errorf("nf_tables netlink socket: receive timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		c.Close()
		return nil, fmt.Errorf("nf_tables netlink socket: bind: %w", err)
	}
	return c, nil
}

// Close closes the socket. After a transaction that deleted something it first waits, holding
// nothing, for an RCU grace period that began when the transaction was sent (5-15 ms on the test
// kernel; by the time of a late Close it is long over).
//
// Why: the kernel frees what a transaction deleted from a work item, after a grace period, and when an
// nf_tables socket is released it waits for that work to finish while holding the namespace's
// nf_tables commit mutex (nft_rcv_nl_event). Deleting a network device takes the same mutex (the
// netdev notifier of nf_tables), so a plain close right after a deletion held up every link deletion in
// the namespace for most of a grace period: the bridge plugin's DEL, which removes the masquerade and
// the pod's veth at once, took 7 ms longer with the nftables masquerade than without it on a node with
// 1,000 pods (3 ms on an empty one), and 10 ms longer with iptables-nft's. So a deleting transaction
// starts a wait of its own (membarrier(MEMBARRIER_CMD_GLOBAL), the kernel's synchronize_rcu() for a
// process) alongside the kernel's, and Close waits for it: the release then finds little or nothing
// to wait for. Started at the transaction rather than at Close, it costs nothing when the caller had
// other work to do in between. Where membarrier is unavailable (nohz_full CPUs, a seccomp filter) the
// close waits as before. Every nftables client pays the grace period, nft included.
func (c *Conn) Close() {
	c.grace.Wait()
	_ = unix.Close(c.fd)
}

// membarrierCmdGlobal is MEMBARRIER_CMD_GLOBAL of linux/membarrier.h, which x/sys/unix does not name.
const membarrierCmdGlobal = 1 << 0

// deletes tells whether msg deletes an nf_tables object, which the kernel frees after a grace period.
func deletes(m Msg) bool {
	switch m.Type {
	case unix.NFT_MSG_DELTABLE, unix.NFT_MSG_DELCHAIN, unix.NFT_MSG_DELRULE, unix.NFT_MSG_DELSET,
		unix.NFT_MSG_DELSETELEM, unix.NFT_MSG_DELOBJ, unix.NFT_MSG_DELFLOWTABLE:
		return true
	}
	return false
}

// Available tells whether nf_tables answers over netlink in the calling thread's namespace.
func Available() bool {
	c, err := Dial()
	if err != nil {
		return false
	}
	defer c.Close()
	_, err = c.Dump(unix.NFT_MSG_GETTABLE, unix.NFPROTO_UNSPEC, nil)
	return err == nil
}

// reserve takes n sequence numbers and returns the first.
func (c *Conn) reserve(n int) uint32 {
	first := c.seq + 1
	c.seq += uint32(n)
	return first
}

func (c *Conn) send(b []byte) error {
	for {
		err := unix.Sendto(c.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// receive reads one datagram of replies. Their Data lies in c.buf until the next receive.
func (c *Conn) receive() ([]syscall.NetlinkMessage, error) {
	for {
		n, _, err := unix.Recvfrom(c.fd, c.buf, unix.MSG_PEEK|unix.MSG_TRUNC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("receive from nf_tables: %w", err)
		}
		if n > len(c.buf) {
			c.buf = make([]byte, n)
		}
		n, _, err = unix.Recvfrom(c.fd, c.buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("receive from nf_tables: %w", err)
		}
		return syscall.ParseNetlinkMessage(c.buf[:n])
	}
}

// Transact sends msgs as one nf_tables transaction: the kernel applies all or none. It returns the
// error of the first message that failed, naming it ("add elements to owner4: file exists"), so
// callers can test it with errors.Is.
func (c *Conn) Transact(msgs []Msg) error {
	_, err := c.transact(msgs, false)
	return err
}

// TransactHandles is Transact that has the kernel echo every rule the transaction adds (NLM_F_ECHO)
// and returns their handles: handles[i] is the handle of the rule msgs[i] added, 0 when msgs[i] adds
// no rule. A caller can then find its rules again by handle, without listing a chain.
func (c *Conn) TransactHandles(msgs []Msg) (handles []uint64, err error) {
	return c.transact(msgs, true)
}

func (c *Conn) transact(msgs []Msg, echo bool) ([]uint64, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	if echo {
		msgs = slices.Clone(msgs)
		for i := range msgs {
			if msgs[i].Type == unix.NFT_MSG_NEWRULE {
				msgs[i].Flags |= unix.NLM_F_ECHO
			}
		}
	}
	c.fitAcks(len(msgs))
	begin := c.reserve(len(msgs) + 2)
	if err := c.send(batch(msgs, begin)); err != nil {
		return nil, fmt.Errorf("send nf_tables transaction: %w", err)
	}
	if slices.ContainsFunc(msgs, deletes) {
		// The kernel has committed (or refused) the batch by now: see Close.
		c.grace.Go(func() { _, _, _ = unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdGlobal, 0, 0) })
	}
	var handles []uint64
	if echo {
		handles = make([]uint64, len(msgs))
	}
	acked := make([]bool, len(msgs))
	var failed error
	failedAt := len(msgs)
	for left := len(msgs); left > 0; {
		replies, err := c.receive()
		if err != nil {
			return nil, err
		}
		for _, r := range replies {
			if r.Header.Type == nftType(unix.NFT_MSG_NEWRULE) && echo {
				// The echo of an added rule, sent at commit (before the acknowledgements) with the
				// sequence number of the request that added it.
				if i := int(r.Header.Seq - begin - 1); i >= 0 && i < len(msgs) {
					_, rule, err := parseRule(r.Data)
					if err != nil {
						return nil, fmt.Errorf("%s: echo: %w", msgs[i].What, err)
					}
					handles[i] = rule.Handle
				}
				continue
			}
			if r.Header.Type != unix.NLMSG_ERROR {
				continue
			}
			err := errnoOf(r)
			if r.Header.Seq == begin {
				// The batch as a whole was refused (no permission) or failed to commit.
				return nil, fmt.Errorf("nf_tables transaction: %w", err)
			}
			i := int(r.Header.Seq - begin - 1)
			if i < 0 || i >= len(msgs) || acked[i] {
				continue
			}
			acked[i] = true
			left--
			if err != nil && i < failedAt {
				failed, failedAt = fmt.Errorf("%s: %w", msgs[i].What, err), i
			}
		}
	}
	if failed != nil {
		return nil, failed
	}
	return handles, nil
}

// ackSpace is what one acknowledgement (or echo) takes of a socket's receive buffer, the kernel's
// bookkeeping included, with room to spare.
const ackSpace = 2048

// fitAcks makes the receive buffer hold the acknowledgements of a transaction of n messages: the kernel
// sends them all after the commit and drops those that do not fit (the receive then fails with ENOBUFS),
// which the default buffer (208 KiB) does for a transaction of some 300 messages, a GC deleting the
// rules of that many attachments. Like nft, it forces the size (root may exceed rmem_max); a failure
// leaves the buffer as it was.
func (c *Conn) fitAcks(n int) {
	const defaultFits = 64 // acknowledgements the default buffer surely holds
	if n <= defaultFits {
		return
	}
	if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n*ackSpace); err != nil {
		_ = unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n*ackSpace)
	}
}

// ElemQuery asks for the element of Set that holds Key (for an interval map: the one whose range holds
// it).
type ElemQuery struct {
	Set string
	Key []byte
}

// GetElems looks up single elements of t's sets, one request each, all sent at once: the cost depends
// on len(qs), not on the size of the sets. A missing element, or missing set, comes back as nil.
func (c *Conn) GetElems(t Table, qs []ElemQuery) ([]*Elem, error) {
	if len(qs) == 0 {
		return nil, nil
	}
	reqs := make([][]byte, len(qs))
	for i, q := range qs {
		reqs[i] = t.elemList(q.Set, []Elem{{Key: q.Key}}, false)
	}
	return lookups(c, unix.NFT_MSG_GETSETELEM, t.Family, reqs, elemReply, func(i int) string {
		if i < 0 {
			return "nf_tables element lookups"
		}
		return fmt.Sprintf("look up %s element", qs[i].Set)
	})
}

// lookups sends one non-dump request of type typ (an NFT_MSG_GET*) per reqs item, all at once, and reads
// each answer with reply: out[i] answers reqs[i]. what(i) names a request in errors; an i of -1 stands
// for the whole exchange.
func lookups[T any](c *Conn, typ uint16, family byte, reqs [][]byte, reply func(syscall.NetlinkMessage) (*T, error), what func(i int) string) ([]*T, error) {
	first := c.reserve(len(reqs))
	var b []byte
	for i, req := range reqs {
		b = appendMsg(b, nftType(typ), unix.NLM_F_REQUEST, first+uint32(i), family, 0, req)
	}
	if err := c.send(b); err != nil {
		return nil, fmt.Errorf("%s: %w", what(-1), err)
	}
	out := make([]*T, len(reqs))
	answered := make([]bool, len(reqs))
	for left := len(reqs); left > 0; {
		replies, err := c.receive()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what(-1), err)
		}
		for _, r := range replies {
			i := int(r.Header.Seq - first)
			if i < 0 || i >= len(reqs) || answered[i] {
				continue
			}
			answered[i] = true
			left--
			if out[i], err = reply(r); err != nil {
				return nil, fmt.Errorf("%s: %w", what(i), err)
			}
		}
	}
	return out, nil
}

// elemReply reads the answer to one GETSETELEM: the element, or nil when there is none.
func elemReply(r syscall.NetlinkMessage) (*Elem, error) {
	switch r.Header.Type {
	case unix.NLMSG_ERROR:
		if err := errnoOf(r); err != nil && !errors.Is(err, unix.ENOENT) {
			return nil, err
		}
	case nftType(unix.NFT_MSG_NEWSETELEM):
		_, es, err := parseElems(r.Data)
		if err != nil || len(es) == 0 {
			return nil, err
		}
		return &es[0], nil
	}
	return nil, nil
}

// Dump runs one nf_tables dump request (typ is an NFT_MSG_GET*) and returns the replies' bodies,
// nfnetlink header included. A dump that a commit may have cut into is run again (see dumpOnce), after
// a short randomised pause that lets a burst of commits pass; after dumpAttempts it fails with CNI code
// 11, so the runtime retries the command. A missing table, chain or set reads as empty.
//
// What no check here catches: a commit that removes an element from the set while the kernel fills
// the last part of a listing and changes the generation only after the check (on 6.18, 2 listings of
// 531 under a tight loop of commits, against 83 of 889 with NLM_F_DUMP_INTR alone), and a transaction
// that has begun but not committed, or that the kernel aborted (a refused batch does not change the
// generation), which adds and removes elements for a moment. Such a listing repeats an element or
// skips one. Callers that act on a listing must tolerate that: netloom's backends delete only what
// they read, guarded, and retry when the transaction fails.
func (c *Conn) Dump(typ uint16, family byte, attrs []byte) ([][]byte, error) {
	return c.DumpFiltered(typ, family, attrs, nil)
}

// DumpFiltered is Dump keeping only the bodies that keep accepts (all when keep is nil). keep sees
// each body in the receive buffer, before it is copied: a caller looking for a few replies among
// thousands then copies only those (listing 1,000 rules to find one, copying them all cost 2 ms of
// allocation and page faults in a bridge DEL).
func (c *Conn) DumpFiltered(typ uint16, family byte, attrs []byte, keep func(body []byte) bool) ([][]byte, error) {
	for attempt := 1; ; attempt++ {
		out, interrupted, err := c.dumpOnce(typ, family, attrs, keep)
		if err != nil || !interrupted {
			return out, err
		}
		if attempt == dumpAttempts {
			return nil, conf.TryAgain("nf_tables dump interrupted %d times by concurrent changes; try again", dumpAttempts)
		}
		time.Sleep(time.Duration(attempt) * time.Duration(200+rand.IntN(800)) * time.Microsecond)
	}
}

// dumpOnce runs a dump. interrupted says that a commit may have changed the ruleset while the kernel
// filled it: the kernel set NLM_F_DUMP_INTR, or the replies carry more than one generation, or the
// generation is another one right after the dump. The kernel does not flag a set element dump, whose
// later parts then skip or repeat elements (it resumes by counting elements); every nf_tables reply
// carries the low 16 bits of the ruleset generation in its nfnetlink header (res_id), and a commit
// that lands while the kernel fills the last part shows in the generation asked for after it.
func (c *Conn) dumpOnce(typ uint16, family byte, attrs []byte, keep func([]byte) bool) (out [][]byte, interrupted bool, err error) {
	out, gen, interrupted, err := c.dumpParts(typ, family, attrs, keep)
	if err != nil || interrupted || gen < 0 {
		return out, interrupted, err
	}
	now, err := c.Generation()
	if err != nil {
		return nil, false, err
	}
	return out, int(now&0xffff) != gen, nil
}

// dumpParts reads the replies of one dump and the generation they were made in (-1: no reply had one),
// keeping the bodies keep accepts (all when it is nil).
func (c *Conn) dumpParts(typ uint16, family byte, attrs []byte, keep func([]byte) bool) (out [][]byte, gen int, interrupted bool, err error) {
	seq := c.reserve(1)
	if err := c.send(appendMsg(nil, nftType(typ), unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq, family, 0, attrs)); err != nil {
		return nil, -1, false, fmt.Errorf("send nf_tables dump: %w", err)
	}
	gen = -1
	for {
		replies, err := c.receive()
		if err != nil {
			return nil, -1, false, err
		}
		for _, r := range replies {
			if r.Header.Seq != seq {
				continue
			}
			interrupted = interrupted || r.Header.Flags&unix.NLM_F_DUMP_INTR != 0
			if g, ok := generation(r); ok {
				interrupted = interrupted || (gen >= 0 && g != gen)
				gen = g
			}
			switch r.Header.Type {
			case unix.NLMSG_DONE, unix.NLMSG_ERROR:
				err := errnoOf(r)
				if errors.Is(err, unix.ENOENT) {
					return nil, -1, false, nil
				}
				return out, gen, interrupted, err
			default:
				// r.Data is in c.buf, which the next receive overwrites.
				if keep == nil || keep(r.Data) {
					out = append(out, bytes.Clone(r.Data))
				}
			}
		}
	}
}

// generation is the ruleset generation a dump reply was made in (its low 16 bits), from its nfnetlink
// header; NLMSG_DONE and NLMSG_ERROR have none.
func generation(r syscall.NetlinkMessage) (int, bool) {
	if r.Header.Type == unix.NLMSG_DONE || r.Header.Type == unix.NLMSG_ERROR || len(r.Data) < nfgenmsgLen {
		return 0, false
	}
	return int(binary.BigEndian.Uint16(r.Data[2:4])), true
}

// Generation returns the ruleset generation: every commit in the namespace changes it.
func (c *Conn) Generation() (uint32, error) {
	seq := c.reserve(1)
	if err := c.send(appendMsg(nil, nftType(unix.NFT_MSG_GETGEN), unix.NLM_F_REQUEST, seq, unix.AF_UNSPEC, 0, nil)); err != nil {
		return 0, fmt.Errorf("send nf_tables generation request: %w", err)
	}
	for {
		replies, err := c.receive()
		if err != nil {
			return 0, err
		}
		for _, r := range replies {
			if r.Header.Seq != seq {
				continue
			}
			if r.Header.Type == unix.NLMSG_ERROR {
				return 0, fmt.Errorf("nf_tables generation: %w", errnoOf(r))
			}
			return parseGeneration(r.Data)
		}
	}
}
