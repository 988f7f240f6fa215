// Command cluster brings the local control plane with simulated K3s edge nodes up
// and down; `make cluster-up` and `make cluster-down` call it.
//
//	go run ./hack/cluster up --nodes 200 --sites 4
//	go run ./hack/cluster up --nodes 200 --sites 4 --real-nodes 4 --inferd bin/inferd
//	go run ./hack/cluster down
//
// With --real-nodes N, N nodes spread over the architectures and sites are
// labelled slmops.dev/process-node (and slmops.dev/process-cpu, their CPU
// bound by architecture), and a detached process kubelet runs the serving
// inferd pods of those nodes as local processes of the --inferd binary; every
// other pod stays kwok-simulated. It is one more process of the cluster:
// `cluster down` stops it first, and its log is in <dir>/logs/process-kubelet.log.
// The `kubelet` verb is that process; `up` starts it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/test/localcluster"
)

// kubeletName names the detached process kubelet, its kwok Stage and its
// entry among the cluster's processes.
const kubeletName = "process-kubelet"

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "up" && os.Args[1] != "down" && os.Args[1] != "kubelet") {
		fmt.Fprintln(os.Stderr, "usage: cluster up|down [flags]; cluster up -h lists the flags")
		os.Exit(2)
	}
	verb := os.Args[1]
	fs := flag.NewFlagSet("cluster "+verb, flag.ExitOnError)
	dir := fs.String("dir", ".cluster", "state folder: certificates, kubeconfig, logs, pids")
	bin := fs.String("bin", "bin/k8s", "folder with the control plane binaries (hack/build-controlplane.sh)")
	nodes := fs.Int("nodes", 50, "number of simulated edge nodes")
	sites := fs.Int("sites", 4, "number of sites (topology.kubernetes.io/zone values) to spread the nodes over")
	realNodes := fs.Int("real-nodes", 0, "number of nodes whose serving inferd pods run as local processes (needs --inferd)")
	inferd := fs.String("inferd", "", "the inferd binary that the real nodes' serving pods run")
	nodeList := fs.String("node-list", "", "kubelet: the comma-separated nodes whose pods to run")
	_ = fs.Parse(os.Args[2:])

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch verb {
	case "up":
		if *nodes < 0 || *sites < 1 || *realNodes < 0 || *realNodes > *nodes {
			fmt.Fprintln(os.Stderr, "cluster up: --nodes must be >= 0, --sites >= 1, and --real-nodes between 0 and --nodes")
			os.Exit(2)
		}
		if *realNodes > 0 && *inferd == "" {
			fmt.Fprintln(os.Stderr, "cluster up: --real-nodes needs --inferd, the inferd binary to run")
			os.Exit(2)
		}
		c, err := localcluster.Up(ctx, localcluster.Options{
			Dir: *dir, BinDir: *bin, Nodes: *nodes, Sites: *sites, Detach: true, Progress: os.Stdout,
		})
		if err == nil {
			err = realServing(ctx, c, *realNodes, *inferd)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "cluster up: %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("\nThe local control plane runs; use it with:\n  export KUBECONFIG=%s\n  bin/k8s/kubectl get nodes -L topology.kubernetes.io/zone,kubernetes.io/arch,%s\nStop it with: make cluster-down\n",
			c.Kubeconfig, localcluster.ProcessCPULabel)
	case "down":
		if err := localcluster.Down(*dir, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "cluster down: %v\n", err)
			os.Exit(1)
		}
	case "kubelet":
		if err := runKubelet(ctx, *dir, *inferd, strings.Split(*nodeList, ",")); err != nil {
			fmt.Fprintf(os.Stderr, "cluster kubelet: %v\n", err)
			os.Exit(1)
		}
	}
}

// realServing replaces the cluster's process kubelet, if any, by one that
// runs the serving pods of n chosen nodes; with n 0 it only stops the old
// one and removes the node labels.
func realServing(ctx context.Context, c *localcluster.Cluster, n int, inferd string) error {
	if err := c.StopProcess(kubeletName); err != nil {
		return err
	}
	chosen, err := c.ChooseProcessNodes(ctx, n, localcluster.DefaultProcessCPU)
	if err != nil || n == 0 {
		return err
	}
	if inferd, err = filepath.Abs(inferd); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(c.Dir, "logs", kubeletName+".log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(self, "kubelet", "--dir", c.Dir, "--inferd", inferd, "--node-list", strings.Join(chosen, ","))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own session, so that it outlives this command, as the control plane does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the process kubelet: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := c.TrackProcess(kubeletName, cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		return err
	}
	// Ready once its kwok Stage is in: from then on, no serving pod of a
	// chosen node is kwok's.
	ready := func() bool { return c.ProcessKubeletReady(ctx, kubeletName) }
	for deadline := time.Now().Add(90 * time.Second); !ready(); {
		select {
		case err := <-exited:
			return fmt.Errorf("the process kubelet exited (%v); see %s", err, logFile.Name()) //nolint:errorlint // err may be nil
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("the process kubelet did not get ready in 90s; see " + logFile.Name())
		}
	}
	fmt.Printf("==> The serving inferd pods of %d nodes run as local processes of %s:\n", len(chosen), inferd)
	for _, node := range chosen {
		fmt.Printf("    %s\n", node)
	}
	return nil
}

// runKubelet is the detached process kubelet: it runs the serving pods of
// nodes until SIGTERM.
func runKubelet(ctx context.Context, dir, inferd string, nodes []string) error {
	c, err := localcluster.Attach(ctx, dir)
	if err != nil {
		return err
	}
	serving := labels.SelectorFromSet(labels.Set{slmopsv1alpha1.ComponentLabel: slmopsv1alpha1.ComponentModelServer})
	pk, err := c.StartProcessKubelet(ctx, localcluster.ProcessKubeletOptions{
		Name: kubeletName, Selector: serving, Nodes: nodes, Binary: inferd,
		Root: filepath.Join(c.Dir, "processes"), Log: os.Stdout,
	})
	if err != nil {
		return err
	}
	fmt.Printf("process kubelet %s: running the serving pods of %s\n", kubeletName, strings.Join(nodes, ", "))
	<-ctx.Done()
	return pk.Stop()
}
