// Package ipamexec runs a network's IPAM plugin (the "ipam" section's "type") as a CNI delegate, with
// the same stdin the attachment plugin received, and returns its result in the current CNI version.
//
// It executes the delegate itself (delegate.go) rather than through libcni's invoke package, whose
// tracing dependencies (net/http, TLS) cost every plugin process about a megabyte of memory for code it
// never runs.
package ipamexec

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"
)

// Add allocates. The result has at least one IP, or an error says the IPAM plugin returned none.
func Add(ctx context.Context, plugin string, stdin []byte) (*current.Result, error) {
	out, err := delegate(ctx, plugin, "ADD", stdin)
	if err != nil {
		return nil, wrap("ADD", plugin, err)
	}
	r, err := create.CreateFromBytes(out)
	if err != nil {
		return nil, fmt.Errorf("ipam %q: its result: %w", plugin, err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		return nil, fmt.Errorf("ipam %q: convert result: %w", plugin, err)
	}
	if len(res.IPs) == 0 {
		return nil, fmt.Errorf("ipam %q returned no IP addresses", plugin)
	}
	return res, nil
}

// Del releases; IPAM plugins make it idempotent.
func Del(ctx context.Context, plugin string, stdin []byte) error {
	return wrap("DEL", plugin, run(ctx, plugin, "DEL", stdin))
}

// Check verifies the attachment's lease.
func Check(ctx context.Context, plugin string, stdin []byte) error {
	return wrap("CHECK", plugin, run(ctx, plugin, "CHECK", stdin))
}

// GC releases what the attachments in stdin's cni.dev/valid-attachments do not own.
func GC(ctx context.Context, plugin string, stdin []byte) error {
	return wrap("GC", plugin, run(ctx, plugin, "GC", stdin))
}

// Status asks whether the IPAM plugin can serve ADDs.
func Status(ctx context.Context, plugin string, stdin []byte) error {
	return wrap("STATUS", plugin, run(ctx, plugin, "STATUS", stdin))
}

// wrap keeps the delegate's CNI error code (a full range must reach the runtime as the IPAM plugin said)
// and prefixes the message with who said it.
func wrap(cmd, plugin string, err error) error {
	if err == nil {
		return nil
	}
	var te *types.Error
	if errors.As(err, &te) {
		return types.NewError(te.Code, fmt.Sprintf("ipam %q %s: %s", plugin, cmd, te.Msg), te.Details)
	}
	return fmt.Errorf("ipam %q %s: %w", plugin, cmd, err)
}

// NodeLocal tells whether an IPAM plugin of type plugin works on the node's files only (host-local,
// static), so it never talks on the pod's link: an attachment plugin's DEL need not keep the link until
// it has released. Any other type (dhcp sends its release through the link) is assumed to need it.
func NodeLocal(plugin string) bool {
	return plugin == "host-local" || plugin == "static"
}
