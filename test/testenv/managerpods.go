package testenv

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/slmops/slmops/test/localcluster"
	"github.com/slmops/slmops/test/skip"
)

// ManagerLease is the manager's leader election Lease, in the namespace the
// manager runs in.
const ManagerLease = "slmops-manager.slmops.dev"

// ManagerPods runs the pods of a manager Deployment (the chart's, or
// config/default's) as real manager processes on the simulated nodes,
// through the process kubelet: the Deployment's own args (its ports bound
// on each pod's IP), its ServiceAccount's bound token where client-go looks
// for it, its probes, and its user (65532).
type ManagerPods struct {
	t         testing.TB
	c         *localcluster.Cluster
	namespace string
	root      string
	log       *SyncBuffer
	pk        *localcluster.ProcessKubelet
	sel       labels.Selector
	stopOnce  sync.Once
	stopErr   error
}

// RunManagerPods starts the process kubelet for the pods in namespace that
// selector matches, with managerBin as their binary; it stops when the test
// ends, and fails the test if a manager's log shows a request the API
// server denied. The pods' user and their token (a mount namespace) need
// root: without it the test skips, and says what it did not check.
func RunManagerPods(t testing.TB, c *localcluster.Cluster, namespace string, selector map[string]string, managerBin, notChecked string) *ManagerPods {
	t.Helper()
	if os.Geteuid() != 0 {
		skip.Because(t, notChecked+": the process kubelet needs root to run the manager's pods as their user (65532) with their in-cluster token",
			"run make test as root (as CI does)")
	}
	root, err := os.MkdirTemp("", "slmops-manager-pods-")
	if err != nil {
		t.Fatal(err)
	}
	// The processes run as the pod's user, who must reach their folders
	// and the binary.
	if err := os.Chmod(root, 0o755); err != nil { //nolint:gosec // the pods' user reads it
		t.Fatal(err)
	}
	bin := filepath.Join(root, "manager")
	if err := copyExecutable(managerBin, bin); err != nil {
		t.Fatal(err)
	}
	m := &ManagerPods{t: t, c: c, namespace: namespace, root: root, log: &SyncBuffer{}, sel: labels.SelectorFromSet(selector)}
	m.pk, err = c.StartProcessKubelet(context.Background(), localcluster.ProcessKubeletOptions{
		Name: "manager-" + namespace, Selector: m.sel, Binary: bin, Root: root, Log: m.log, ArgsAsGiven: true, RunAsUser: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("stop the manager pods' process kubelet: %v", err)
		}
		logs := m.Logs()
		if t.Failed() {
			t.Logf("process kubelet log:\n%s", m.log.String())
			for pod, l := range logs {
				if len(l) > 8000 {
					l = l[len(l)-8000:]
				}
				t.Logf("manager pod %s log (end):\n%s", pod, l)
			}
		}
		// A manager that was denied something says so in its log.
		for pod, l := range logs {
			if strings.Contains(l, "is forbidden") {
				t.Errorf("the manager of pod %s was denied something it needs:\n%s", pod, GrepLines(l, "is forbidden"))
			}
		}
		_ = os.RemoveAll(root)
	})
	return m
}

// Stop stops the process kubelet and the manager processes it runs (the
// managers shut down gracefully, releasing their Lease). A test that
// removes the managers' RBAC (an uninstall) stops them first, so that no
// manager is denied a request in its last moments. Later calls return the
// first call's error.
func (m *ManagerPods) Stop() error {
	m.stopOnce.Do(func() { m.stopErr = m.pk.Stop() })
	return m.stopErr
}

// Pods lists the manager's pods.
func (m *ManagerPods) Pods() []corev1.Pod {
	m.t.Helper()
	list, err := m.c.Clientset.CoreV1().Pods(m.namespace).List(context.Background(), metav1.ListOptions{LabelSelector: m.sel.String()})
	if err != nil {
		m.t.Fatal(err)
	}
	return list.Items
}

// Logs is each pod's log, by pod name (the process kubelet keeps them in
// the pod's folder, named by UID; the log holds every run of its process).
func (m *ManagerPods) Logs() map[string]string {
	out := map[string]string{}
	list, err := m.c.Clientset.CoreV1().Pods(m.namespace).List(context.Background(), metav1.ListOptions{LabelSelector: m.sel.String()})
	if err != nil {
		return out
	}
	for _, p := range list.Items {
		if b, err := os.ReadFile(filepath.Join(m.root, "pods", string(p.UID), "log")); err == nil {
			out[p.Name] = string(b)
		}
	}
	return out
}

// Acquired counts, per pod, the times its log says it acquired the Lease.
// The line does not name the identity: the pod whose count went up is the
// one that took the lead.
func (m *ManagerPods) Acquired() map[string]int {
	out := map[string]int{}
	for pod, l := range m.Logs() {
		out[pod] = strings.Count(l, "Successfully acquired lease")
	}
	return out
}

// Holder is the identity that holds the manager's Lease, or "".
func (m *ManagerPods) Holder(ctx context.Context) (string, error) {
	lease, err := m.c.Clientset.CoordinationV1().Leases(m.namespace).Get(ctx, ManagerLease, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if lease.Spec.HolderIdentity == nil {
		return "", nil
	}
	return *lease.Spec.HolderIdentity, nil
}

// WaitReady waits up to two minutes until n manager pods run and are
// Ready, and returns them; it fails the test otherwise.
func (m *ManagerPods) WaitReady(n int) []corev1.Pod {
	m.t.Helper()
	var ready []corev1.Pod
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		ready = ready[:0]
		for _, p := range m.Pods() {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && PodPID(&p) > 0 {
					ready = append(ready, p)
				}
			}
		}
		if len(ready) == n {
			return ready
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("%d Ready manager pods after 2 minutes, want %d", len(ready), n)
		}
	}
}

// PodPID is the process of a process pod's running container, from its
// container ID, or 0.
func PodPID(p *corev1.Pod) int {
	for _, cs := range p.Status.ContainerStatuses {
		if n, err := strconv.Atoi(strings.TrimPrefix(cs.ContainerID, "process://")); err == nil && cs.State.Running != nil {
			return n
		}
	}
	return 0
}

// ProcessUID is the real user of a process.
func ProcessUID(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "Uid:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return f[0], nil
			}
		}
	}
	return "", fmt.Errorf("no Uid in /proc/%d/status", pid)
}

// GrepLines is the lines of s that contain sub.
func GrepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func copyExecutable(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755) //nolint:gosec // an executable
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
