package conf

import "net"

// MACSource is one place a pod's MAC address may come from, named as the error should name it.
type MACSource struct {
	Field, Value string
}

// PickMAC returns the MAC of the last source with a value (callers list them lowest precedence first,
// as each plugin's reference does), or nil when none has one. The MAC must be a unicast Ethernet
// address; otherwise the error (code 7) names the source's field.
func PickMAC(sources ...MACSource) (net.HardwareAddr, error) {
	var pick MACSource
	for _, s := range sources {
		if s.Value != "" {
			pick = s
		}
	}
	if pick.Value == "" {
		return nil, nil
	}
	mac, err := net.ParseMAC(pick.Value)
	if err != nil || len(mac) != 6 {
		return nil, Invalid(pick.Field, "%q is not an Ethernet MAC address; write it as 0a:58:0a:f4:00:05", pick.Value)
	}
	if mac[0]&1 != 0 {
		return nil, Invalid(pick.Field, "%s is a multicast address; a pod interface needs a unicast MAC (even first octet)", mac)
	}
	return mac, nil
}
