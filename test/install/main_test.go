// Package install tests how slmops is installed: the Helm chart
// (charts/slmops) rendered, linted, and installed, upgraded and uninstalled
// with the helm binary on a real local control plane, where the operator
// configured and authorized as the chart configures it reconciles the
// sample rollout; and the kustomize base (config/default) applied with
// kubectl. The cluster is its own, with a few simulated K3s nodes, because
// these tests own the CRDs.
//
// What it owns: the install paths users take. What it may not touch: the
// chart or manifests themselves (it reads and applies them as they are).
package install

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/slmops/slmops/test/localcluster"
	"github.com/slmops/slmops/test/testenv"
)

const (
	clusterNodes = 20
	clusterSites = 2
)

var (
	cluster    *localcluster.Cluster
	managerBin string
	helmBin    string
	kubectlBin string
	root       = testenv.RepoRoot()
	chartDir   = filepath.Join(testenv.RepoRoot(), "charts", "slmops")
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	helmBin = os.Getenv("SLMOPS_HELM")
	if helmBin == "" {
		helmBin = filepath.Join(root, "bin", "helm-current", "helm")
	}
	if _, err := os.Stat(helmBin); err != nil {
		fmt.Fprintf(os.Stderr, "install: no helm binary at %s (make helm builds it): %v\n", helmBin, err)
		return 1
	}
	suite, err := testenv.StartSuite("install", clusterNodes, clusterSites)
	if err != nil {
		fmt.Fprintf(os.Stderr, "install: %v\n", err)
		return 1
	}
	defer func() {
		if err := suite.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "install: %v\n", err)
		}
	}()
	cluster, managerBin, kubectlBin = suite.Cluster, suite.ManagerBin, filepath.Join(suite.BinDir, "kubectl")
	return m.Run()
}

// helm runs the helm binary against the cluster (when there is one) and
// returns its combined output.
func helm(args ...string) (string, error) {
	cmd := exec.Command(helmBin, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+os.TempDir()+"/slmops-helm-cache",
		"HELM_CONFIG_HOME="+os.TempDir()+"/slmops-helm-config", "HELM_DATA_HOME="+os.TempDir()+"/slmops-helm-data")
	if cluster != nil {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+cluster.Kubeconfig)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// kubectl runs kubectl against the cluster and returns its combined output.
func kubectl(args ...string) (string, error) {
	out, err := exec.Command(kubectlBin, append([]string{"--kubeconfig", cluster.Kubeconfig}, args...)...).CombinedOutput()
	return string(out), err
}
