package conf

import (
	"errors"
	"fmt"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func TestForRuntime(t *testing.T) {
	coded := Invalid("mtu", "70000 is out of range")
	withDetails := types.NewError(CodeTryAgainLater, "xtables lock busy", "held by pid 42")
	for _, tc := range []struct {
		name    string
		err     error
		code    uint
		msg     string
		details string
	}{
		{"plain error is 999 with its text", errors.New("netlink: file exists"), CodeInternal, "netlink: file exists", ""},
		{"a CNI error as it is", coded, CodeInvalidConfig, "mtu: 70000 is out of range", ""},
		{"wrapped: code and context", fmt.Errorf("bridge %q: %w", "cni0", coded), CodeInvalidConfig, `bridge "cni0": mtu: 70000 is out of range`, ""},
		{"wrapped twice", fmt.Errorf("ADD: %w", fmt.Errorf("step: %w", coded)), CodeInvalidConfig, "ADD: step: mtu: 70000 is out of range", ""},
		{"details stay in their field", fmt.Errorf("portmap: %w", withDetails), CodeTryAgainLater, "portmap: xtables lock busy", "held by pid 42"},
		{"joined: the first code, every message", errors.Join(errors.New("remove veth: busy"), coded, TryAgain("lock")), CodeInvalidConfig,
			"remove veth: busy; mtu: 70000 is out of range; lock", ""},
		{"joined without codes", errors.Join(errors.New("a"), errors.New("b")), CodeInternal, "a; b", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ForRuntime(tc.err)
			if got.Code != tc.code || got.Msg != tc.msg || got.Details != tc.details {
				t.Errorf("ForRuntime(%q) = {%d %q %q}, want {%d %q %q}", tc.err, got.Code, got.Msg, got.Details, tc.code, tc.msg, tc.details)
			}
		})
	}
}
