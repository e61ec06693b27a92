package main

import (
	"net/netip"
	"testing"

	"github.com/netloom/netloom/internal/fuzzseed"

	"github.com/netloom/netloom/pkg/conf"
)

func FuzzParseConfig(f *testing.F) {
	// host-local is the ipam of the configuration it is called with, so every example is its input.
	for _, ex := range fuzzseed.Examples(f, "../../conflist-examples") {
		f.Add(ex, "")
		f.Add(ex, "IgnoreUnknown=1;IP=10.88.0.20")
	}
	const head = `"cniVersion":"1.1.0","name":"n","type":"bridge"`
	for _, s := range []string{
		`{` + head + `,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.10.0.0/16","rangeStart":"10.10.1.20","rangeEnd":"10.10.3.50","gateway":"10.10.0.254"}]]}}`,
		`{` + head + `,"runtimeConfig":{"ipRanges":[[{"subnet":"10.3.0.0/24"}]],"ips":["10.3.0.9"]},"ipam":{"subnet":"10.1.0.0/24","ranges":[[{"subnet":"10.2.0.0/24"}]],"dataDir":"/d"}}`,
		`{` + head + `,"ipam":{"ranges":[[{"subnet":"10.0.0.0/30"}],[{"subnet":"fd00::/126"}]],"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0","gw":"fd00::1"},{"dst":"192.168.0.0/16","gw":"10.0.0.1","mtu":1400,"table":100,"scope":0}]}}`,
		`{` + head + `,"args":{"cni":{"ips":["10.0.0.2","fd00::2"]}},"ipam":{"ranges":[[{"subnet":"10.0.0.0/24"},{"subnet":"10.0.1.0/24"}],[{"subnet":"fd00::/64"}]]}}`,
		`{"cniVersion":"0.2.0","name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.1.0.0/24"}]]}}`,
		`{` + head + `,"ipam":{"ranges":[[{"subnet":"::ffff:10.0.0.0/120"}]]}}`,
		`{` + head + `,"ipam":{"ranges":[[{"subnet":"10.0.0.0/24","gateway":"10.0.0.1/24","rangeEnd":"10.0.0.1"}]]}}`,
	} {
		f.Add([]byte(s), "IP=10.0.0.2,fd00::2")
	}
	// Found by hand while writing this target: an IPv4-mapped route prefix became a default route.
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}]],"routes":[{"dst":"::ffff:10.0.0.0/90"}]}}`), "")
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}]],"routes":[{"dst":"::ffff:10.0.0.0/104"}]}}`), "")
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		c, err := parseConfig(stdin, cniArgs)
		if err != nil {
			fuzzseed.RequireCNIError(t, err)
			return
		}
		if err := conf.ValidateFileComponent("name", c.Name); err != nil {
			t.Fatalf("accepted network name %q: %v", c.Name, err)
		}
		if c.DataDir == "" || len(c.Sets) == 0 || len(c.SetFields) != len(c.Sets) || len(c.Requested) != len(c.Sets) {
			t.Fatalf("dataDir %q, %d sets, %d set fields, %d requested", c.DataDir, len(c.Sets), len(c.SetFields), len(c.Requested))
		}
		var all []struct{ si, ri int }
		for si, set := range c.Sets {
			if len(set) == 0 {
				t.Fatalf("%s is empty", c.SetFields[si])
			}
			for ri, r := range set {
				if !r.Subnet.IsValid() || r.Subnet != r.Subnet.Masked() || r.Subnet.Addr().Is4In6() {
					t.Fatalf("%s: subnet %s", c.SetFields[si], r.Subnet)
				}
				if r.Start.BitLen() != set[0].Start.BitLen() {
					t.Fatalf("%s mixes address families", c.SetFields[si])
				}
				for _, a := range []netip.Addr{r.Start, r.End, r.Gateway} {
					if !r.Subnet.Contains(a) {
						t.Fatalf("%s: %s is outside %s", c.SetFields[si], a, r.Subnet)
					}
				}
				if r.Start.Compare(r.End) > 0 {
					t.Fatalf("%s: start %s after end %s", c.SetFields[si], r.Start, r.End)
				}
				for _, o := range all {
					if r.Overlaps(c.Sets[o.si][o.ri]) {
						t.Fatalf("%s overlaps %s", r, c.Sets[o.si][o.ri])
					}
				}
				all = append(all, struct{ si, ri int }{si, ri})
			}
			_ = set.Size()
			_ = set.String()
			// Nothing leased: allocation must find an address of the set that is not a gateway.
			a, ri, ok := set.Pick(netip.Addr{}, func(netip.Addr) bool { return false })
			if ok && (!set[ri].Contains(a) || a == set[ri].Gateway) {
				t.Fatalf("Pick on %s gave %s (range %d)", set, a, ri)
			}
			if !ok && set.Size() != 0 {
				t.Fatalf("Pick on %s found nothing, but the set has %d addresses", set, set.Size())
			}
			if req := c.Requested[si]; req.Addr.IsValid() {
				ri, in := set.RangeFor(req.Addr)
				if !in || set[ri].Gateway == req.Addr || req.Field == "" {
					t.Fatalf("requested %s (%s) is not a free address of %s", req.Addr, req.Field, c.SetFields[si])
				}
			}
		}
		for i, r := range c.Routes {
			if r == nil || r.Dst.IP == nil || r.Dst.Mask == nil {
				t.Fatalf("routes[%d] = %+v", i, r)
			}
			// A mask of another length than the address makes net.IPNet print (and the result carry) another
			// prefix than the one configured.
			if _, bits := r.Dst.Mask.Size(); bits != 8*len(r.Dst.IP) {
				t.Fatalf("routes[%d]: dst %s is a %d-byte address with a %d-bit mask", i, r.Dst.String(), len(r.Dst.IP), bits)
			}
			if r.GW != nil && (r.GW.To4() != nil) != (r.Dst.IP.To4() != nil) {
				t.Fatalf("routes[%d]: gw %s and dst %s differ in family", i, r.GW, r.Dst.IP)
			}
		}
	})
}
