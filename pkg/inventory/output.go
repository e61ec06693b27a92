package inventory

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the inventory for a person, one attachment a line, then what could not be read.
func (inv Inventory) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NETWORK\tCONTAINER\tIF\tADDRESSES\tHOSTPORTS\tPLUGINS\tNETNS\tSTATE\tSEEN IN")
	for _, a := range inv.Attachments {
		addrs := make([]string, len(a.Addresses))
		for i, p := range a.Addresses {
			addrs[i] = p.String()
		}
		ports := make([]string, len(a.HostPorts))
		for i, h := range a.HostPorts {
			ports[i] = h.String()
		}
		state := string(a.State)
		if a.Why != "" && a.State == Dead {
			state += " (" + a.Why + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Network, shortID(a.ContainerID), dash(a.IfName),
			dash(strings.Join(addrs, ",")), dash(strings.Join(ports, ",")), dash(strings.Join(a.Plugins, ",")),
			dash(a.NetNS), state, strings.Join(a.Sources, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, e := range inv.Errors {
		fmt.Fprintf(w, "could not read: %s\n", e)
	}
	return nil
}

// WriteJSON prints the inventory for a program.
func (inv Inventory) WriteJSON(w io.Writer) error {
	if inv.Attachments == nil {
		inv.Attachments = []*Attachment{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(inv)
}

// shortID cuts a 64-digit runtime ID to 12, as `docker ps` and `crictl ps` show them.
func shortID(id string) string {
	if len(id) == 64 {
		return id[:12]
	}
	return id
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
