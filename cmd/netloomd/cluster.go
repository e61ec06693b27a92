package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/netloom/netloom/pkg/cluster"
)

// runCluster is `netloomd cluster`: the Kubernetes node agent (pkg/cluster).
//
//	netloomd cluster [--config /etc/netloom/cluster.json] [--kubeconfig FILE] [--node-name NAME] [--check-config]
func runCluster(args []string) int {
	fs := flag.NewFlagSet("netloomd cluster", flag.ContinueOnError)
	path := fs.String("config", "/etc/netloom/cluster.json", "configuration `file` (JSON; the DaemonSet mounts it from the netloom-config ConfigMap)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig `file`; default: the in-cluster ServiceAccount")
	nodeName := fs.String("node-name", os.Getenv("NODE_NAME"), "this node's Node `name` (default $NODE_NAME)")
	check := fs.Bool("check-config", false, "validate the configuration, print what is wrong, and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := cluster.LoadConfig(*path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "netloomd cluster: %s: %v\n", *path, err)
		return 2
	}
	if *check {
		fmt.Printf("%s: ok\n", *path)
		return 0
	}
	if *nodeName == "" {
		fmt.Fprintln(os.Stderr, "netloomd cluster: no node name: set NODE_NAME (the DaemonSet takes it from spec.nodeName) or --node-name")
		return 2
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level(cfg.LogLevel)}))
	var rc *rest.Config
	if *kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", *kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		log.Error("Kubernetes client configuration", "error", err)
		return 2
	}
	rc.UserAgent = "netloomd/" + *nodeName
	agent, err := cluster.New(cfg, rc, *nodeName, log)
	if err != nil {
		log.Error("cluster agent", "error", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := agent.Run(ctx); err != nil && ctx.Err() == nil {
		log.Error("cluster agent", "error", err)
		return 1
	}
	return 0
}
