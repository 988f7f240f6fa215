// Package testenv starts envtest (a real etcd and kube-apiserver, no
// controllers) with the slmops CRDs installed, for controller and API
// integration tests. It uses the binaries that hack/build-controlplane.sh builds.
// It also holds what several test packages read the same way, such as the
// Argo CD health script.
//
// What it owns: starting and stopping that API server. What it may not
// touch: the controllers (the tests that use it start their own manager).
package testenv

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// CreateNamespace creates a namespace; one that already exists is fine.
func (e *Env) CreateNamespace(name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := e.Client.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// Kubectl runs the kubectl of KUBEBUILDER_ASSETS against the API server as an
// admin and returns its standard output; a failure includes standard error.
func (e *Env) Kubectl(args ...string) (string, error) {
	admin, err := e.AddUser(envtest.User{Name: "envtest-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	k, err := admin.Kubectl()
	if err != nil {
		return "", err
	}
	stdout, stderr, err := k.Run(args...)
	out, _ := io.ReadAll(stdout)
	if err != nil {
		errOut, _ := io.ReadAll(stderr)
		return string(out), fmt.Errorf("kubectl %v: %w: %s", args, err, errOut)
	}
	return string(out), nil
}
