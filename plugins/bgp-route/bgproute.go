package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/netloom/netloom/pkg/bgp"
	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/plugin"
)

// callTimeout bounds each conversation with the speaker: a kubelet must not hang on a stuck daemon.
const callTimeout = 5 * time.Second

func open(n *NetConf) (*bgp.Client, context.Context, context.CancelFunc, error) {
	c, err := bgp.Dial(n.Speaker)
	if err != nil {
		return nil, nil, nil, conf.Invalid("speaker", "%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	return c, ctx, cancel, nil
}

// speakerErr turns an unreachable speaker into code 11 (try again later) for ADD.
func speakerErr(n *NetConf, err error) error {
	if errors.Is(err, bgp.ErrUnreachable) {
		return conf.TryAgain("speaker %s is not reachable (%v); is netloomd running? Retry when it is", n.Speaker, err)
	}
	return fmt.Errorf("speaker %s: %w", n.Speaker, err)
}

func store(n *NetConf, args *skel.CmdArgs) (*bgp.Store, error) {
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
func cmdAdd(args *skel.CmdArgs) error {
	n, err := parseConfig(args.StdinData)
	if err != nil {
		return err
	}
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
	c, ctx, cancel, err := open(n)
	if err != nil {
		return err
	}
	defer cancel()
	defer c.Close()
	if err := c.Ping(ctx); err != nil {
		return speakerErr(n, err)
	}
	var done []bgp.Announcement
	ok := false
	defer func() {
		if ok {
			return
		}
		for _, a := range done {
			logErr("rollback: withdraw "+a.String(), c.Withdraw(context.Background(), a))
		}
	}()
	for _, a := range anns {
		if err := c.Announce(ctx, a); err != nil {
			return speakerErr(n, fmt.Errorf("announce %s: %w", a, err))
		}
		// The node's pod CIDR outlives this pod: it is not withdrawn on failure, nor recorded.
		if n.Announce == announcePod {
			done = append(done, a)
		}
	}
	if n.Announce == announcePod {
		if err := st.Write(bgp.Record{Speaker: n.Speaker, ContainerID: args.ContainerID, IfName: args.IfName, Announcements: anns}); err != nil {
			return err
		}
	}
	ok = true
	return plugin.PrintResult(n.prev, n.CNIVersion)
}

// DEL withdraws what ADD recorded (or, without a record, the prevResult's pod addresses) and forgets it.
// A speaker that is gone took its paths along: DEL then only removes the record and succeeds. In node
// mode the pod CIDR stays announced for the node's other pods.
func cmdDel(args *skel.CmdArgs) error {
	n, err := parseConfig(args.StdinData)
	if err != nil {
		return err
	}
	st, err := store(n, args)
	if err != nil {
		return err
	}
	if n.Announce == announceNode {
		return st.Remove(args.ContainerID, args.IfName)
	}
	rec, found, err := st.Read(args.ContainerID, args.IfName)
	if err != nil {
		logErr("read record", err)
	}
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
	c, ctx, cancel, err := open(n)
	if err != nil {
		logErr("withdraw", err)
		return
	}
	defer cancel()
	defer c.Close()
	for _, a := range anns {
		if err := c.Withdraw(ctx, a); err != nil {
			logErr("withdraw "+a.String(), err)
			if errors.Is(err, bgp.ErrUnreachable) {
				return
			}
		}
	}
}

// CHECK verifies that every recorded path (pod mode) or the pod CIDR (node mode) is in the speaker's
// RIB as a path it originates.
func cmdCheck(args *skel.CmdArgs) error {
	n, err := parseConfig(args.StdinData)
	if err != nil {
		return err
	}
	if n.prev == nil { // parseConfig has parsed it already
		return conf.Invalid("prevResult", "CHECK needs the result of the ADD; the runtime must pass it")
	}
	anns, err := n.announcements(n.prev)
	if err != nil {
		return err
	}
	c, ctx, cancel, err := open(n)
	if err != nil {
		return err
	}
	defer cancel()
	defer c.Close()
	for _, a := range anns {
		have, err := c.Originated(ctx, a.Prefix)
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
func cmdGC(args *skel.CmdArgs) error {
	n, err := parseConfig(args.StdinData)
	if err != nil {
		return err
	}
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
		logErr("GC", e)
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
func cmdStatus(args *skel.CmdArgs) error {
	n, err := parseConfig(args.StdinData)
	if err != nil {
		return err
	}
	c, ctx, cancel, err := open(n)
	if err != nil {
		return err
	}
	defer cancel()
	defer c.Close()
	if err := c.Ping(ctx); err != nil {
		return conf.NotAvailable("speaker %s: %v; ADDs fail until it answers", n.Speaker, err)
	}
	return nil
}

func logErr(what string, err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "netloom bgp-route: %s: %v\n", what, err)
	}
}
