package doctor

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/netloom/netloom/pkg/sysctl"
)

// br_netfilter's switches: with one at 1, IP packets the bridge forwards between its ports (pod to pod
// on one bridge) pass the host's iptables FORWARD chain of that family as if routed.
const (
	bridgeNFCall4 = "net/bridge/bridge-nf-call-iptables"
	bridgeNFCall6 = "net/bridge/bridge-nf-call-ip6tables"
)

func checkBrNetfilter(n *Node) []Finding {
	nets := infos(n)
	if !anyBridge(nets) {
		return []Finding{{Status: OK, Found: "no bridge network"}}
	}
	gates, err := n.gates()
	if err != nil {
		return []Finding{{Status: Unknown, Found: "cannot read the firewall: " + oneLine(err.Error()), Fix: "run netloom doctor as root"}}
	}
	return brNetfilterFindings(nets, gates, sysctl.Get)
}

func anyBridge(nets []netInfo) bool {
	for _, in := range nets {
		if len(in.Bridges) > 0 {
			return true
		}
	}
	return false
}

// brNetfilterFindings says, per bridge network and family, whether same-bridge pod traffic passes the
// host firewall, and fails when a gate then drops it: pods on one bridge cannot talk to each other.
func brNetfilterFindings(nets []netInfo, gates []gate, get sysctlGet) []Finding {
	var out []Finding
	for _, in := range nets {
		if len(in.Bridges) == 0 {
			continue
		}
		for _, p := range in.Prefixes {
			key := bridgeNFCall4
			if p.Addr().Is6() {
				key = bridgeNFCall6
			}
			out = append(out, brNetfilterFinding(in, p, key, gates, get))
		}
	}
	if len(out) == 0 {
		out = append(out, Finding{Status: OK, Found: "no bridge network with a pod subnet"})
	}
	return out
}

func brNetfilterFinding(in netInfo, p netip.Prefix, key string, gates []gate, get sysctlGet) Finding {
	dotted := strings.ReplaceAll(key, "/", ".")
	br := in.Bridges[0]
	f := Finding{Subject: fmt.Sprintf("%s: bridge %s, %s", in.Name, br, p), Status: OK}
	v, err := get(key)
	switch {
	case err != nil:
		f.Found = "br_netfilter is not loaded: traffic between pods of one bridge does not pass the host firewall"
		return f
	case v == "0":
		f.Found = dotted + "=0: traffic between pods of one bridge does not pass the host firewall"
		return f
	}
	for _, g := range gates {
		if g.DropBy == "" || (p.Addr().Is4() && !g.Fam4) || (p.Addr().Is6() && !g.Fam6) {
			continue
		}
		if _, ok := g.accepts(p, br); ok {
			continue
		}
		f.Status = Fail
		f.Found = fmt.Sprintf("%s=1: packets between pods of %s pass %s, which drops them, and no rule accepts %s before: pods on this bridge cannot talk to each other",
			dotted, br, g.dropping(), p)
		f.Fix = fmt.Sprintf("sysctl -w %s=0 (if nothing on the node needs it; else accept the pods: %s)", dotted, g.fix(p))
		return f
	}
	f.Found = fmt.Sprintf("%s=1: packets between pods of %s pass the host's FORWARD chain, which lets them through", dotted, br)
	return f
}
