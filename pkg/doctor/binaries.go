package doctor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
)

// pluginTimeout bounds one VERSION or STATUS call, so a hung binary is reported, not waited for.
const pluginTimeout = 20 * time.Second

// pluginRef is one binary a network needs: a plugin of its chain or the IPAM plugin one of them calls.
type pluginRef struct {
	Type string
	IPAM bool // named by an "ipam" section
}

// pluginRefs lists the binaries nw names, in chain order, each once.
func pluginRefs(nw Network) []pluginRef {
	var refs []pluginRef
	for _, p := range nw.List.Plugins {
		refs = appendNew(refs, pluginRef{Type: p.Network.Type})
		if t := p.Network.IPAM.Type; t != "" {
			refs = appendNew(refs, pluginRef{Type: t, IPAM: true})
		}
	}
	return refs
}

// binary is what the node's bin dirs hold for one plugin type.
type binary struct {
	Path     string
	Problem  string   // why it cannot run; empty when it answered VERSION
	Versions []string // what its VERSION lists
}

// binaries finds and asks each plugin binary once for the whole run.
type binaries struct {
	dirs  []string
	found map[string]binary
}

func newBinaries(dirs []string) *binaries {
	return &binaries{dirs: dirs, found: map[string]binary{}}
}

func (b *binaries) get(typ string) binary {
	if bin, ok := b.found[typ]; ok {
		return bin
	}
	bin := lookBinary(b.dirs, typ)
	b.found[typ] = bin
	return bin
}

// lookBinary finds typ in dirs as libcni does (the first directory holding it wins) and asks it VERSION.
func lookBinary(dirs []string, typ string) binary {
	if typ == "" || strings.ContainsRune(typ, filepath.Separator) {
		return binary{Problem: fmt.Sprintf("plugin type %q is not a file name", typ)}
	}
	path, err := invoke.FindInPath(typ, dirs)
	if err != nil {
		return binary{Problem: fmt.Sprintf("no %s in %s", typ, strings.Join(dirs, ":"))}
	}
	st, err := os.Stat(path)
	if err != nil {
		return binary{Path: path, Problem: err.Error()}
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return binary{Path: path, Problem: fmt.Sprintf("%s is not executable (mode %v)", path, st.Mode())}
	}
	ctx, cancel := context.WithTimeout(context.Background(), pluginTimeout)
	defer cancel()
	info, err := invoke.GetVersionInfo(ctx, path, &invoke.DefaultExec{RawExec: &invoke.RawExec{}})
	if err != nil {
		return binary{Path: path, Problem: fmt.Sprintf("%s does not answer VERSION: %v", path, oneLine(err.Error()))}
	}
	return binary{Path: path, Versions: info.SupportedVersions()}
}

// supports tells whether the binary's VERSION lists v.
func (b binary) supports(v string) bool { return slices.Contains(b.Versions, v) }

func checkBinaries(n *Node) []Finding {
	bins := n.binaries()
	var out []Finding
	for _, nw := range n.Networks {
		if nw.List == nil {
			continue
		}
		in := infoOf(nw)
		for _, ref := range pluginRefs(nw) {
			out = append(out, binaryFinding(in, ref, bins.get(ref.Type), n.BinDirs))
		}
	}
	if len(out) == 0 {
		out = append(out, Finding{Status: OK, Found: "no network names a plugin"})
	}
	return out
}

// binaryFinding judges one binary of one network. A missing binary fails every ADD and, worse, every
// DEL of the network: the runtime cannot tear down its pods.
func binaryFinding(in netInfo, ref pluginRef, bin binary, dirs []string) Finding {
	what := "plugin " + ref.Type
	if ref.IPAM {
		what = "ipam " + ref.Type
	}
	f := Finding{Subject: in.label() + ": " + what, Status: OK}
	switch {
	case bin.Path == "" && bin.Problem != "":
		f.Status, f.Found = Fail, bin.Problem+": every ADD and DEL of this network fails"
		f.Fix = fmt.Sprintf("install the %s plugin binary as %s", ref.Type, filepath.Join(dirs[0], ref.Type))
	case bin.Problem != "":
		f.Status, f.Found = Fail, bin.Problem+": every ADD and DEL of this network fails"
		f.Fix = fmt.Sprintf("chmod 0755 %s, or reinstall it", bin.Path)
	case in.CNIVersion != "" && !bin.supports(in.CNIVersion):
		f.Status = Fail
		f.Found = fmt.Sprintf("%s answers VERSION with %s, not the conflist's cniVersion %s", bin.Path, strings.Join(bin.Versions, ", "), in.CNIVersion)
		f.Fix = fmt.Sprintf("install a %s that supports %s, or set \"cniVersion\" in %s to one it lists", ref.Type, in.CNIVersion, in.File)
	default:
		f.Found = fmt.Sprintf("%s supports cniVersion %s", bin.Path, orDefault(in.CNIVersion, latest(bin.Versions)))
	}
	return f
}

func latest(vs []string) string {
	best := ""
	for _, v := range vs {
		if best == "" {
			best = v
			continue
		}
		if gt, err := version.GreaterThan(v, best); err == nil && gt {
			best = v
		}
	}
	return best
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// oneLine keeps a message on one table row.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
