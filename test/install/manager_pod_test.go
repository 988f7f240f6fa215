package install

import (
	"context"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/test/testenv"
)

// TestManagerPodFailover installs the chart with two replicas, whose pods
// run as real manager processes (testenv.ManagerPods: the Deployment's
// args, its ServiceAccount's bound token, its probes, its user 65532): one
// leads and the other waits. The leader's process is killed (SIGKILL)
// while the sample rollout of config/samples is paused at its first step;
// the other pod takes the Lease, the rollout completes, and the killed
// process comes back in its pod with one restart. Then the chart is
// uninstalled.
func TestManagerPodFailover(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	managers, _ := installWithManagerPods(t, "leader failover between the chart's two manager pods during a rollout")
	t.Cleanup(func() {
		// The managers stop before their RBAC goes.
		if err := managers.Stop(); err != nil {
			t.Errorf("stop the manager pods: %v", err)
		}
		if out, err := helm("uninstall", release, "--namespace", releaseNS, "--wait"); err != nil {
			t.Errorf("helm uninstall: %v\n%s", err, out)
		}
	})

	pods := managers.WaitReady(2)
	for _, p := range pods {
		uid, err := testenv.ProcessUID(testenv.PodPID(&p))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(uid).To(Equal("65532"), "the manager of pod %s runs as the chart's user", p.Name)
	}
	// One leads, the other waits.
	var first, leader string
	var before map[string]int
	g.Eventually(func(g Gomega) {
		var err error
		first, err = managers.Holder(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(first).NotTo(BeEmpty())
		before = managers.Acquired()
		var leading []string
		for _, p := range pods {
			if before[p.Name] > 0 {
				leading = append(leading, p.Name)
			}
		}
		g.Expect(leading).To(HaveLen(1), "pods that acquired the Lease")
		leader = leading[0]
	}).WithTimeout(time.Minute).Should(Succeed(), "one manager pod leads, the other waits")

	// A sample rollout from an earlier test would not be in flight: the
	// leader removes it (its finalizer) before the samples are applied anew.
	c := kube(t)
	old := &slmopsv1alpha1.EdgeRollout{}
	old.Namespace, old.Name = "stores", "tinyllama-stores"
	if err := c.Delete(ctx, old); err == nil {
		g.Eventually(func() bool {
			return apierrors.IsNotFound(c.Get(ctx, client.ObjectKeyFromObject(old), old))
		}).WithTimeout(time.Minute).Should(BeTrue(), "the earlier sample rollout's finalizer did not finish")
	} else {
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "delete the earlier sample rollout: %v", err)
	}

	// The leader dies while the rollout is under way.
	applySamples(t, "stores")
	waitForSamplePhase(t, "stores", slmopsv1alpha1.PhasePaused)
	var leaderPID int
	for _, p := range managers.Pods() {
		if p.Name == leader {
			leaderPID = testenv.PodPID(&p)
		}
	}
	g.Expect(leaderPID).To(BeNumerically(">", 0))
	g.Expect(syscall.Kill(leaderPID, syscall.SIGKILL)).To(Succeed())
	killed := time.Now()
	var next string
	g.Eventually(func() (string, error) {
		var err error
		next, err = managers.Holder(ctx)
		return next, err
	}).WithTimeout(time.Minute).WithPolling(250*time.Millisecond).ShouldNot(Or(Equal(first), BeEmpty()), "leadership after the leader was killed")
	took := time.Since(killed)
	var successor string
	g.Eventually(func() string {
		for pod, n := range managers.Acquired() {
			if n > before[pod] {
				successor = pod
			}
		}
		return successor
	}).WithTimeout(10*time.Second).ShouldNot(BeEmpty(), "the log of the pod that took the lead")
	who := "pod " + successor
	if successor == leader {
		who = "the killed pod's restarted process"
	}
	t.Logf("leadership passed from pod %s to %s %.1f s after SIGKILL (new identity %s)", leader, who, took.Seconds(), next)
	completeSampleRollout(t, "stores")

	// The killed process came back in its pod; no liveness probe killed
	// a healthy manager.
	for _, p := range managers.Pods() {
		want := 0
		if p.Name == leader {
			want = 1
		}
		g.Expect(p.Status.ContainerStatuses).To(HaveLen(1))
		g.Expect(p.Status.ContainerStatuses[0].RestartCount).To(BeEquivalentTo(want), "restarts of pod %s", p.Name)
	}
}
