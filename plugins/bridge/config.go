package main

import (
	"fmt"
	"net"
	"slices"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/firewall/ipmasq"
	"github.com/netloom/netloom/pkg/link"
	"github.com/netloom/netloom/pkg/plugin"
)

const (
	defaultBridge = "cni0"
	maxVlanID     = 4094
)

// NetConf is the bridge plugin's configuration: every key of the reference bridge plugin.
type NetConf struct {
	types.NetConf
	Bridge                    string      `json:"bridge"`
	IsGateway                 bool        `json:"isGateway"`
	IsDefaultGateway          bool        `json:"isDefaultGateway"`
	ForceAddress              bool        `json:"forceAddress"`
	IPMasq                    bool        `json:"ipMasq"`
	IPMasqBackend             *string     `json:"ipMasqBackend,omitempty"`
	MTU                       int         `json:"mtu"`
	HairpinMode               bool        `json:"hairpinMode"`
	PromiscMode               bool        `json:"promiscMode"`
	Vlan                      int         `json:"vlan"`
	VlanTrunk                 []VlanTrunk `json:"vlanTrunk,omitempty"`
	PreserveDefaultVlan       bool        `json:"preserveDefaultVlan"`
	MacSpoofChk               bool        `json:"macspoofchk,omitempty"`
	EnableDad                 bool        `json:"enabledad,omitempty"`
	DisableContainerInterface bool        `json:"disableContainerInterface,omitempty"`
	PortIsolation             bool        `json:"portIsolation,omitempty"`

	Args struct {
		CNI struct {
			MAC string `json:"mac,omitempty"`
		} `json:"cni"`
	} `json:"args"`
	RuntimeConfig struct {
		MAC string `json:"mac,omitempty"`
	} `json:"runtimeConfig"`

	// Derived during validation.
	mac    net.HardwareAddr
	trunk  []int
	hasL3  bool
	masqBE string
}

// VlanTrunk is one entry of "vlanTrunk": a single id, or a minID..maxID range.
type VlanTrunk struct {
	MinID *int `json:"minID,omitempty"`
	MaxID *int `json:"maxID,omitempty"`
	ID    *int `json:"id,omitempty"`
}

// parseArgs parses a command's configuration and CNI_ARGS.
func parseArgs(args *plugin.Args) (*NetConf, error) { return parseConfig(args.StdinData, args.Args) }

// parseConfig decodes and validates stdin; cniArgs is CNI_ARGS. Every error is a CNI error naming the
// key and saying what would be valid.
func parseConfig(stdin []byte, cniArgs string) (*NetConf, error) {
	return conf.Load(stdin, &NetConf{Bridge: defaultBridge}, func(n *NetConf) error { return n.validate(cniArgs) })
}

func (n *NetConf) validate(cniArgs string) error {
	if err := conf.ValidateIfName("bridge", n.Bridge); err != nil {
		return err
	}
	if err := conf.CheckMTU(n.MTU, "the kernel default"); err != nil {
		return err
	}
	if n.Vlan < 0 || n.Vlan > maxVlanID {
		return conf.Invalid("vlan", "%d is out of range; use 1..%d, or 0 for no VLAN", n.Vlan, maxVlanID)
	}
	trunk, err := trunkVlans(n.VlanTrunk)
	if err != nil {
		return err
	}
	n.trunk = trunk
	if n.HairpinMode && n.PromiscMode {
		return conf.Invalid("hairpinMode", "cannot be combined with \"promiscMode\"; a promiscuous bridge already delivers a pod's packets back to it")
	}
	n.hasL3 = n.IPAM.Type != ""
	if n.hasL3 && n.DisableContainerInterface {
		return conf.Invalid("disableContainerInterface", "cannot be used with an \"ipam\" section: addresses need the container interface up")
	}
	if n.masqBE, err = ipmasq.Backend(n.IPMasqBackend); err != nil {
		return err
	}
	if n.IsDefaultGateway {
		n.IsGateway = true
	}
	if n.IsGateway && n.Vlan != 0 {
		if gw := link.VlanGatewayName(n.Bridge, n.Vlan); len(gw) > conf.MaxIfNameLen {
			return conf.Invalid("bridge", "with \"vlan\": %d the gateway interface would be %q, over the kernel's %d bytes; use a bridge name of at most %d bytes",
				n.Vlan, gw, conf.MaxIfNameLen, conf.MaxIfNameLen-(len(gw)-len(n.Bridge)))
		}
	}
	return n.pickMAC(cniArgs)
}

// pickMAC applies the reference's precedence: CNI_ARGS MAC, then args.cni.mac, then runtimeConfig.mac.
func (n *NetConf) pickMAC(cniArgs string) error {
	fromArgs, _ := conf.CNIArg(cniArgs, "MAC")
	mac, err := conf.PickMAC(
		conf.MACSource{Field: "CNI_ARGS MAC", Value: fromArgs},
		conf.MACSource{Field: "args.cni.mac", Value: n.Args.CNI.MAC},
		conf.MACSource{Field: "runtimeConfig.mac", Value: n.RuntimeConfig.MAC},
	)
	n.mac = mac
	return err
}

// trunkVlans expands "vlanTrunk" into a sorted set of VLAN ids.
func trunkVlans(entries []VlanTrunk) ([]int, error) {
	set := map[int]bool{}
	for i, e := range entries {
		field := fmt.Sprintf("vlanTrunk[%d]", i)
		switch {
		case e.MinID != nil && e.MaxID != nil:
			lo, hi := *e.MinID, *e.MaxID
			if lo < 1 || lo > maxVlanID {
				return nil, conf.Invalid(field+".minID", "%d is out of range; use 1..%d", lo, maxVlanID)
			}
			if hi < 1 || hi > maxVlanID {
				return nil, conf.Invalid(field+".maxID", "%d is out of range; use 1..%d", hi, maxVlanID)
			}
			if hi < lo {
				return nil, conf.Invalid(field, "minID %d is greater than maxID %d", lo, hi)
			}
			for v := lo; v <= hi; v++ {
				set[v] = true
			}
		case e.MinID != nil || e.MaxID != nil:
			return nil, conf.Invalid(field, "minID and maxID go together; give both, or use \"id\" for one VLAN")
		}
		if e.ID != nil {
			if *e.ID < 1 || *e.ID > maxVlanID {
				return nil, conf.Invalid(field+".id", "%d is out of range; use 1..%d", *e.ID, maxVlanID)
			}
			set[*e.ID] = true
		}
	}
	if len(set) == 0 {
		return nil, nil
	}
	out := make([]int, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	slices.Sort(out)
	return out, nil
}
