package conf

// MTU limits the kernel enforces on every link: IPv4's minimum, and the largest value its netlink
// attribute's users accept.
const (
	MinMTU = 68
	MaxMTU = 65535
)

// CheckMTU validates the "mtu" key: 0 means "not set" (omitted says what is used then, e.g. "the
// master's"); any other value must lie within MinMTU..MaxMTU. Limits that depend on the node (a
// master's or an underlay's MTU) are checked where that link is known.
func CheckMTU(mtu int, omitted string) error {
	if mtu != 0 && (mtu < MinMTU || mtu > MaxMTU) {
		return Invalid("mtu", "%d is out of range; use %d..%d, or omit it for %s", mtu, MinMTU, MaxMTU, omitted)
	}
	return nil
}
