package doctor

import (
	"errors"
	"fmt"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"

	"github.com/netloom/netloom/pkg/cnicache"
	"github.com/netloom/netloom/pkg/link"
)

// bridgePort is what the hairpin check reads of a host interface.
type bridgePort struct {
	Bridge  string // "" when the interface is no bridge port
	Hairpin bool
}

// portReader reads one host interface; tests give a table.
type portReader func(name string) (bridgePort, error)

// errNoLink marks a host interface that no longer exists (an attachment whose pod is gone: netloom ls's
// business, not this check's).
var errNoLink = errors.New("no such link")

func checkHairpin(n *Node) []Finding {
	atts, err := cnicache.Read(n.cacheDir())
	if err != nil {
		return []Finding{{Status: Unknown, Found: "cannot read the result cache: " + err.Error()}}
	}
	return hairpinFindings(atts, infos(n), readBridgePort)
}

// hairpinFindings checks the bridge port of every attachment with hostPorts: without hairpin the bridge
// never sends a packet back out of the port it came in by, so a pod that connects to its own hostPort
// (or to a service that picks it) gets no answer.
func hairpinFindings(atts []cnicache.Entry, nets []netInfo, read portReader) []Finding {
	files := map[string]string{}
	for _, in := range nets {
		files[in.Name] = in.File
	}
	var out []Finding
	for _, a := range atts {
		if len(a.CapabilityArgs.PortMappings) == 0 {
			continue
		}
		for _, name := range a.HostInterfaces() {
			p, err := read(name)
			if errors.Is(err, errNoLink) {
				continue
			}
			subject := fmt.Sprintf("%s/%s/%s: %s", a.NetworkName, shortID(a.ContainerID), a.IfName, name)
			switch {
			case err != nil:
				out = append(out, Finding{Subject: subject, Status: Unknown, Found: err.Error()})
			case p.Bridge == "":
			case p.Hairpin:
				out = append(out, Finding{Subject: subject, Status: OK, Found: fmt.Sprintf("port of %s with hairpin on; the pod has %d hostPort(s)", p.Bridge, len(a.CapabilityArgs.PortMappings))})
			default:
				fix := fmt.Sprintf("bridge link set dev %s hairpin on", name)
				if f := files[a.NetworkName]; f != "" {
					fix += fmt.Sprintf(` (for new pods: "hairpinMode": true in %s)`, f)
				}
				out = append(out, Finding{Subject: subject, Status: Fail,
					Found: fmt.Sprintf("port of %s with hairpin off: the pod cannot reach itself through its %d hostPort(s)", p.Bridge, len(a.CapabilityArgs.PortMappings)),
					Fix:   fix})
			}
		}
	}
	if len(out) == 0 {
		out = append(out, Finding{Status: OK, Found: "no pod with hostPorts on a bridge"})
	}
	return out
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// readBridgePort reads whether name is a bridge port and its hairpin flag, in the calling thread's
// namespace.
func readBridgePort(name string) (bridgePort, error) {
	l, err := netlinksafe.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return bridgePort{}, errNoLink
		}
		return bridgePort{}, fmt.Errorf("link %s: %w", name, err)
	}
	if l.Attrs().MasterIndex == 0 {
		return bridgePort{}, nil
	}
	master, err := netlink.LinkByIndex(l.Attrs().MasterIndex)
	if err != nil {
		return bridgePort{}, fmt.Errorf("master of %s: %w", name, err)
	}
	if _, ok := master.(*netlink.Bridge); !ok {
		return bridgePort{}, nil
	}
	on, err := link.PortHairpin(l.Attrs().Index)
	if err != nil {
		return bridgePort{}, fmt.Errorf("hairpin of %s: %w", name, err)
	}
	return bridgePort{Bridge: master.Attrs().Name, Hairpin: on}, nil
}
