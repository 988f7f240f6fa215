// Package e2e runs slmops end to end on a real local control plane (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler) with simulated K3s
// edge nodes played by kwok. One cluster serves the whole package; it is started
// in a temporary folder on free ports, so it runs beside `make demo`.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/slmops/slmops/test/localcluster"
)

// Shape of the suite's cluster.
const (
	suiteNodes = 50
	suiteSites = 4
)

// cluster is the control plane every test of this package uses.
var cluster *localcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	bin, err := localcluster.BinDir()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "slmops-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cluster, err = localcluster.Up(ctx, localcluster.Options{
		Dir: filepath.Join(dir, "cluster"), BinDir: bin, Nodes: suiteNodes, Sites: suiteSites, Progress: os.Stderr,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: start the local control plane: %v\n", err)
		return 1
	}
	defer func() {
		if err := cluster.Down(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: stop the local control plane: %v\n", err)
		}
	}()
	return m.Run()
}
