package localcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// BinDirEnv names the environment variable that points at the control plane
// binaries; the Makefile sets it to bin/k8s.
const BinDirEnv = "SLMOPS_K8S_BIN"

// BinDir returns the folder of the control plane binaries: $SLMOPS_K8S_BIN, or
// bin/k8s at the root of this repository. It is an error, not a reason to skip,
// when they are missing: the tests that need them are the point of the suite.
func BinDir() (string, error) {
	dir := os.Getenv(BinDirEnv)
	if dir == "" {
		_, file, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(file), "..", "..", "bin", "k8s")
	}
	if _, err := os.Stat(filepath.Join(dir, apiServerName)); err != nil {
		return "", fmt.Errorf("control plane binaries not found in %s: run `make test`, or hack/build-controlplane.sh first (%w)", dir, err)
	}
	return filepath.Abs(dir)
}
