package testenv

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/test/localcluster"
)

// InstallCRDs applies the CRDs of config/crd/bases to a local cluster and waits
// until discovery serves their kinds: a manager started before that fails to
// set up its watches.
func InstallCRDs(ctx context.Context, c *localcluster.Cluster) error {
	files, err := filepath.Glob(filepath.Join(RepoRoot(), "config", "crd", "bases", "*.yaml"))
	if err != nil {
		return err
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := c.Apply(ctx, data); err != nil {
			return err
		}
	}
	return WaitForCRDs(ctx, c)
}

// WaitForCRDs waits until discovery serves the slmops kinds, however the
// CRDs were installed (kubectl, Helm, kustomize).
func WaitForCRDs(ctx context.Context, c *localcluster.Cluster) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		res, err := c.Clientset.Discovery().ServerResourcesForGroupVersion(slmopsv1alpha1.GroupVersion.String())
		if err != nil {
			return false, nil //nolint:nilerr // not served yet
		}
		kinds := map[string]bool{}
		for _, r := range res.APIResources {
			kinds[r.Kind] = true
		}
		return kinds["SLMModel"] && kinds["EdgeRollout"], nil
	})
}
