package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/netloom/netloom/pkg/cniconf"
	"github.com/netloom/netloom/pkg/doctor"
)

// doctorUsage documents `netloom doctor`.
const doctorUsage = `usage: netloom doctor [--conflist FILE | --conf-dir DIR] [--cni-bin-dir DIR] [--cache-dir DIR] [--json] [--fix]

  Checks what a node's pod networks need, as the runtime would load them from --conf-dir (default
  /etc/cni/net.d) or one --conflist, with the plugins of --cni-bin-dir (default $CNI_PATH, else
  /opt/cni/bin): plugin binaries and their VERSION, each plugin's own verdict on its config (STATUS),
  forwarding sysctls, br_netfilter, the FORWARD policy, pod subnets against host routes, hairpin on
  hostPort pods' bridge ports, and MTU along pod, bridge, tunnel and underlay. Prints one line per
  finding (status, check, subject, what was found, the fix), or --json. --cache-dir is the runtime's
  result cache (default /var/lib/cni). --fix repairs what a check can repair through the plugins'
  own verbs, then checks again.

  Exit status: 0 nothing breaks pods (warnings allowed), 1 something does, 2 a check could not look.
`

func doctorCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("netloom doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, doctorUsage) }
	conflist := fs.String("conflist", "", "check only this network configuration `file`")
	confDir := fs.String("conf-dir", doctor.DefaultConfDir, "the runtime's network configuration `directory`")
	binDir := fs.String("cni-bin-dir", "", "plugin `directories`, colon-separated (default $CNI_PATH, else "+doctor.DefaultBinDir+")")
	cacheDir := fs.String("cache-dir", doctor.DefaultCacheDir, "the runtime's libcni result cache `directory`")
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	fix := fs.Bool("fix", false, "repair what the checks can, then check again")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	confDirSet := false
	fs.Visit(func(f *flag.Flag) { confDirSet = confDirSet || f.Name == "conf-dir" })
	if *conflist != "" && confDirSet {
		fmt.Fprintln(stderr, "netloom doctor: --conflist and --conf-dir exclude each other")
		return 2
	}
	node := &doctor.Node{BinDirs: doctor.BinDirs(*binDir, os.Getenv("CNI_PATH")), CacheDir: *cacheDir}
	if *conflist != "" {
		node.Networks = []doctor.Network{cniconf.LoadFile(*conflist)}
	} else {
		nets, err := cniconf.LoadDir(*confDir)
		if err != nil {
			fmt.Fprintf(stderr, "netloom doctor: %v\n", err)
			return 2
		}
		node.Networks = nets
	}
	checks := doctor.Checks()
	report := doctor.Run(node, checks)
	if *fix {
		done, err := doctor.Repair(node, checks, report)
		for _, d := range done {
			fmt.Fprintf(stderr, "fixed: %s\n", d)
		}
		if err != nil {
			fmt.Fprintf(stderr, "netloom doctor --fix: %v\n", err)
		}
		if len(done) > 0 {
			report = doctor.Run(node, checks)
		}
	}
	write := report.WriteTable
	if *asJSON {
		write = report.WriteJSON
	}
	if err := write(stdout); err != nil {
		fmt.Fprintf(stderr, "netloom doctor: %v\n", err)
		return 2
	}
	return report.ExitCode()
}
