package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/slmops/slmops/test/localcluster"
)

// Suite is what an end-to-end test package shares: a local control plane
// with simulated edge nodes, and the manager binary built for it.
type Suite struct {
	Cluster    *localcluster.Cluster
	ManagerBin string
	// BinDir holds the control plane's binaries (kubectl among them).
	BinDir string
	dir    string
}

// StartSuite builds the manager and starts a local control plane with nodes
// simulated K3s nodes in sites sites, in a temporary folder named after the
// suite. Stop tears it down.
func StartSuite(name string, nodes, sites int) (*Suite, error) {
	bin, err := localcluster.BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "slmops-"+name+"-")
	if err != nil {
		return nil, err
	}
	s := &Suite{BinDir: bin, dir: dir, ManagerBin: filepath.Join(dir, "manager")}
	if out, err := exec.Command("go", "build", "-o", s.ManagerBin, "github.com/slmops/slmops/cmd/manager").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("build the manager: %w\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s.Cluster, err = localcluster.Up(ctx, localcluster.Options{
		Dir: filepath.Join(dir, "cluster"), BinDir: bin, Nodes: nodes, Sites: sites, Progress: os.Stderr,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start the local control plane: %w", err)
	}
	return s, nil
}

// Stop stops the control plane and removes the suite's folder.
func (s *Suite) Stop() error {
	defer os.RemoveAll(s.dir)
	if err := s.Cluster.Down(); err != nil {
		return fmt.Errorf("stop the local control plane: %w", err)
	}
	return nil
}
