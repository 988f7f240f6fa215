package localcluster

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPodsMarkedNotReadyComeBackOnLiveNodesOnly: the controller-manager
// clears the Ready condition of every pod of a node whose Lease it saw
// lapse, as it does when kwok falls behind on Leases at fleet scale. On a
// node whose simulated kubelet lives, the pod turns Ready again on its own,
// as with a real kubelet's next status sync; on a node a test took offline
// it stays not Ready until the node returns, then turns Ready.
func TestPodsMarkedNotReadyComeBackOnLiveNodesOnly(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c, err := Up(ctx, Options{Dir: filepath.Join(t.TempDir(), "cluster"), BinDir: testBinDir(t), Nodes: 2, Sites: 1})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = c.Down() })

	pods := c.Clientset.CoreV1().Pods("default")
	podOn := func(node string) *corev1.Pod {
		p, err := pods.Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "ready-again-"},
			Spec: corev1.PodSpec{
				NodeName:    node,
				Containers:  []corev1.Container{{Name: "c", Image: "registry.invalid/x:1"}},
				Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			},
		}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		return p
	}
	ready := func(p *corev1.Pod) func() (bool, error) {
		return func() (bool, error) {
			got, err := pods.Get(ctx, p.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, cond := range got.Status.Conditions {
				if cond.Type == corev1.PodReady {
					return cond.Status == corev1.ConditionTrue, nil
				}
			}
			return false, nil
		}
	}
	live, cut := podOn(NodeName(0, 1)), podOn(NodeName(1, 1))
	g.Eventually(ready(live)).WithTimeout(30 * time.Second).Should(BeTrue())
	g.Eventually(ready(cut)).WithTimeout(30 * time.Second).Should(BeTrue())

	// What the node lifecycle controller writes when a node's Lease lapses:
	// Ready False, the rest kept. (It does not when the kubelet itself
	// reports the node NotReady, as the offline stage does.)
	markNotReady := func(p *corev1.Pod) {
		t.Helper()
		got, err := pods.Get(ctx, p.Name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		for i := range got.Status.Conditions {
			if got.Status.Conditions[i].Type == corev1.PodReady {
				got.Status.Conditions[i].Status = corev1.ConditionFalse
				got.Status.Conditions[i].Reason = "NodeNotReady"
			}
		}
		_, err = pods.UpdateStatus(ctx, got, metav1.UpdateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ready(p)()).To(BeFalse())
	}
	markNotReady(live)
	g.Eventually(ready(live)).WithTimeout(30*time.Second).Should(BeTrue(), "the live node's pod stayed not Ready")

	// Offline, nothing brings the pod back while the node is away.
	g.Expect(c.SetNodeOffline(ctx, NodeName(1, 1), true)).To(Succeed())
	markNotReady(cut)
	g.Consistently(ready(cut)).WithTimeout(12*time.Second).Should(BeFalse(), "the offline node's pod came back while the node was away")
	g.Expect(c.SetNodeOffline(ctx, NodeName(1, 1), false)).To(Succeed())
	g.Eventually(ready(cut)).WithTimeout(60*time.Second).Should(BeTrue(), "the pod did not come back with its node")
}
