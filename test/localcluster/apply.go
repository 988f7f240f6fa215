package localcluster

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

//go:embed stages.yaml
var stagesYAML []byte

// fieldOwner is the server-side apply field manager of this package.
const fieldOwner = "slmops-localcluster"

// installStages installs kwok's Stage CRD and the project's node and pod stages.
func (c *Cluster) installStages(ctx context.Context) error {
	crd, err := os.ReadFile(filepath.Join(c.opts.BinDir, "kwok-stages-crd.yaml"))
	if err != nil {
		return err
	}
	if err := c.Apply(ctx, crd); err != nil {
		return fmt.Errorf("install kwok Stage CRD: %w", err)
	}
	if err := c.Apply(ctx, stagesYAML); err != nil {
		return fmt.Errorf("install kwok stages: %w", err)
	}
	c.opts.progress("    %-24s installed", "kwok stages")
	return nil
}

// Apply server-side applies every object of a multi-document YAML stream. Kinds
// that the API server does not serve yet (a CRD applied just before) are retried
// for up to 30 seconds.
func (c *Cluster) Apply(ctx context.Context, manifests []byte) error {
	cl, err := client.New(c.Config, client.Options{})
	if err != nil {
		return err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("decode manifest: %w", err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		var last error
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			last = cl.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(fieldOwner), client.ForceOwnership)
			switch {
			case last == nil:
				return true, nil
			case meta.IsNoMatchError(last), apierrors.IsNotFound(last):
				return false, nil // the kind is not served yet
			default:
				return false, last
			}
		})
		if err != nil {
			return fmt.Errorf("apply %s %s: %w", obj.GetKind(), obj.GetName(), last)
		}
	}
}
