// Command bench-cluster measures the local control plane at fleet size: how long
// it takes to start, to register N simulated edge nodes, and to run a plain
// DaemonSet on all of them, and how much memory each component holds.
// `make bench-cluster` runs it.
//
// The anchor is the node registration in the same run: N concurrent creates
// plus kwok's first status update per node. A DaemonSet needs at least three
// writes per pod (create, bind, status), so its ratio to the anchor says how
// close the controller-manager, scheduler and kwok come to the API server's
// write throughput on this machine.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/slmops/slmops/test/localcluster"
)

func main() {
	nodes := flag.Int("nodes", 1000, "simulated edge nodes")
	sites := flag.Int("sites", 10, "sites to spread them over")
	flag.Parse()
	if err := run(*nodes, *sites); err != nil {
		fmt.Fprintf(os.Stderr, "bench-cluster: %v\n", err)
		os.Exit(1)
	}
}

func run(nodes, sites int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	bin, err := localcluster.BinDir()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "slmops-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	began := time.Now()
	c, err := localcluster.Up(ctx, localcluster.Options{Dir: filepath.Join(dir, "cluster"), BinDir: bin, Nodes: 0, Sites: sites})
	if err != nil {
		return err
	}
	defer func() { _ = c.Down() }()
	startup := time.Since(began)

	began = time.Now()
	if err := c.EnsureNodes(ctx, nodes, sites); err != nil {
		return err
	}
	registration := time.Since(began)
	idle := rss(c)

	began = time.Now()
	labels := map[string]string{"app": "bench"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: "default"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/bench:1"}}},
			},
		},
	}
	if _, err := c.Clientset.AppsV1().DaemonSets("default").Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		return err
	}
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		got, err := c.Clientset.AppsV1().DaemonSets("default").Get(ctx, ds.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return got.Status.NumberReady == int32(nodes), nil
	})
	if err != nil {
		return fmt.Errorf("DaemonSet not ready on %d nodes: %w", nodes, err)
	}
	daemonSet := time.Since(began)
	loaded := rss(c)

	fmt.Printf("local control plane, %d simulated nodes in %d sites\n", nodes, sites)
	fmt.Printf("  %-44s %8.1f s\n", "control plane start (5 processes healthy)", startup.Seconds())
	fmt.Printf("  %-44s %8.1f s   (anchor)\n", fmt.Sprintf("register %d nodes, all Ready", nodes), registration.Seconds())
	fmt.Printf("  %-44s %8.1f s   ratio to anchor %.2fx\n", fmt.Sprintf("DaemonSet ready on %d nodes", nodes), daemonSet.Seconds(), daemonSet.Seconds()/registration.Seconds())
	fmt.Printf("  resident memory (MiB)      %10s %14s\n", "nodes only", "with DaemonSet")
	var totalIdle, totalLoaded int64
	for _, p := range c.Processes() {
		fmt.Printf("    %-24s %10d %14d\n", p.Name, idle[p.Name]>>20, loaded[p.Name]>>20)
		totalIdle += idle[p.Name]
		totalLoaded += loaded[p.Name]
	}
	fmt.Printf("    %-24s %10d %14d\n", "total", totalIdle>>20, totalLoaded>>20)
	return nil
}

// rss reads each component's resident set size.
func rss(c *localcluster.Cluster) map[string]int64 {
	out := map[string]int64{}
	for _, p := range c.Processes() {
		out[p.Name] = localcluster.MemoryBytes(p.PID, "VmRSS")
	}
	return out
}
