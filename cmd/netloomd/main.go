// Command netloomd is netloom's node daemon: a BGP speaker (embedded GoBGP) that originates this node's
// pod CIDRs, serves the GoBGP API on a unix socket for the bgp-route plugin, and installs the routes
// its peers announce. See pkg/bgp/daemon and docs in plugins/bgp-route/README.md. `netloomd cluster`
// is the Kubernetes node agent instead (pkg/cluster, cluster.go).
//
//	netloomd [--config /etc/netloom/netloomd.json] [--check-config]
//	netloomd cluster [--config /etc/netloom/cluster.json] [--kubeconfig FILE] [--node-name NAME]
//	netloomd install-cni [--from DIR] [--to /host/opt/cni/bin]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/netloom/netloom/pkg/bgp/daemon"
	"github.com/netloom/netloom/pkg/installcni"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "cluster":
			os.Exit(runCluster(os.Args[2:]))
		case "install-cni":
			os.Exit(installcni.Main(os.Args[2:]))
		}
	}
	path := flag.String("config", "/etc/netloom/netloomd.json", "configuration `file` (JSON)")
	check := flag.Bool("check-config", false, "validate the configuration, print what is wrong, and exit")
	flag.Parse()

	cfg, err := daemon.LoadConfig(*path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "netloomd: %s: %v\n", *path, err)
		os.Exit(2)
	}
	if *check {
		fmt.Printf("%s: ok\n", *path)
		return
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level(cfg.LogLevel)}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	d, err := daemon.Start(ctx, cfg, log)
	if err != nil {
		log.Error("start", "error", err)
		os.Exit(1)
	}
	<-ctx.Done()
	log.Info("stopping")
	if err := d.Stop(); err != nil {
		log.Error("stop", "error", err)
		os.Exit(1)
	}
	log.Info("stopped")
}

func level(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
