package doctor

import (
	"fmt"
	"net/netip"
	"strings"
)

func checkForwardPolicy(n *Node) []Finding {
	gates, err := n.gates()
	if err != nil {
		return []Finding{{Status: Unknown, Found: "cannot read the firewall: " + oneLine(err.Error()), Fix: "run netloom doctor as root"}}
	}
	return forwardPolicyFindings(infos(n), gates)
}

// forwardPolicyFindings checks that every gate that drops (by policy or by a final DROP or REJECT
// rule) accepts the pod prefixes of the routed networks first: the pods' packets to other nodes and, routed per pod, to each other pass FORWARD.
func forwardPolicyFindings(nets []netInfo, gates []gate) []Finding {
	var out []Finding
	for _, in := range nets {
		if !in.Routed {
			continue
		}
		for _, p := range in.Prefixes {
			out = append(out, prefixThroughGates(in, p, gates))
		}
	}
	if len(out) == 0 {
		out = append(out, Finding{Status: OK, Found: "no routed network (bridge, ptp, overlay) with a pod subnet"})
	}
	return out
}

func prefixThroughGates(in netInfo, p netip.Prefix, gates []gate) Finding {
	f := Finding{Subject: fmt.Sprintf("%s: %s", in.Name, p), Status: OK}
	var dropping, accepted []string
	for _, g := range gates {
		if g.DropBy == "" || (p.Addr().Is4() && !g.Fam4) || (p.Addr().Is6() && !g.Fam6) {
			continue
		}
		dev := firstOf(in.Bridges, in.Tunnels)
		if rule, ok := g.accepts(p, dev); ok {
			accepted = append(accepted, fmt.Sprintf("%s accepts it: %s", g.dropping(), rule))
			continue
		}
		dropping = append(dropping, g.dropping())
		if f.Fix == "" {
			f.Fix = g.fix(p)
		}
	}
	switch {
	case len(dropping) > 0:
		f.Status = Fail
		f.Found = fmt.Sprintf("%s drops forwarded packets and accepts nothing from or to %s before: its pods cannot reach beyond the node",
			strings.Join(dropping, " and "), p)
	case len(accepted) > 0:
		f.Found = strings.Join(accepted, "; ")
	default:
		f.Found = "no FORWARD chain or forward hook drops forwarded packets"
	}
	return f
}

// firstOf is the network's own device: its bridge, else its tunnel, else "".
func firstOf(lists ...[]string) string {
	for _, l := range lists {
		if len(l) > 0 {
			return l[0]
		}
	}
	return ""
}
