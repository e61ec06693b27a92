package doctor

import (
	"fmt"
	"strings"

	"github.com/netloom/netloom/pkg/cnicache"
	"github.com/netloom/netloom/pkg/sysctl"
)

// Forwarding switches, per family, as sysctl keys of pkg/sysctl.
const (
	ipv4Forward = "net/ipv4/ip_forward"
	ipv6Forward = "net/ipv6/conf/all/forwarding"
)

// sysctlGet reads a kernel parameter; the checks take it as an argument so tests give them a table.
type sysctlGet func(key string) (string, error)

func checkForwarding(n *Node) []Finding {
	atts, err := cnicache.Read(n.cacheDir())
	if err != nil {
		return []Finding{{Status: Unknown, Found: "cannot read the result cache: " + err.Error()}}
	}
	return forwardingFindings(infos(n), sysctl.Get, networksWithPods(atts))
}

// networksWithPods names the networks that have an attachment in the result cache.
func networksWithPods(atts []cnicache.Entry) map[string]bool {
	m := map[string]bool{}
	for _, a := range atts {
		m[a.NetworkName] = true
	}
	return m
}

// forwardingFindings checks the forwarding switch of every family a routed network's pods use: with it
// off the node drops whatever its pods send off the node (and, routed per pod as ptp does, to each
// other). netloom's bridge (as gateway), ptp and overlays turn it on at every ADD, so it is off only
// when something turned it off since: it breaks the pods running (live networks), while a network
// without pods gets it back with its first ADD.
func forwardingFindings(nets []netInfo, get sysctlGet, live map[string]bool) []Finding {
	var v4, v6 []string
	for _, in := range nets {
		if !in.Routed {
			continue
		}
		a, b := in.families()
		if a {
			v4 = append(v4, in.Name)
		}
		if b {
			v6 = append(v6, in.Name)
		}
	}
	var out []Finding
	for _, fam := range []struct {
		key  string
		nets []string
	}{{ipv4Forward, v4}, {ipv6Forward, v6}} {
		if len(fam.nets) == 0 {
			continue
		}
		out = append(out, forwardingFinding(fam.key, fam.nets, get, live))
	}
	if len(out) == 0 {
		out = append(out, Finding{Status: OK, Found: "no routed network (bridge, ptp, overlay) with a pod subnet"})
	}
	return out
}

func forwardingFinding(key string, nets []string, get sysctlGet, live map[string]bool) Finding {
	dotted := strings.ReplaceAll(key, "/", ".")
	f := Finding{Subject: dotted, Status: OK}
	v, err := get(key)
	switch {
	case err != nil:
		f.Status = Unknown
		f.Found = fmt.Sprintf("cannot read it (%v), needed by %s", err, strings.Join(nets, ", "))
		if key == ipv6Forward {
			f.Status = Fail
			f.Found = fmt.Sprintf("IPv6 is off on this node (%v), but %s give pods IPv6 addresses", err, strings.Join(nets, ", "))
			f.Fix = "enable IPv6 (ipv6.disable=0 on the kernel command line) or remove the IPv6 ranges"
		}
	case v == "0":
		f.Fix = fmt.Sprintf("sysctl -w %s=1 (and persist it in /etc/sysctl.d)", dotted)
		var running []string
		for _, n := range nets {
			if live[n] {
				running = append(running, n)
			}
		}
		if len(running) == 0 {
			f.Status = Warn
			f.Found = fmt.Sprintf("is 0; no pod of %s runs yet, and the first ADD turns it on", strings.Join(nets, ", "))
			break
		}
		f.Status = Fail
		f.Found = fmt.Sprintf("is 0: the node does not forward the packets of the pods of %s", strings.Join(running, ", "))
	default:
		f.Found = fmt.Sprintf("is %s, as %s needs", v, strings.Join(nets, ", "))
	}
	return f
}
