package forward

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/netloom/netloom/pkg/conf"
)

// firewalld's D-Bus names.
const (
	dbusName      = "org.freedesktop.DBus"
	dbusPath      = "/org/freedesktop/DBus"
	firewalldName = "org.fedoraproject.FirewallD1"
	firewalldPath = "/org/fedoraproject/FirewallD1"
	firewalldZone = "org.fedoraproject.FirewallD1.zone"
)

// The codes firewalld's exceptions start with ("INVALID_ZONE: blue") that the backend acts on: the
// source is in the zone already, and there is no such zone.
const (
	errZoneAlreadySet = "ZONE_ALREADY_SET"
	errInvalidZone    = "INVALID_ZONE"
)

// DefaultZone is the firewalld zone pod addresses go to unless "firewalldZone" says otherwise.
const DefaultZone = "trusted"

// Firewalld opens the firewall by adding each pod address (as a /32 or /128) as a source of a zone, as
// the reference's firewalld backend does.
type Firewalld struct {
	conn *dbus.Conn
	zone string
}

var _ Backend = (*Firewalld)(nil)

// DialFirewalld connects to firewalld over the system bus, for pod addresses to go to zone. When no firewalld answers there, the error
// has CNI code 50 (not available) and says which backend to pick instead.
func DialFirewalld(zone string) (*Firewalld, error) {
	conn, err := dbus.SystemBus()
	if err != nil {
		return nil, conf.NotAvailable("backend \"firewalld\": no D-Bus system bus (%v); is firewalld installed? On a node without it use \"backend\": \"iptables\" or \"nftables\"", err)
	}
	var owner string
	if err := conn.Object(dbusName, dbusPath).Call(dbusName+".GetNameOwner", 0, firewalldName).Store(&owner); err != nil {
		return nil, conf.NotAvailable("backend \"firewalld\": firewalld is not running on the system bus (%v); start it, or use \"backend\": \"iptables\" or \"nftables\"", err)
	}
	return &Firewalld{conn: conn, zone: zone}, nil
}

// FirewalldRunning tells whether firewalld answers on the system bus: the reference's test for making
// firewalld the default backend.
func FirewalldRunning() bool {
	_, err := DialFirewalld(DefaultZone)
	return err == nil
}

func (f *Firewalld) call(method string, a netip.Addr, out any) error {
	return f.conn.Object(firewalldName, firewalldPath).Call(firewalldZone+"."+method, 0, f.zone, HostPrefix(a)).Store(out)
}

// isFirewalldError tells whether err is firewalld's exception with code, matched as the reference does.
func isFirewalldError(err error, code string) bool {
	return err != nil && strings.Contains(err.Error(), code)
}

// callError is the error of the call of method about a, which firewalld answered with err: for a zone
// it does not know, a CNI error naming the key that chose the zone.
func (f *Firewalld) callError(method string, a netip.Addr, err error) error {
	if isFirewalldError(err, errInvalidZone) {
		return conf.Invalid("firewalldZone", "firewalld has no zone %q (%v); create it (firewall-cmd --permanent --new-zone=%s, then firewall-cmd --reload), or leave the key out for %q",
			f.zone, err, f.zone, DefaultZone)
	}
	return fmt.Errorf("firewalld: %s(%q, %q): %w", method, f.zone, HostPrefix(a), err)
}

// Open adds addrs to the zone. When one fails, the ones it added before are removed again (an address
// that was in the zone already stays).
func (f *Firewalld) Open(addrs []netip.Addr) error {
	var added []netip.Addr
	for _, a := range addrs {
		var res string
		err := f.call("addSource", a, &res)
		switch {
		case err == nil:
			added = append(added, a)
		case isFirewalldError(err, errZoneAlreadySet):
		default:
			_ = f.Close(added)
			return f.callError("addSource", a, err)
		}
	}
	return nil
}

// Close removes addrs from the zone; like the reference it ignores firewalld's answers (an address that is
// not in the zone any more is what DEL wants).
func (f *Firewalld) Close(addrs []netip.Addr) error {
	for _, a := range addrs {
		var res string
		_ = f.call("removeSource", a, &res)
	}
	return nil
}

// Check says which of addrs is not in the zone.
func (f *Firewalld) Check(addrs []netip.Addr) error {
	for _, a := range addrs {
		var in bool
		if err := f.call("querySource", a, &in); err != nil {
			return f.callError("querySource", a, err)
		}
		if !in {
			return fmt.Errorf("firewalld: %s is not a source of zone %q", HostPrefix(a), f.zone)
		}
	}
	return nil
}
