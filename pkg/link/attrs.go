package link

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Attrs is the part of a link's state that a meta plugin (tuning) may change on an existing interface
// and must be able to put back: read it with AttrsOf, change it with the Set functions.
type Attrs struct {
	MAC      net.HardwareAddr
	MTU      int
	Promisc  bool
	Allmulti bool
	TxQLen   int
}

// AttrsOf returns l's tunable attributes as netlink last reported them.
func AttrsOf(l netlink.Link) Attrs {
	a := l.Attrs()
	return Attrs{
		MAC:      a.HardwareAddr,
		MTU:      a.MTU,
		Promisc:  a.Promisc != 0 || a.RawFlags&unix.IFF_PROMISC != 0,
		Allmulti: a.RawFlags&unix.IFF_ALLMULTI != 0,
		TxQLen:   a.TxQLen,
	}
}

// SetMAC gives l the hardware address mac.
func SetMAC(l netlink.Link, mac net.HardwareAddr) error {
	if err := netlink.LinkSetHardwareAddr(l, mac); err != nil {
		return fmt.Errorf("set MAC of %q to %s: %w", l.Attrs().Name, mac, err)
	}
	return nil
}

// SetMTU sets l's MTU.
func SetMTU(l netlink.Link, mtu int) error {
	if err := netlink.LinkSetMTU(l, mtu); err != nil {
		return fmt.Errorf("set MTU of %q to %d: %w", l.Attrs().Name, mtu, err)
	}
	return nil
}

// SetPromisc turns l's promiscuous mode on or off.
func SetPromisc(l netlink.Link, on bool) error {
	var err error
	if on {
		err = netlink.SetPromiscOn(l)
	} else {
		err = netlink.SetPromiscOff(l)
	}
	if err != nil {
		return fmt.Errorf("set promiscuous mode of %q %s: %w", l.Attrs().Name, onOff(on), err)
	}
	return nil
}

// SetAllmulti turns l's all-multicast mode on or off.
func SetAllmulti(l netlink.Link, on bool) error {
	var err error
	if on {
		err = netlink.LinkSetAllmulticastOn(l)
	} else {
		err = netlink.LinkSetAllmulticastOff(l)
	}
	if err != nil {
		return fmt.Errorf("set all-multicast mode of %q %s: %w", l.Attrs().Name, onOff(on), err)
	}
	return nil
}

// SetTxQLen sets the length of l's transmit queue.
func SetTxQLen(l netlink.Link, qlen int) error {
	if err := netlink.LinkSetTxQLen(l, qlen); err != nil {
		return fmt.Errorf("set transmit queue length of %q to %d: %w", l.Attrs().Name, qlen, err)
	}
	return nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
