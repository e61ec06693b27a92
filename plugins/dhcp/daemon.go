package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/netloom/netloom/pkg/dhcp"
)

// parseDaemonFlags reads `dhcp daemon`'s flags: the reference's, with its defaults.
func parseDaemonFlags(args []string, errOut io.Writer) (dhcp.DaemonConfig, error) {
	var c dhcp.DaemonConfig
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.StringVar(&c.PIDFile, "pidfile", "", "optional path to write daemon PID to")
	fs.StringVar(&c.HostPrefix, "hostprefix", "", "optional prefix to host root")
	fs.StringVar(&c.SocketPath, "socketpath", "", "optional dhcp server socketpath (default "+dhcp.DefaultSocketPath+")")
	fs.BoolVar(&c.Broadcast, "broadcast", false, "broadcast DHCP leases")
	fs.DurationVar(&c.Client.Timeout, "timeout", dhcp.DefaultTimeout, "optional dhcp client timeout duration for each request")
	fs.DurationVar(&c.Client.ResendMax, "resendmax", dhcp.DefaultResendMax, "optional dhcp client max resend delay between requests")
	fs.DurationVar(&c.Client.ResendTimeout, "resendtimeout", dhcp.DefaultResendLimit, "optional dhcp client resend timeout, no more retries after this timeout")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for name, d := range map[string]int64{"timeout": int64(c.Client.Timeout), "resendmax": int64(c.Client.ResendMax), "resendtimeout": int64(c.Client.ResendTimeout)} {
		if d <= 0 {
			return c, fmt.Errorf("-%s must be positive", name)
		}
	}
	if c.SocketPath == "" {
		c.SocketPath = dhcp.DefaultSocketPath
	}
	return c, nil
}

// runDaemon runs `dhcp daemon` and returns the exit status. Its log goes to stderr.
func runDaemon(args []string) int {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds | log.Lmsgprefix)
	log.SetPrefix("netloom dhcp daemon: ")
	log.SetOutput(os.Stderr)
	cfg, err := parseDaemonFlags(args, os.Stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		log.Print(err)
		return 2
	}
	if err := dhcp.RunDaemon(cfg); err != nil {
		log.Print(err)
		return 1
	}
	return 0
}
