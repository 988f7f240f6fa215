// Package e2e runs slmops end to end on a real local control plane (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler) with simulated K3s
// edge nodes played by kwok, and the real manager binary. One cluster serves
// the whole package; it is started in a temporary folder on free ports, so it
// runs beside `make demo`.
//
// What it owns: user stories against the whole system. What it may not
// touch: the operator's internals; it drives and reads the cluster only
// through the API, kubectl-slm and the processes' own endpoints.
package e2e

import (
	"context"
	"fmt"
	"os"
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
	suite, err := testenv.StartSuite("e2e", suiteNodes, suiteSites)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer func() {
		if err := suite.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		}
	}()
	cluster, managerBin = suite.Cluster, suite.ManagerBin
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := testenv.InstallCRDs(ctx, cluster); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: install the CRDs: %v\n", err)
		return 1
	}
	return m.Run()
}
