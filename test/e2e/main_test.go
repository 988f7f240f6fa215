// Package e2e runs slmops end to end on a real local control plane (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler) with simulated K3s
// edge nodes played by kwok, and the real manager binary. One cluster serves
// the whole package; it is started in a temporary folder on free ports, so it
// runs beside `make demo`.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/slmops/slmops/test/localcluster"
	"github.com/slmops/slmops/test/testenv"
)

// Shape of the suite's cluster: a fleet of 200 nodes in 4 sites.
const (
	suiteNodes = 200
	suiteSites = 4
)

var (
	// cluster is the control plane every test of this package uses.
	cluster *localcluster.Cluster
	// managerBin is the manager binary built for the suite.
	managerBin string
)

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

	managerBin = filepath.Join(dir, "manager")
	if out, err := exec.Command("go", "build", "-o", managerBin, "github.com/slmops/slmops/cmd/manager").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build the manager: %v\n%s", err, out)
		return 1
	}

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
	if err := testenv.InstallCRDs(ctx, cluster); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: install the CRDs: %v\n", err)
		return 1
	}
	return m.Run()
}
