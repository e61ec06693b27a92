// Package plugin is the thin layer between a netloom binary's main and the CNI protocol: it reads the
// call (dispatch), declares the supported CNI versions, stamps the build version, and guarantees that
// whatever happens inside a command the runtime reads a CNI error JSON on stdout and never a Go panic.
package plugin

import (
	"encoding/json"
	"fmt"
	"log"
	"os"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/netloom/netloom/pkg/conf"
	"github.com/netloom/netloom/pkg/fault"
)

// Version is set at link time: -ldflags "-X github.com/netloom/netloom/pkg/plugin.Version=...".
var Version = "dev"

// Supported lists every CNI version a netloom plugin accepts and can answer in.
var Supported = version.PluginSupports("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// Main runs one CNI command for the plugin called name and exits.
func Main(name string, funcs Funcs) {
	fault.SetPlugin(name)
	closeLog := setupLog(name)
	about := fmt.Sprintf("netloom %s %s", name, Version)
	c := call{getenv: os.Getenv, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	if e := c.dispatch(funcs, about); e != nil {
		if err := e.Print(); err != nil {
			log.Printf("writing error: %v", err)
		}
		closeLog()
		os.Exit(1)
	}
	closeLog()
}

// GCArgs is what a GC call carries besides the network's own keys.
type GCArgs struct {
	ValidAttachments []conf.Attachment `json:"cni.dev/valid-attachments"`
}

// ValidAttachments decodes cni.dev/valid-attachments from a GC call's stdin and validates each entry, so
// a malformed list can never be read as "nothing is valid" and release everything.
func ValidAttachments(stdin []byte) (map[conf.Attachment]bool, error) {
	var raw map[string]json.RawMessage
	if err := conf.Decode(stdin, &raw); err != nil {
		return nil, err
	}
	list, ok := raw["cni.dev/valid-attachments"]
	if !ok {
		return nil, conf.Invalid("cni.dev/valid-attachments", "missing from the GC request; refusing to guess which attachments are alive")
	}
	var atts []conf.Attachment
	if err := json.Unmarshal(list, &atts); err != nil {
		return nil, conf.Invalid("cni.dev/valid-attachments", "want a list of {containerID, ifname}: %v", err)
	}
	valid := make(map[conf.Attachment]bool, len(atts))
	for i, a := range atts {
		if err := conf.ValidateContainerID(a.ContainerID); err != nil {
			return nil, conf.Invalid(fmt.Sprintf("cni.dev/valid-attachments[%d].containerID", i), "%v", err)
		}
		valid[a] = true
	}
	return valid, nil
}

// PrintResult writes result to stdout converted to cniVersion.
func PrintResult(result types.Result, cniVersion string) error {
	return types.PrintResult(result, cniVersion)
}

// SetDNS applies a network's "dns" key to an attachment's result: when the key sets any field, even to
// an empty list, it replaces what IPAM reported; otherwise the result keeps IPAM's. This is the
// reference plugins' rule (their dnsConfSet), kept exactly.
func SetDNS(result *current.Result, dns types.DNS) {
	if dns.Nameservers != nil || dns.Search != nil || dns.Options != nil || dns.Domain != "" {
		result.DNS = dns
	}
}
