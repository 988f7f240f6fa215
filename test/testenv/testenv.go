// Package testenv starts envtest (a real etcd and kube-apiserver, no
// controllers) with the slmops CRDs installed, for controller and API
// integration tests. It uses the binaries that hack/build-controlplane.sh builds.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/test/localcluster"
)

// Env is a running envtest API server and a client for it.
type Env struct {
	*envtest.Environment
	// Client talks to the API server with the slmops types registered.
	Client client.Client
}

// RepoRoot is the root of this repository.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Start starts etcd and kube-apiserver and installs the CRDs of config/crd/bases.
// Call Stop when done.
func Start() (*Env, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		bin, err := localcluster.BinDir()
		if err != nil {
			return nil, err
		}
		if err := os.Setenv("KUBEBUILDER_ASSETS", bin); err != nil {
			return nil, err
		}
	}
	scheme := clientgoscheme.Scheme
	utilruntime.Must(slmopsv1alpha1.AddToScheme(scheme))
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest with the binaries in %s: %w", os.Getenv("KUBEBUILDER_ASSETS"), err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Env{Environment: env, Client: c}, nil
}

// Served reports whether the API server serves the kind, to check that the CRDs
// were installed.
func (e *Env) Served(gvk schema.GroupVersionKind) bool {
	_, err := e.Client.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	return err == nil
}
