package conf

import (
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// PrevResult parses nc's prevResult, in nc's cniVersion, and converts it to the current result type.
// It returns (nil, nil) when there is none. A prevResult that does not parse is a code-7 error naming
// "prevResult".
func PrevResult(nc *types.NetConf) (*current.Result, error) {
	if nc.RawPrevResult == nil {
		return nil, nil
	}
	if err := version.ParsePrevResult(nc); err != nil {
		return nil, Invalid("prevResult", "does not parse as a cniVersion %s result: %v", nc.CNIVersion, err)
	}
	res, err := current.NewResultFromResult(nc.PrevResult)
	if err != nil {
		return nil, Invalid("prevResult", "cannot be converted to a current result: %v", err)
	}
	return res, nil
}

// CheckPrevResult is PrevResult for CHECK, where the spec requires a prevResult: its absence is a
// code-7 error that says the runtime must pass it.
func CheckPrevResult(nc *types.NetConf) (*current.Result, error) {
	if nc.RawPrevResult == nil {
		return nil, Invalid("prevResult", "CHECK needs the result of the ADD; the runtime must pass it")
	}
	return PrevResult(nc)
}

// ChainedPrevResult is PrevResult for the ADD of a plugin that only works chained after another: its
// absence is a code-7 error naming prevResult, with why (what the plugin does to the other plugin's
// result) and how to fix the conflist.
func ChainedPrevResult(nc *types.NetConf, why string) (*current.Result, error) {
	if nc.RawPrevResult == nil {
		return nil, Invalid("prevResult", "missing: %s, so it runs chained after one in a conflist", why)
	}
	return PrevResult(nc)
}
