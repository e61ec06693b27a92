package inventory

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/containernetworking/cni/libcni"
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

// LoadConfDir reads the network configurations a runtime would load from dir (*.conf, *.conflist,
// *.json), each .conf wrapped into a list of one. A file that does not parse is reported, not fatal.
func LoadConfDir(dir string) ([]*libcni.NetworkConfigList, []error) {
	files, err := libcni.ConfFiles(dir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		return nil, []error{fmt.Errorf("conf dir %s: %w", dir, err)}
	}
	var lists []*libcni.NetworkConfigList
	var errs []error
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil {
			var l *libcni.NetworkConfigList
			if l, err = ConfList(b); err == nil {
				lists = append(lists, l)
				continue
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", filepath.Base(f), err))
	}
	return lists, errs
}
