package dhcp

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/netloom/netloom/pkg/conf"
)

// optionNames are the option names (from dhcp-options(5)) the reference accepts besides numbers.
var optionNames = map[string]dhcpv4.OptionCode{
	"dhcp-client-identifier":  dhcpv4.OptionClientIdentifier,
	"subnet-mask":             dhcpv4.OptionSubnetMask,
	"routers":                 dhcpv4.OptionRouter,
	"host-name":               dhcpv4.OptionHostName,
	"user-class":              dhcpv4.OptionUserClassInformation,
	"vendor-class-identifier": dhcpv4.OptionClassIdentifier,
}

// defaultRequested is the parameter request list unless a "request" entry sets skipDefault.
var defaultRequested = []dhcpv4.OptionCode{dhcpv4.OptionRouter, dhcpv4.OptionSubnetMask}

// maxClientID is the longest client identifier: the option's length octet also counts its type byte.
const maxClientID = 254

// ParseOptionName returns the option code for one of optionNames or a decimal option number. Pad (0)
// and End (255) are refused: they cannot carry a value.
func ParseOptionName(name string) (dhcpv4.OptionCode, error) {
	if code, ok := optionNames[name]; ok {
		return code, nil
	}
	n, err := strconv.ParseUint(name, 10, 8)
	if err != nil || n == 0 || n == 255 {
		return nil, fmt.Errorf("%q is not a DHCP option: want a number from 1 to 254 or one of %s", name, optionNameList())
	}
	return dhcpv4.GenericOptionCode(n), nil
}

func optionNameList() string {
	return "dhcp-client-identifier, subnet-mask, routers, host-name, user-class, vendor-class-identifier"
}

// ClientID is the DHCP client identifier of an attachment, as the reference derives it:
// "<containerID>/<network>/<ifname>", cut to 254 bytes. Leases are keyed by it, in the daemon and at
// the server, so a pod keeps its address across daemon restarts and plugin switches.
func ClientID(containerID, network, ifName string) string {
	id := containerID + "/" + network + "/" + ifName
	if len(id) > maxClientID {
		id = id[:maxClientID]
	}
	return id
}

// cniArgs splits CNI_ARGS the way the reference's daemon does: "K=V" pairs separated by ";", nothing
// trimmed, a later key overriding an earlier one.
func cniArgs(args string) map[string]string {
	out := map[string]string{}
	for pair := range strings.SplitSeq(args, ";") {
		if k, v, ok := strings.Cut(pair, "="); ok {
			out[k] = v
		}
	}
	return out
}

// Options returns the options every message of an attachment's lease carries: the "provide" options
// (values from CNI_ARGS included) and the parameter request list.
func Options(c *IPAMConfig, cniArgString string) ([]dhcpv4.Option, error) {
	args := cniArgs(cniArgString)
	var opts []dhcpv4.Option
	for i, p := range c.ProvideOptions {
		code, err := ParseOptionName(p.Option)
		if err != nil {
			return nil, conf.Invalid(fmt.Sprintf("ipam.provide[%d].option", i), "%v", err)
		}
		if p.Value != "" {
			opts = append(opts, dhcpv4.Option{Code: code, Value: dhcpv4.String(p.Value)})
		}
		if p.FromArg == "" {
			continue
		}
		if v, ok := args[p.FromArg]; ok {
			if len(v) > maxOptionValue {
				return nil, conf.InvalidEnv("CNI_ARGS", "%s (for ipam.provide[%d], option %q) is %d bytes; a DHCP option holds at most %d", p.FromArg, i, p.Option, len(v), maxOptionValue)
			}
			opts = append(opts, dhcpv4.Option{Code: code, Value: dhcpv4.String(v)})
		}
	}
	var requested dhcpv4.OptionCodeList
	skipDefault := false
	for i, r := range c.RequestOptions {
		skipDefault = skipDefault || r.SkipDefault
		if r.Option == "" {
			continue
		}
		code, err := ParseOptionName(r.Option)
		if err != nil {
			return nil, conf.Invalid(fmt.Sprintf("ipam.request[%d].option", i), "%v", err)
		}
		requested.Add(code)
	}
	if !skipDefault {
		requested.Add(defaultRequested...)
	}
	if len(requested) > 0 {
		opts = append(opts, dhcpv4.Option{Code: dhcpv4.OptionParameterRequestList, Value: requested})
	}
	return opts, nil
}

// withClientID sets the client identifier option: type 0 (not a hardware address), then the ID.
func withClientID(id string) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptClientIdentifier(append([]byte{0}, id...)))
}

// withOptions sets every option of opts on a message, replacing ones the library set.
func withOptions(opts []dhcpv4.Option) dhcpv4.Modifier {
	return func(d *dhcpv4.DHCPv4) {
		for _, o := range opts {
			d.UpdateOption(o)
		}
	}
}
