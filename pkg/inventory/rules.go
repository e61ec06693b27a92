package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"

	"github.com/netloom/netloom/pkg/xtables"
)

// The comments netloom's and the reference's masquerade and portmap rules carry, as iptables-save and
// `nft list ruleset` print them (pkg/firewall/iptables.Comment, pkg/portmap/iptables.Comment,
// pkg/firewall/nftables.Comment, pkg/portmap/nftables' element comments).
var (
	// `name: "net" id: "cid"` (masquerade), `dnat name: "net" id: "cid" if: "eth0"` (portmap; the
	// reference's has no if).
	iptComment = regexp.MustCompile(`(dnat )?name: \\"([^"\\]+)\\" id: \\"([^"\\]+)\\"(?: if: \\"([^"\\]+)\\")?`)
	// `<hash>-<hash>, net: N, if: I, id: C` (masquerade).
	nftMasqComment = regexp.MustCompile(`"[0-9a-f]{16}-[0-9a-f]{16}, net: ([^,"]+), if: ([^,"]+), id: ([^,"]+)"`)
	// `<hash>-<hash> N/C/I` (a portmap map element).
	nftPortmapComment = regexp.MustCompile(`"[0-9a-f]{16}-[0-9a-f]{16} ([^/" ]+)/([^/" ]+)/([^/" ]+)"`)
)

// Rule kinds, as Attachment.Rules lists them.
const (
	RuleIPTablesMasq    = "iptables masquerade"
	RuleIPTablesPortmap = "iptables portmap"
	RuleNFTablesMasq    = "nftables masquerade"
	RuleNFTablesPortmap = "nftables portmap"
)

// owner is an attachment a rule's comment names; ifName is empty when the comment names none.
type owner struct{ network, containerID, ifName, kind string }

// parseIPTables returns the owners the comments of an iptables-save listing name.
func parseIPTables(save string) []owner {
	var out []owner
	for _, line := range strings.Split(save, "\n") {
		if m := iptComment.FindStringSubmatch(line); m != nil {
			kind := RuleIPTablesMasq
			if m[1] != "" {
				kind = RuleIPTablesPortmap
			}
			out = append(out, owner{m[2], m[3], m[4], kind})
		}
	}
	return out
}

// parseNFTables returns the owners the comments of `nft list ruleset` name.
func parseNFTables(ruleset string) []owner {
	var out []owner
	for _, line := range strings.Split(ruleset, "\n") {
		if m := nftMasqComment.FindStringSubmatch(line); m != nil {
			out = append(out, owner{m[1], m[3], m[2], RuleNFTablesMasq})
		}
		for _, m := range nftPortmapComment.FindAllStringSubmatch(line, -1) {
			out = append(out, owner{m[1], m[2], m[3], RuleNFTablesPortmap})
		}
	}
	return out
}

// readRules marks the attachments that masquerade or portmap rules name, adding those nothing else knows.
func (b *builder) readRules() {
	var owners []owner
	x := xtables.NewExec(xtables.Config{})
	for _, fam := range xtables.Families() {
		save, err := x.Save(fam, "nat")
		if err != nil {
			if !errors.Is(err, exec.ErrNotFound) {
				b.fail("%s nat rules: %v", fam, err)
			}
			continue
		}
		owners = append(owners, parseIPTables(save)...)
	}
	if ruleset, err := nftRuleset(); err != nil {
		if !errors.Is(err, exec.ErrNotFound) {
			b.fail("nftables ruleset: %v", err)
		}
	} else {
		owners = append(owners, parseNFTables(ruleset)...)
	}
	for _, o := range owners {
		for _, a := range b.find(o.network, o.containerID, o.ifName) {
			a.seen(SourceRules)
			if !slices.Contains(a.Rules, o.kind) {
				a.Rules = append(a.Rules, o.kind)
			}
		}
	}
}

// nftRuleset is `nft list ruleset` of the calling thread's namespace.
func nftRuleset() (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("nft", "list", "ruleset")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("nft list ruleset: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
