package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/plugin"
)

// defaultDataDir is where the reference tuning plugin keeps what DEL restores; netloom reads and writes
// the same files, so a pod tuned by either is restored by either.
const defaultDataDir = "/run/cni/tuning"

// NetConf is the tuning plugin's configuration: every key of the reference tuning plugin.
type NetConf struct {
	types.NetConf
	DataDir  string  `json:"dataDir,omitempty"`
	SysCtl   Sysctls `json:"sysctl"`
	MAC      string  `json:"mac,omitempty"`
	Promisc  bool    `json:"promisc,omitempty"`
	MTU      int     `json:"mtu,omitempty"`
	TxQLen   *int    `json:"txQLen,omitempty"`
	Allmulti *bool   `json:"allmulti,omitempty"`

	RuntimeConfig struct {
		MAC string `json:"mac,omitempty"`
	} `json:"runtimeConfig,omitempty"`
	Args *struct {
		CNI *CNIArgs `json:"cni"`
	} `json:"args"`

	// Derived during validation: what ADD applies and CHECK compares, every source merged.
	want settings
}

// CNIArgs is "args": {"cni": {...}}: per-attachment values that override the network's.
type CNIArgs struct {
	SysCtl   *Sysctls `json:"sysctl"`
	MAC      *string  `json:"mac,omitempty"`
	Promisc  *bool    `json:"promisc,omitempty"`
	MTU      *int     `json:"mtu,omitempty"`
	Allmulti *bool    `json:"allmulti,omitempty"`
	TxQLen   *int     `json:"txQLen,omitempty"`
}

// settings is what one attachment gets: the network's keys with CNI_ARGS, runtimeConfig and args.cni
// applied over them, in the reference's order of precedence.
type settings struct {
	sysctls  Sysctls
	mac      net.HardwareAddr // nil: unchanged
	promisc  bool             // false: unchanged (but CHECK wants it off)
	mtu      int              // 0: unchanged
	allmulti *bool
	txQLen   *int
}

// changesLink says whether ADD changes the interface itself, and so saves what DEL restores.
func (s settings) changesLink() bool {
	return s.mac != nil || s.promisc || s.mtu != 0 || s.allmulti != nil || s.txQLen != nil
}

// Sysctl is one "sysctl" entry: the key as written and its value.
type Sysctl struct{ Key, Value string }

// Sysctls is the "sysctl" object in the order written. A key given twice is refused, as the reference
// does: JSON decoding would otherwise silently keep one of the values.
type Sysctls []Sysctl

// UnmarshalJSON decodes an object of string values, keeping the order and refusing duplicate keys.
func (s *Sysctls) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*s = nil
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return conf.Invalid("sysctl", "want an object of sysctl names to string values, e.g. {\"net.ipv4.conf.IFNAME.arp_notify\": \"1\"}")
	}
	seen := map[string]bool{}
	out := Sysctls{}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return conf.Invalid("sysctl", "%v", err)
		}
		key := tok.(string) // an object's keys are strings, or Token fails
		var v any
		if err := d.Decode(&v); err != nil {
			return conf.Invalid("sysctl", "%v", err)
		}
		value, ok := v.(string)
		if !ok {
			return conf.Invalid(fmt.Sprintf("sysctl[%q]", key), "want a string (write \"1\", not 1), got %T", v)
		}
		if seen[key] {
			return conf.Invalid(fmt.Sprintf("sysctl[%q]", key), "given twice; duplicated sysctl keys are not allowed")
		}
		seen[key] = true
		out = append(out, Sysctl{Key: key, Value: value})
	}
	*s = out
	return nil
}

// set gives key the value v, in place when it is there already.
func (s Sysctls) set(key, v string) Sysctls {
	for i := range s {
		if s[i].Key == key {
			s[i].Value = v
			return s
		}
	}
	return append(s, Sysctl{Key: key, Value: v})
}

// sysctlPath turns a key as written into a path under /proc/sys (relative, '/'-separated), with
// "IFNAME" replaced by the attachment's interface name, and refuses one outside net/. As in the
// reference, dots separate the components ("net.ipv4.conf.IFNAME.arp_notify"); a key that uses '/'
// instead, as sysctl(8) allows, keeps its dots, so interface names like "eth0.100" can be named.
func sysctlPath(key, ifName string) (string, error) {
	p := key
	if !strings.Contains(p, "/") {
		p = strings.ReplaceAll(p, ".", "/")
	}
	p = strings.Replace(p, "IFNAME", ifName, 1)
	clean := filepath.Clean("/" + p)
	if !strings.HasPrefix(clean, "/net/") {
		return "", conf.Invalid(fmt.Sprintf("sysctl[%q]", key), "is not a network sysctl; only keys under net. are allowed (e.g. \"net.ipv4.conf.IFNAME.arp_notify\")")
	}
	return strings.TrimPrefix(clean, "/"), nil
}

// parseArgs parses a command's configuration with its CNI_ARGS.
func parseArgs(args *plugin.Args) (*NetConf, error) { return parseConfig(args.StdinData, args.Args) }

// parseConfig decodes and validates stdin and CNI_ARGS. Every error is a CNI error naming the key and
// saying what would be valid.
func parseConfig(stdin []byte, cniArgs string) (*NetConf, error) {
	return conf.Load(stdin, &NetConf{}, func(n *NetConf) error { return n.validate(cniArgs) })
}

// validate merges the sources of each setting, lowest precedence first as the reference does: the
// network's keys, CNI_ARGS MAC, runtimeConfig.mac, args.cni.
func (n *NetConf) validate(cniArgs string) error {
	if n.DataDir == "" {
		n.DataDir = defaultDataDir
	}
	w := settings{sysctls: append(Sysctls(nil), n.SysCtl...), promisc: n.Promisc, mtu: n.MTU, allmulti: n.Allmulti, txQLen: n.TxQLen}
	macs := []conf.MACSource{{Field: "mac", Value: n.MAC}}
	if v, ok := conf.CNIArg(cniArgs, "MAC"); ok {
		macs = append(macs, conf.MACSource{Field: "CNI_ARGS MAC", Value: v})
	}
	macs = append(macs, conf.MACSource{Field: "runtimeConfig.mac", Value: n.RuntimeConfig.MAC})
	mtuField, txField := "mtu", "txQLen"
	if n.Args != nil && n.Args.CNI != nil {
		a := n.Args.CNI
		if a.SysCtl != nil {
			for _, s := range *a.SysCtl {
				w.sysctls = w.sysctls.set(s.Key, s.Value)
			}
		}
		if a.MAC != nil {
			macs = append(macs, conf.MACSource{Field: "args.cni.mac", Value: *a.MAC})
		}
		if a.Promisc != nil {
			w.promisc = *a.Promisc
		}
		if a.MTU != nil {
			w.mtu, mtuField = *a.MTU, "args.cni.mtu"
		}
		if a.Allmulti != nil {
			w.allmulti = a.Allmulti
		}
		if a.TxQLen != nil {
			w.txQLen, txField = a.TxQLen, "args.cni.txQLen"
		}
	}
	var err error
	if w.mac, err = conf.PickMAC(macs...); err != nil {
		return err
	}
	if w.mtu != 0 && (w.mtu < conf.MinMTU || w.mtu > conf.MaxMTU) {
		return conf.Invalid(mtuField, "%d is out of range; use %d..%d, or omit it to keep the interface's MTU", w.mtu, conf.MinMTU, conf.MaxMTU)
	}
	if w.txQLen != nil && *w.txQLen < 0 {
		return conf.Invalid(txField, "%d is negative; give the transmit queue length in packets (e.g. 1000), or omit it to keep the interface's", *w.txQLen)
	}
	for _, s := range w.sysctls {
		if _, err := sysctlPath(s.Key, "eth0"); err != nil {
			return err
		}
	}
	n.want = w
	return nil
}

// delConf is what DEL reads: only where the saved state is. A configuration that ADD refused (a sysctl
// outside net., a bad MAC) must still let the runtime's DEL through the chain, so nothing else is
// validated; the reference likewise ignores every key but dataDir at DEL.
type delConf struct {
	DataDir string `json:"dataDir,omitempty"`
}

func parseDel(stdin []byte) (*delConf, error) {
	var d delConf
	if err := conf.Decode(stdin, &d); err != nil {
		return nil, err
	}
	if d.DataDir == "" {
		d.DataDir = defaultDataDir
	}
	return &d, nil
}
