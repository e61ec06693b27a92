package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/netloom/netloom/pkg/conf"
)

// statusVersion is the first CNI version with STATUS. Every plugin that implements it parses the
// config it is given (netloom's run their whole parser and validation before any verb, and pass the
// IPAM section to the IPAM plugin's STATUS), so STATUS is how the doctor asks each plugin, netloom's or
// not, whether it accepts its config: no plugin is judged by another's parser.
const statusVersion = "1.1.0"

// checkConflists reports files that do not load, network names defined twice, and each plugin's own
// verdict on its config (its STATUS).
func checkConflists(n *Node) []Finding {
	bins := n.binaries()
	var out []Finding
	seen := map[string]string{}
	for _, nw := range n.Networks {
		if nw.List == nil {
			out = append(out, Finding{Subject: nw.File, Status: Fail,
				Found: "does not load: " + oneLine(errString(nw.Err)),
				Fix:   "correct " + nw.File + " (a runtime skips it, so pods of this network get none)"})
			continue
		}
		in := infoOf(nw)
		if first, dup := seen[in.Name]; dup {
			out = append(out, Finding{Subject: in.label(), Status: Warn,
				Found: fmt.Sprintf("network %q is also defined in %s, which runtimes load first", in.Name, first),
				Fix:   "remove or rename one of " + first + " and " + nw.File})
		} else {
			seen[in.Name] = nw.File
		}
		for i, p := range nw.List.Plugins {
			bin := bins.get(p.Network.Type)
			if t := p.Network.IPAM.Type; t != "" && bin.Problem == "" && bins.get(t).Problem != "" {
				// Its STATUS would only say that the IPAM plugin is missing.
				bin.Problem = "its ipam plugin " + t + " is unusable"
			}
			out = append(out, validatePlugin(in, i, p.Network.Type, p.Bytes, bin, n.BinDirs))
		}
	}
	if len(n.Networks) == 0 {
		out = append(out, Finding{Status: Fail, Found: "no network configuration: the runtime reports the node's network not ready",
			Fix: "install a conflist (see conflist-examples/)"})
	}
	return out
}

// validatePlugin runs one plugin's STATUS with its config as the runtime would pipe it.
func validatePlugin(in netInfo, i int, typ string, raw []byte, bin binary, dirs []string) Finding {
	f := Finding{Subject: fmt.Sprintf("%s: plugins[%d] %s", in.label(), i, typ), Status: OK}
	switch {
	case bin.Problem != "":
		f.Found = "not validated: " + bin.Problem + " (see plugin-binaries)"
		return f
	case !bin.supports(statusVersion):
		f.Found = fmt.Sprintf("not validated: %s has no STATUS (VERSION lists up to %s)", bin.Path, latest(bin.Versions))
		return f
	}
	stdin, err := statusConfig(raw, in.Name)
	if err != nil {
		f.Status, f.Found, f.Fix = Fail, "not JSON: "+err.Error(), "correct "+in.File
		return f
	}
	ctx, cancel := context.WithTimeout(context.Background(), pluginTimeout)
	defer cancel()
	args := &invoke.Args{Command: "STATUS", Path: strings.Join(dirs, ":")}
	err = invoke.ExecPluginWithoutResult(ctx, bin.Path, stdin, args, &invoke.DefaultExec{RawExec: &invoke.RawExec{}})
	if err == nil {
		f.Found = "accepts its config (STATUS)"
		return f
	}
	return statusFinding(f, in, typ, err)
}

// statusFinding judges a STATUS error by its CNI code.
func statusFinding(f Finding, in netInfo, typ string, err error) Finding {
	msg := oneLine(err.Error())
	var cniErr *types.Error
	code := uint(0)
	if errors.As(err, &cniErr) {
		code, msg = cniErr.Code, oneLine(cniErr.Msg+" "+cniErr.Details)
	}
	switch code {
	case conf.CodeNotAvailable:
		f.Status, f.Found = Fail, "not available, ADD fails: "+msg
		f.Fix = "make what the message names available (" + typ + "'s README, STATUS)"
	case conf.CodeTryAgainLater:
		f.Status, f.Found = Warn, "busy, try again later: "+msg
		f.Fix = "run netloom doctor again; if it persists, see " + typ + "'s README, STATUS"
	case conf.CodeLimitedConnectivity:
		f.Status, f.Found = Warn, "limited connectivity: "+msg
		f.Fix = "see " + typ + "'s README, STATUS"
	case conf.CodeIncompatibleVersion, conf.CodeUnsupportedField, conf.CodeDecodingFailure, conf.CodeInvalidConfig:
		f.Status = Fail
		f.Found = fmt.Sprintf("rejects its config (code %d): %s", code, msg)
		f.Fix = fmt.Sprintf("correct the key the message names in %s", in.File)
	default:
		f.Status = Fail
		f.Found = fmt.Sprintf("STATUS fails (code %d): %s", code, msg)
		f.Fix = "see the message: ADD fails the same way (" + typ + "'s README, STATUS)"
	}
	return f
}

// statusConfig is a plugin's config as libcni pipes it to STATUS: the network's name injected and
// cniVersion raised to the first version with STATUS, so a conflist of any version is validated.
func statusConfig(raw []byte, name string) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	m["name"], m["cniVersion"] = name, statusVersion
	return json.Marshal(m)
}

func errString(err error) string {
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}
