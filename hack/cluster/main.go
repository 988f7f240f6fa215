// Command cluster brings the local control plane with simulated K3s edge nodes up
// and down; `make cluster-up` and `make cluster-down` call it.
//
//	go run ./hack/cluster up --nodes 200 --sites 4
//	go run ./hack/cluster down
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/slmops/slmops/test/localcluster"
)

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "up" && os.Args[1] != "down") {
		fmt.Fprintln(os.Stderr, "usage: cluster up|down [flags]; cluster up -h lists the flags")
		os.Exit(2)
	}
	verb := os.Args[1]
	fs := flag.NewFlagSet("cluster "+verb, flag.ExitOnError)
	dir := fs.String("dir", ".cluster", "state folder: certificates, kubeconfig, logs, pids")
	bin := fs.String("bin", "bin/k8s", "folder with the control plane binaries (hack/build-controlplane.sh)")
	nodes := fs.Int("nodes", 50, "number of simulated edge nodes")
	sites := fs.Int("sites", 4, "number of sites (topology.kubernetes.io/zone values) to spread the nodes over")
	_ = fs.Parse(os.Args[2:])

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch verb {
	case "up":
		if *nodes < 0 || *sites < 1 {
			fmt.Fprintln(os.Stderr, "cluster up: --nodes must be >= 0 and --sites >= 1")
			os.Exit(2)
		}
		c, err := localcluster.Up(ctx, localcluster.Options{
			Dir: *dir, BinDir: *bin, Nodes: *nodes, Sites: *sites, Detach: true, Progress: os.Stdout,
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "cluster up: %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("\nThe local control plane runs; use it with:\n  export KUBECONFIG=%s\n  bin/k8s/kubectl get nodes -L topology.kubernetes.io/zone,kubernetes.io/arch\nStop it with: make cluster-down\n", c.Kubeconfig)
	case "down":
		if err := localcluster.Down(*dir, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "cluster down: %v\n", err)
			os.Exit(1)
		}
	}
}
