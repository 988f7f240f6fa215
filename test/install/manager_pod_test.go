package install

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/slmops/slmops/test/localcluster"
	"github.com/slmops/slmops/test/skip"
	"github.com/slmops/slmops/test/testenv"
)

// managerLease is the manager's leader election Lease in its namespace.
const managerLease = "slmops-manager.slmops.dev"

// managerPods runs the pods of the chart's manager Deployment as real
// manager processes on the simulated nodes: the Deployment's own args (its
// ports bound on each pod's IP), its ServiceAccount's bound token where
// client-go looks for it, its probes, and its user (65532), through the
// process kubelet.
type managerPods struct {
	t    *testing.T
	root string
	log  *testenv.SyncBuffer
	pk   *localcluster.ProcessKubelet
	sel  labels.Selector
}

func runManagerPods(t *testing.T, selector map[string]string) *managerPods {
	t.Helper()
	if os.Geteuid() != 0 {
		// The pod's user, and its token where client-go looks for it (a
		// mount namespace), need root.
		skip.Because(t, "the chart installed, upgraded and uninstalled with its manager Deployment run as its own pods (their user 65532, their in-cluster token, leader election across two replicas): the process kubelet needs root for that",
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
	if err := copyFile(managerBin, bin); err != nil {
		t.Fatal(err)
	}
	m := &managerPods{t: t, root: root, log: &testenv.SyncBuffer{}, sel: labels.SelectorFromSet(selector)}
	m.pk, err = cluster.StartProcessKubelet(context.Background(), localcluster.ProcessKubeletOptions{
		Name: "manager", Selector: m.sel, Binary: bin, Root: root, Log: m.log, ArgsAsGiven: true, RunAsUser: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = m.pk.Stop()
		logs := m.logs()
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
				t.Errorf("the manager of pod %s was denied something it needs:\n%s", pod, grepLines(l, "is forbidden"))
			}
		}
		_ = os.RemoveAll(root)
	})
	return m
}

// pods lists the manager's pods.
func (m *managerPods) pods() []corev1.Pod {
	m.t.Helper()
	list, err := cluster.Clientset.CoreV1().Pods(releaseNS).List(context.Background(), metav1.ListOptions{LabelSelector: m.sel.String()})
	if err != nil {
		m.t.Fatal(err)
	}
	return list.Items
}

// logs is each pod's log, by pod name (the process kubelet keeps them in
// the pod's folder, named by UID).
func (m *managerPods) logs() map[string]string {
	out := map[string]string{}
	list, err := cluster.Clientset.CoreV1().Pods(releaseNS).List(context.Background(), metav1.ListOptions{LabelSelector: m.sel.String()})
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

// pid is the process of a pod's container, from its container ID.
func pid(p *corev1.Pod) int {
	for _, cs := range p.Status.ContainerStatuses {
		if n, err := strconv.Atoi(strings.TrimPrefix(cs.ContainerID, "process://")); err == nil && cs.State.Running != nil {
			return n
		}
	}
	return 0
}

// uidOf is the real user of a process.
func uidOf(pid int) (string, error) {
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

// holder is the identity that holds the manager's Lease.
func holder(ctx context.Context) (string, error) {
	lease, err := cluster.Clientset.CoordinationV1().Leases(releaseNS).Get(ctx, managerLease, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if lease.Spec.HolderIdentity == nil {
		return "", nil
	}
	return *lease.Spec.HolderIdentity, nil
}

// acquired counts, per pod, the times its log says it acquired the Lease
// (the log holds every run of the pod's process). The line does not name
// the identity: the pod whose count went up is the one that took the lead.
func (m *managerPods) acquired() map[string]int {
	out := map[string]int{}
	for pod, l := range m.logs() {
		out[pod] = strings.Count(l, "Successfully acquired lease")
	}
	return out
}

// waitReady waits until n manager pods run and are Ready, and returns them.
func (m *managerPods) waitReady(n int) []corev1.Pod {
	m.t.Helper()
	var ready []corev1.Pod
	NewWithT(m.t).Eventually(func(g Gomega) {
		ready = ready[:0]
		for _, p := range m.pods() {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && pid(&p) > 0 {
					ready = append(ready, p)
				}
			}
		}
		g.Expect(ready).To(HaveLen(n))
	}).WithTimeout(2*time.Minute).WithPolling(time.Second).Should(Succeed(), "%d Ready manager pods", n)
	return ready
}

func copyFile(from, to string) error {
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
