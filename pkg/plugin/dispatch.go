package plugin

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/ns"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/netloom/netloom/pkg/conf"
)

// Args is one CNI call as the runtime makes it: the CNI_* environment variables and the network
// configuration on stdin. The field names are those of the CNI library's skeleton (skel.CmdArgs), whose
// job dispatch does.
type Args struct {
	ContainerID   string // CNI_CONTAINERID
	Netns         string // CNI_NETNS
	IfName        string // CNI_IFNAME
	Args          string // CNI_ARGS
	Path          string // CNI_PATH
	NetnsOverride string // CNI_NETNS_OVERRIDE
	StdinData     []byte
}

// Funcs are a plugin's commands. One left nil answers success once the call has passed the checks every
// command gets.
type Funcs struct {
	Add, Del, Check, GC, Status func(*Args) error
}

// command is what dispatch knows about one CNI_COMMAND.
type command struct {
	run func(*Args) error
	// needs are the variables the command cannot run without, in the specification's table.
	needs []string
	// since is the first cniVersion whose configuration may ask for the command ("" for any).
	since string
}

func (f Funcs) command(name string) (command, bool) {
	pod := []string{"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"}
	switch name {
	case "ADD":
		return command{run: f.Add, needs: pod}, true
	case "CHECK":
		return command{run: f.Check, needs: pod, since: "0.4.0"}, true
	case "DEL":
		// CNI_NETNS may be empty: the namespace may be gone already, and the DEL must still clean up.
		return command{run: f.Del, needs: []string{"CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"}}, true
	case "GC":
		return command{run: f.GC, needs: []string{"CNI_PATH"}, since: "1.1.0"}, true
	case "STATUS":
		return command{run: f.Status, needs: []string{"CNI_PATH"}, since: "1.1.0"}, true
	}
	return command{}, false
}

// call is the process's side of a CNI call: where dispatch reads the variables and stdin and writes.
type call struct {
	getenv         func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer
}

// dispatch runs the command the call names, after the checks the CNI library's skeleton makes, with the
// same error codes: variables the command needs (code 4), a container ID and an interface name the
// specification allows (4), a configuration that parses (6) with a valid network name (7), and a
// cniVersion the plugin supports and the command exists in (1). It writes the VERSION answer itself,
// and, with no CNI_COMMAND at all (a person running the binary), says what the binary is on stderr. An
// error the command returns reaches the runtime with its code and all of its context
// (conf.ForRuntime); a panic, as a CNI internal error (the stack goes to the log only), never as a Go
// stack on stdout.
//
// Unlike the skeleton, dispatch refuses an ADD or DEL aimed at the plugin's own network namespace before
// the command runs rather than after it has changed that namespace, and the messages name the variable
// or key and what would be valid. It is netloom's own so that no plugin links the skeleton's name
// checks, a regular expression compiled at every start-up that, with the regexp package, made a quarter
// of a megabyte of each binary.
func (c call) dispatch(funcs Funcs, about string) (e *types.Error) {
	defer func() {
		if r := recover(); r != nil {
			log.Printf("panic: %v\n%s", r, debug.Stack())
			e = types.NewError(conf.CodeInternal, fmt.Sprintf("internal error (please report): %v", r), "")
		}
	}()
	name := c.getenv("CNI_COMMAND")
	switch name {
	case "":
		fmt.Fprintln(c.stderr, about)
		fmt.Fprintf(c.stderr, "CNI protocol versions supported: %s\n", strings.Join(Supported.SupportedVersions(), ", "))
		return nil
	case "VERSION":
		if err := Supported.Encode(c.stdout); err != nil {
			return conf.IOFailure("writing the VERSION answer: %v", err)
		}
		return nil
	}
	cmd, ok := funcs.command(name)
	if !ok {
		return conf.InvalidEnv("CNI_COMMAND", "unknown command %q: want ADD, DEL, CHECK, GC, STATUS or VERSION", name)
	}
	args := &Args{
		ContainerID:   c.getenv("CNI_CONTAINERID"),
		Netns:         c.getenv("CNI_NETNS"),
		IfName:        c.getenv("CNI_IFNAME"),
		Args:          c.getenv("CNI_ARGS"),
		Path:          c.getenv("CNI_PATH"),
		NetnsOverride: c.getenv("CNI_NETNS_OVERRIDE"),
	}
	if err := checkEnv(name, cmd, args, c.getenv); err != nil {
		return err
	}
	stdin, err := io.ReadAll(c.stdin)
	if err != nil {
		return conf.IOFailure("reading the network configuration from stdin: %v", err)
	}
	args.StdinData = stdin
	if err := checkConfig(name, cmd.since, stdin); err != nil {
		return err
	}
	if name == "ADD" || name == "DEL" {
		if err := checkNotOwnNetns(args); err != nil {
			return err
		}
	}
	if cmd.run == nil {
		return nil
	}
	if err := cmd.run(args); err != nil {
		return conf.ForRuntime(err)
	}
	return nil
}

// checkEnv checks the variables a command needs are set and that the container ID and interface name
// are ones the specification allows: both end up in file names, rule comments and nft object names.
func checkEnv(name string, cmd command, args *Args, getenv func(string) string) *types.Error {
	var missing []string
	for _, v := range cmd.needs {
		if getenv(v) == "" {
			missing = append(missing, v)
		}
	}
	if len(missing) > 0 {
		return types.NewError(conf.CodeInvalidEnvironment,
			fmt.Sprintf("required env variables [%s] missing: a CNI %s needs them set", strings.Join(missing, ","), name), "")
	}
	if args.ContainerID != "" {
		if err := conf.ValidateContainerID(args.ContainerID); err != nil {
			return conf.ForRuntime(err)
		}
	}
	if slices.Contains(cmd.needs, "CNI_IFNAME") {
		if err := conf.ValidateIfName("CNI_IFNAME", args.IfName); err != nil {
			return types.NewError(conf.CodeInvalidEnvironment, err.Error(), "")
		}
	}
	return nil
}

// checkConfig checks the network configuration decodes, names its network validly, and has a
// cniVersion the plugin supports and the command exists in (since).
func checkConfig(name, since string, stdin []byte) *types.Error {
	var nc struct {
		Name       *string `json:"name"`
		CNIVersion string  `json:"cniVersion"`
	}
	if err := json.Unmarshal(stdin, &nc); err != nil {
		return types.NewError(conf.CodeDecodingFailure, fmt.Sprintf("error unmarshall network config: %v", err), "")
	}
	if nc.Name == nil || *nc.Name == "" {
		return conf.Invalid("name", "missing network name: the configuration must name its network")
	}
	if err := conf.ValidateNetworkName(*nc.Name); err != nil {
		return conf.ForRuntime(err)
	}
	v := nc.CNIVersion
	if v == "" {
		v = "0.1.0" // the specification's reading of a configuration without one
	}
	if since != "" {
		later, err := version.GreaterThanOrEqualTo(v, since)
		if err != nil {
			return types.NewError(conf.CodeDecodingFailure, fmt.Sprintf("cniVersion %q: %v", v, err), "")
		}
		if !later {
			return types.NewError(conf.CodeIncompatibleVersion,
				fmt.Sprintf("config version does not allow %s: cniVersion %s has no %s; it needs %s or later", name, v, name, since), "")
		}
	}
	if supported := Supported.SupportedVersions(); !slices.Contains(supported, v) {
		return types.NewError(conf.CodeIncompatibleVersion, "incompatible CNI versions",
			fmt.Sprintf("config is %q, plugin supports %q", v, supported))
	}
	return nil
}

// checkNotOwnNetns refuses a call whose CNI_NETNS is the namespace the plugin runs in (the node's), unless
// CNI_NETNS_OVERRIDE says the runtime means it. A CNI_NETNS that cannot be opened is the command's to
// report (a DEL goes on without it).
func checkNotOwnNetns(args *Args) *types.Error {
	if args.Netns == "" || strings.EqualFold(args.NetnsOverride, "true") || args.NetnsOverride == "1" {
		return nil
	}
	same, err := ns.CheckNetNS(args.Netns)
	if err != nil {
		return err
	}
	if same {
		return types.NewError(types.ErrInvalidNetNS,
			fmt.Sprintf("CNI_NETNS: %s is the plugin's own network namespace, not a container's (set CNI_NETNS_OVERRIDE=1 if that is meant)", args.Netns), "")
	}
	return nil
}
