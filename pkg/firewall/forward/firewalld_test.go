package forward

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/netloom/netloom/pkg/conf"
)

// firewalldException is an error as godbus returns firewalld's exceptions.
func firewalldException(text string) error {
	return dbus.NewError("org.fedoraproject.FirewallD1.Exception", []any{text})
}

// What firewalld's refusals become: an unknown zone is the configuration's fault (code 7, naming
// firewalldZone and the zone); anything else keeps firewalld's text with the address and the zone.
func TestFirewalldCallError(t *testing.T) {
	f := &Firewalld{zone: "blue"}
	a := netip.MustParseAddr("10.1.2.3")
	for _, tc := range []struct {
		name string
		err  error
		code uint
		want []string
	}{
		{"unknown zone", firewalldException("INVALID_ZONE: blue"), conf.CodeInvalidConfig, []string{"firewalldZone", `"blue"`, "INVALID_ZONE"}},
		{"other", firewalldException("INVALID_ADDR: 10.1.2.3/32"), 0, []string{`addSource("blue", "10.1.2.3/32")`, "INVALID_ADDR"}},
		{"bus", errors.New("connection closed"), 0, []string{"connection closed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := f.callError("addSource", a, tc.err)
			if got := conf.Code(err); got != tc.code {
				t.Errorf("code %d, want %d: %v", got, tc.code, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
		})
	}
	if !isFirewalldError(firewalldException("ZONE_ALREADY_SET: 10.1.2.3/32"), errZoneAlreadySet) || isFirewalldError(nil, errZoneAlreadySet) {
		t.Error("isFirewalldError")
	}
}
