package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/ipam"
	"github.com/netloom/netloom/pkg/plugin"
)

// cmdAdd leases one address per range set (a requested one where the runtime asked) and reports them
// with the configured routes and DNS. An attachment that already holds an address of a set gets it
// again: a retried ADD is answered, not refused.
func cmdAdd(c *Config, args *plugin.Args) error {
	att, err := attachment(args)
	if err != nil {
		return err
	}
	result := &current.Result{CNIVersion: current.ImplementedSpecVersion, Routes: c.Routes}
	if c.ResolvConf != "" {
		dns, err := parseResolvConf(c.ResolvConf)
		if err != nil {
			return conf.Invalid("ipam.resolvConf", "%v", err)
		}
		result.DNS = *dns
	}
	s, err := ipam.OpenStore(c.DataDir, c.Name)
	if err != nil {
		return conf.IOFailure("network %q in dataDir %s: %v", c.Name, c.DataDir, err)
	}
	defer s.Close()
	// One step under the store's lock: the sets' addresses are taken together, and a failure releases
	// what this ADD leased before the lock is let go.
	var add plugin.Add
	err = add.Run(plugin.Do("allocate", func() (err error) {
		result.IPs, err = allocate(&add, s, c, att)
		return err
	}))
	if err != nil {
		return err
	}
	return plugin.PrintResult(result, c.CNIVersion)
}

// allocate takes one address per range set for att, registering with add how to release each it
// leased anew.
func allocate(add *plugin.Add, s *ipam.Store, c *Config, att conf.Attachment) ([]*current.IPConfig, error) {
	// Only the attachment's own leases are read (through the store's index); whether another address is
	// free is asked of the directory, one name at a time.
	owned, err := s.OwnedLeases(att)
	if err != nil {
		return nil, conf.IOFailure("network %q: %v", c.Name, err)
	}
	var out []*current.IPConfig
	for i, set := range c.Sets {
		a, isNew, err := allocateFromSet(s, c, i, att, owned)
		if err != nil {
			return nil, err
		}
		if isNew {
			l := ipam.Lease{Addr: a, ContainerID: att.ContainerID, IfName: att.IfName}
			add.OnFailure("release "+a.String(), func() error { return s.Release(l) })
			owned = append(owned, l)
		}
		ri, found := set.RangeFor(a)
		if !found {
			return nil, conf.Internal(fmt.Errorf("address %s handed out from range set %s that does not contain it", a, set))
		}
		r := set[ri]
		out = append(out, &current.IPConfig{
			Address: net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(r.Subnet.Bits(), a.BitLen())},
			Gateway: r.Gateway.AsSlice(),
		})
	}
	return out, nil
}

// allocateFromSet returns the attachment's address in set i: the one it already holds, the requested
// one, or the next free one in round-robin order. isNew says whether this call leased it.
func allocateFromSet(s *ipam.Store, c *Config, i int, att conf.Attachment, owned []ipam.Lease) (netip.Addr, bool, error) {
	set, req := c.Sets[i], c.Requested[i]
	for _, l := range owned {
		if !l.HeldBy(att) || !set.Contains(l.Addr) {
			continue
		}
		if req.Addr.IsValid() && req.Addr != l.Addr {
			return netip.Addr{}, false, conf.Invalid(req.Field, "requested address %s, but %s already holds %s in %s; DEL it first",
				req.Addr, att, l.Addr, c.SetFields[i])
		}
		return l.Addr, false, nil
	}
	if req.Addr.IsValid() {
		reserved, err := s.Reserve(req.Addr, att, i)
		if err != nil {
			return netip.Addr{}, false, conf.IOFailure("network %q: %v", c.Name, err)
		}
		if !reserved {
			if l, _ := s.LeaseOf(req.Addr); l != nil {
				return netip.Addr{}, false, conf.Invalid(req.Field, "requested address %s is already leased: %s", req.Addr, l)
			}
			return netip.Addr{}, false, conf.Invalid(req.Field, "requested address %s is already leased", req.Addr)
		}
		return req.Addr, true, nil
	}
	a, err := s.AllocateNext(set, i, att, s.Taken)
	var full *ipam.ExhaustedError
	switch {
	case errors.As(err, &full):
		return netip.Addr{}, false, conf.NotAvailable("network %q: %v", c.Name, full)
	case err != nil:
		return netip.Addr{}, false, conf.IOFailure("network %q: %v", c.Name, err)
	}
	return a, true, nil
}

// cmdDel releases every lease of the attachment, in any range: the configuration may have changed
// since the ADD. A network that never had a lease, or a second DEL, succeeds.
func cmdDel(args *plugin.Args) error {
	name, dataDir, err := parseLocation(args.StdinData)
	if err != nil {
		return err
	}
	att, err := attachment(args)
	if err != nil {
		return err
	}
	s, err := ipam.OpenExistingStore(dataDir, name)
	if err != nil {
		return conf.IOFailure("network %q in dataDir %s: %v", name, dataDir, err)
	}
	if s == nil {
		return nil
	}
	defer s.Close()
	if _, err := s.ReleaseAttachment(att); err != nil {
		return conf.IOFailure("network %q: %v", name, err)
	}
	return nil
}

// cmdCheck verifies that the attachment holds a lease and, when the runtime passes the ADD's result,
// that every address of it inside the configured ranges is leased to the attachment.
func cmdCheck(c *Config, args *plugin.Args) error {
	att, err := attachment(args)
	if err != nil {
		return err
	}
	want, err := prevAddrs(c)
	if err != nil {
		return err
	}
	s, err := ipam.OpenExistingStore(c.DataDir, c.Name)
	if err != nil {
		return conf.IOFailure("network %q in dataDir %s: %v", c.Name, c.DataDir, err)
	}
	if s == nil {
		return fmt.Errorf("network %q: attachment %s holds no lease (no lease directory in %s)", c.Name, att, c.DataDir)
	}
	defer s.Close()
	leases, err := s.OwnedLeases(att)
	if err != nil {
		return conf.IOFailure("network %q: %v", c.Name, err)
	}
	owned := map[netip.Addr]bool{}
	for _, l := range leases {
		owned[l.Addr] = true
	}
	if len(owned) == 0 {
		return fmt.Errorf("network %q: attachment %s holds no lease", c.Name, att)
	}
	for _, a := range want {
		if !owned[a] {
			return fmt.Errorf("network %q: %s is in the ADD result of %s but not leased to it", c.Name, a, att)
		}
	}
	return nil
}

// prevAddrs returns the addresses of prevResult that lie in one of the configured range sets.
func prevAddrs(c *Config) ([]netip.Addr, error) {
	if c.PrevResult == nil {
		return nil, nil
	}
	nc := &types.NetConf{CNIVersion: c.CNIVersion, RawPrevResult: c.PrevResult}
	prev, err := conf.PrevResult(nc)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, ipc := range prev.IPs {
		a, ok := netip.AddrFromSlice(ipc.Address.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		for _, set := range c.Sets {
			if set.Contains(a) {
				out = append(out, a)
				break
			}
		}
	}
	return out, nil
}

// cmdGC releases every lease whose attachment is not in cni.dev/valid-attachments. A legacy lease
// (container ID only) stays while any attachment of its container is valid.
func cmdGC(args *plugin.Args) error {
	name, dataDir, err := parseLocation(args.StdinData)
	if err != nil {
		return err
	}
	valid, err := plugin.ValidAttachments(args.StdinData)
	if err != nil {
		return err
	}
	validIDs := map[string]bool{}
	for a := range valid {
		validIDs[a.ContainerID] = true
	}
	s, err := ipam.OpenExistingStore(dataDir, name)
	if err != nil {
		return conf.IOFailure("network %q in dataDir %s: %v", name, dataDir, err)
	}
	if s == nil {
		return nil
	}
	defer s.Close()
	leases, err := s.Leases()
	if err != nil {
		return conf.IOFailure("network %q: %v", name, err)
	}
	var errs []error
	for _, l := range leases {
		keep := valid[conf.Attachment{ContainerID: l.ContainerID, IfName: l.IfName}]
		if l.Legacy() {
			keep = validIDs[l.ContainerID]
		}
		if !keep {
			errs = append(errs, s.Release(l))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return conf.IOFailure("network %q: GC: %v", name, err)
	}
	return nil
}

// cmdStatus reports the plugin unavailable (code 50) when an ADD could not succeed: the lease
// directory cannot be created or written, or a range set has no free address.
func cmdStatus(c *Config, args *plugin.Args) error {
	s, err := ipam.OpenStore(c.DataDir, c.Name)
	if err != nil {
		return conf.NotAvailable("network %q in dataDir %s: %v", c.Name, c.DataDir, err)
	}
	defer s.Close()
	if err := s.CheckWritable(); err != nil {
		return conf.NotAvailable("network %q: %v", c.Name, err)
	}
	leases, err := s.Leases()
	if err != nil {
		return conf.NotAvailable("network %q: %v", c.Name, err)
	}
	addrs := make([]netip.Addr, len(leases))
	for i, l := range leases {
		addrs[i] = l.Addr
	}
	var full []string
	for i, set := range c.Sets {
		if size := set.Size(); set.Leased(addrs) >= size {
			full = append(full, (&ipam.ExhaustedError{Set: set, SetIdx: i, Size: size}).Error())
		}
	}
	if len(full) > 0 {
		return conf.NotAvailable("network %q: %s", c.Name, strings.Join(full, "; "))
	}
	return nil
}

// parseLocation reads only what DEL and GC need, the network name and dataDir, so a range that has
// become invalid since the ADD never keeps a lease from being released.
func parseLocation(stdin []byte) (name, dataDir string, err error) {
	var n struct {
		Name string `json:"name"`
		IPAM *struct {
			DataDir string `json:"dataDir"`
		} `json:"ipam"`
	}
	if err := conf.Decode(stdin, &n); err != nil {
		return "", "", err
	}
	if n.IPAM == nil {
		return "", "", conf.Invalid("ipam", "missing; host-local reads its ranges from the \"ipam\" section")
	}
	if err := conf.ValidateFileComponent("name (network name)", n.Name); err != nil {
		return "", "", err
	}
	dataDir = n.IPAM.DataDir
	if dataDir == "" {
		dataDir = ipam.DefaultDataDir
	}
	return n.Name, dataDir, nil
}

// attachment validates the runtime's CNI_CONTAINERID and CNI_IFNAME (code 4 when bad).
func attachment(args *plugin.Args) (conf.Attachment, error) {
	if err := conf.ValidateFileComponent("CNI_CONTAINERID (containerID)", args.ContainerID); err != nil {
		return conf.Attachment{}, asEnvError(err)
	}
	if err := conf.ValidateIfName("CNI_IFNAME", args.IfName); err != nil {
		return conf.Attachment{}, asEnvError(err)
	}
	return conf.Attachment{ContainerID: args.ContainerID, IfName: args.IfName}, nil
}

func asEnvError(err error) error {
	var te *types.Error
	if errors.As(err, &te) {
		return types.NewError(conf.CodeInvalidEnvironment, te.Msg, te.Details)
	}
	return err
}

// parseResolvConf reads nameserver, domain, search and options lines of a resolv.conf.
func parseResolvConf(path string) (*types.DNS, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dns := &types.DNS{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "nameserver":
			dns.Nameservers = append(dns.Nameservers, fields[1])
		case "domain":
			dns.Domain = fields[1]
		case "search":
			dns.Search = append(dns.Search, fields[1:]...)
		case "options":
			dns.Options = append(dns.Options, fields[1:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return dns, nil
}
