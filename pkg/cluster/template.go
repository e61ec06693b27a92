package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"text/template"
)

// TemplateData is what a user's conflist template (the "conflistTemplate" key) sees: the node, and the
// pieces of the conflist the mode would write, as JSON, so a template can keep them and add plugins.
type TemplateData struct {
	NodeName    string
	PodCIDRs    []string // this node's, IPv4 first as in spec.podCIDRs
	PodCIDR     string   // the first of them
	InternalIPs []string
	ClusterCIDR string
	CNIVersion  string // what the mode would write for this node's runtime
	NetworkName string
	Mode        string
	MTU         int
	// MainPlugin is the mode's main plugin (bridge, vxlan-overlay, ipip-overlay) and Plugins the
	// mode's whole chain, as JSON: `"plugins": {{.Plugins}}` writes the chain the mode writes.
	MainPlugin string
	Plugins    string
}

// loadTemplate reads and parses the template at path; an unknown field is an error when it runs.
func loadTemplate(path string) (*template.Template, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("conflistTemplate: %q is not an absolute path", path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("conflistTemplate: %w", err)
	}
	t, err := template.New(filepath.Base(path)).Option("missingkey=error").Funcs(template.FuncMap{
		"json": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
	}).Parse(string(raw))
	if err != nil {
		return nil, fmt.Errorf("conflistTemplate: %s is not a Go template: %w", path, err)
	}
	return t, nil
}

// renderTemplate runs the user's template for self with the mode's own chain in data, and checks that
// the result is a conflist a runtime takes: JSON, a name, a cniVersion, and plugins each with a type.
func renderTemplate(c *Config, self Node, chain []any) ([]byte, error) {
	main, err := json.Marshal(chain[0])
	if err != nil {
		return nil, err
	}
	all, err := json.Marshal(chain)
	if err != nil {
		return nil, err
	}
	d := TemplateData{
		NodeName: self.Name, ClusterCIDR: c.ClusterCIDR, CNIVersion: CNIVersionFor(c, self.RuntimeVersion),
		NetworkName: c.NetworkName, Mode: c.Mode, MTU: c.MTU, MainPlugin: string(main), Plugins: string(all),
	}
	for _, p := range self.PodCIDRs {
		d.PodCIDRs = append(d.PodCIDRs, p.String())
	}
	d.PodCIDR = d.PodCIDRs[0]
	for _, a := range self.InternalIPs {
		d.InternalIPs = append(d.InternalIPs, a.String())
	}
	var out bytes.Buffer
	if err := c.tmpl.Execute(&out, d); err != nil {
		return nil, fmt.Errorf("conflistTemplate: %w", err)
	}
	var list struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(out.Bytes(), &list); err != nil {
		return nil, fmt.Errorf("conflistTemplate: %s did not make JSON for node %s: %v", c.ConflistTemplate, self.Name, err)
	}
	if list.CNIVersion == "" || list.Name == "" || len(list.Plugins) == 0 {
		return nil, fmt.Errorf("conflistTemplate: %s made a conflist without cniVersion, name or plugins", c.ConflistTemplate)
	}
	for i, p := range list.Plugins {
		if typ, _ := p["type"].(string); typ == "" {
			return nil, fmt.Errorf("conflistTemplate: %s made plugins[%d] without a type", c.ConflistTemplate, i)
		}
	}
	b := out.Bytes()
	if len(b) == 0 || b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	return b, nil
}
