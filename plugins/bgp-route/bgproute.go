package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/netloom/netloom/pkg/bgp"
	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/plugin"
)

// callTimeout bounds each call to the speaker, rollback withdraws included: a kubelet must not hang on a
// stuck daemon.
const callTimeout = 5 * time.Second

// speaker is a connection to the configured speaker whose every call is bounded by callTimeout.
type speaker struct {
	addr string
	c    *bgp.Client
}

func dial(addr string) (*speaker, error) {
	c, err := bgp.Dial(addr)
	if err != nil {
		return nil, conf.Invalid("speaker", "%v", err)
	}
	return &speaker{addr: addr, c: c}, nil
}

func (s *speaker) Close() error { return s.c.Close() }

// call runs f with a context that ends after callTimeout.
func (s *speaker) call(f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return f(ctx)
}

func (s *speaker) ping() error {
	return s.call(func(ctx context.Context) error { return s.c.Ping(ctx) })
}

func (s *speaker) announce(a bgp.Announcement) error {
	return s.call(func(ctx context.Context) error { return s.c.Announce(ctx, a) })
}

func (s *speaker) withdraw(a bgp.Announcement) error {
	return s.call(func(ctx context.Context) error { return s.c.Withdraw(ctx, a) })
}

// tryAgain turns an unreachable speaker into code 11 (try again later) for ADD.
func (s *speaker) tryAgain(err error) error {
	if errors.Is(err, bgp.ErrUnreachable) {
		return conf.TryAgain("speaker %s is not reachable (%v); is netloomd running? Retry when it is", s.addr, err)
	}
	return fmt.Errorf("speaker %s: %w", s.addr, err)
}

func store(n *NetConf, args *plugin.Args) (*bgp.Store, error) {
	if err := conf.ValidateFileComponent("CNI_CONTAINERID", args.ContainerID); err != nil {
		return nil, err
	}
	if err := conf.ValidateFileComponent("CNI_IFNAME", args.IfName); err != nil {
		return nil, err
	}
	return bgp.OpenStore(n.StateDir, n.Name)
}

// ADD announces the pod's addresses (or the node's pod CIDR) and records them, so DEL, GC and a
// restarted netloomd know what this attachment owns. A failure withdraws what it announced.
func cmdAdd(n *NetConf, args *plugin.Args) error {
	if n.prev == nil {
		return conf.Invalid("prevResult", "is missing; bgp-route is chained after an attachment plugin (bridge, an overlay) in a conflist")
	}
	anns, err := n.announcements(n.prev)
	if err != nil {
		return err
	}
	st, err := store(n, args)
	if err != nil {
		return err
	}
	sp, err := dial(n.Speaker)
	if err != nil {
		return err
	}
	defer sp.Close()
	var add plugin.Add
	err = add.Run(
		plugin.Do("connect", func() error {
			if err := sp.ping(); err != nil {
				return sp.tryAgain(err)
			}
			return nil
		}),
		// The record comes before the announcements: an ADD that dies while announcing leaves a record
		// that the runtime's DEL (or GC) finds and withdraws; the other way round, a path announced and not
		// yet recorded would be announced for good.
		plugin.Do("record", func() error {
			if n.Announce != announcePod {
				return nil
			}
			if err := st.Write(bgp.Record{Speaker: n.Speaker, ContainerID: args.ContainerID, IfName: args.IfName, Announcements: anns}); err != nil {
				return err
			}
			add.OnFailure("remove record", func() error { return st.Remove(args.ContainerID, args.IfName) })
			return nil
		}),
		plugin.Do("announce", func() error {
			for _, a := range anns {
				if err := sp.announce(a); err != nil {
					return sp.tryAgain(fmt.Errorf("announce %s: %w", a, err))
				}
				// The node's pod CIDR outlives this pod: it is not withdrawn on failure, nor recorded.
				if n.Announce == announcePod {
					add.OnFailure("withdraw "+a.String(), func() error { return sp.withdraw(a) })
				}
			}
			return nil
		}),
	)
	if err != nil {
		return err
	}
	return plugin.PrintResult(n.prev, n.CNIVersion)
}

// DEL withdraws what ADD recorded (or, without a record, the prevResult's pod addresses) and forgets it.
// A speaker that is gone took its paths along: DEL then only removes the record and succeeds. In node
// mode the pod CIDR stays announced for the node's other pods.
func cmdDel(n *NetConf, args *plugin.Args) error {
	st, err := store(n, args)
	if err != nil {
		return err
	}
	if n.Announce == announceNode {
		return st.Remove(args.ContainerID, args.IfName)
	}
	rec, found, err := st.Read(args.ContainerID, args.IfName)
	plugin.LogError("read record", err)
	anns := rec.Announcements
	if !found && n.prev != nil {
		anns, _ = n.announcements(n.prev)
	}
	if len(anns) > 0 {
		withdraw(n, anns)
	}
	return st.Remove(args.ContainerID, args.IfName)
}

// withdraw withdraws anns, best effort: an unreachable speaker no longer holds them.
func withdraw(n *NetConf, anns []bgp.Announcement) {
	sp, err := dial(n.Speaker)
	if err != nil {
		plugin.LogError("withdraw", err)
		return
	}
	defer sp.Close()
	for _, a := range anns {
		if err := sp.withdraw(a); err != nil {
			plugin.LogError("withdraw "+a.String(), err)
			if errors.Is(err, bgp.ErrUnreachable) {
				return
			}
		}
	}
}

// CHECK verifies that every recorded path (pod mode) or the pod CIDR (node mode) is in the speaker's
// RIB as a path it originates.
func cmdCheck(n *NetConf, args *plugin.Args) error {
	if n.prev == nil { // parseConfig has parsed it already
		return conf.Invalid("prevResult", "CHECK needs the result of the ADD; the runtime must pass it")
	}
	anns, err := n.announcements(n.prev)
	if err != nil {
		return err
	}
	sp, err := dial(n.Speaker)
	if err != nil {
		return err
	}
	defer sp.Close()
	for _, a := range anns {
		var have bool
		err := sp.call(func(ctx context.Context) (err error) {
			have, err = sp.c.Originated(ctx, a.Prefix)
			return err
		})
		if err != nil {
			return fmt.Errorf("speaker %s: %w", n.Speaker, err)
		}
		if !have {
			return fmt.Errorf("%s is not announced by speaker %s", a.Prefix, n.Speaker)
		}
	}
	return nil
}

// GC withdraws and forgets the paths of every recorded attachment the runtime no longer lists.
func cmdGC(n *NetConf, args *plugin.Args) error {
	valid, err := plugin.ValidAttachments(args.StdinData)
	if err != nil {
		return err
	}
	st, err := bgp.OpenStore(n.StateDir, n.Name)
	if err != nil {
		return err
	}
	records, errs := st.All()
	for _, e := range errs {
		plugin.LogError("GC", e)
	}
	for _, r := range records {
		if valid[conf.Attachment{ContainerID: r.ContainerID, IfName: r.IfName}] {
			continue
		}
		withdraw(&NetConf{Speaker: r.Speaker}, r.Announcements)
		if err := st.Remove(r.ContainerID, r.IfName); err != nil {
			return err
		}
	}
	return nil
}

// STATUS fails with code 50 while the speaker does not answer.
func cmdStatus(n *NetConf, args *plugin.Args) error {
	sp, err := dial(n.Speaker)
	if err != nil {
		return err
	}
	defer sp.Close()
	if err := sp.ping(); err != nil {
		return conf.NotAvailable("speaker %s: %v; ADDs fail until it answers", n.Speaker, err)
	}
	return nil
}
