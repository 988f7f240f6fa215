package e2e

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slmops/slmops/test/localcluster"
)

// TestSimulatedEdgeNodesLookLikeK3sAgents checks what the rollout controller will
// select and spread on: every node is Ready, a K3s agent, and the fleet mixes
// architectures and sites.
func TestSimulatedEdgeNodesLookLikeK3sAgents(t *testing.T) {
	g := NewWithT(t)
	nodes, err := cluster.Clientset.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(nodes.Items).To(HaveLen(suiteNodes))

	arches, sites := map[string]int{}, map[string]int{}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		g.Expect(localcluster.NodeReady(n)).To(BeTrue(), "node %s is not Ready", n.Name)
		g.Expect(n.Labels).To(HaveKeyWithValue("node.kubernetes.io/instance-type", "k3s"), n.Name)
		g.Expect(n.Status.NodeInfo.Architecture).To(Equal(n.Labels["kubernetes.io/arch"]), n.Name)
		mem := n.Status.Allocatable[corev1.ResourceMemory]
		g.Expect(mem.Value()).To(BeNumerically("<=", int64(16)<<30), "%s is not a small device", n.Name)
		arches[n.Labels["kubernetes.io/arch"]]++
		sites[n.Labels[localcluster.ZoneLabel]]++
	}
	g.Expect(arches).To(HaveKey("arm64"))
	g.Expect(arches).To(HaveKey("amd64"))
	g.Expect(sites).To(HaveLen(suiteSites))
	for site, count := range sites {
		g.Expect(count).To(BeNumerically(">=", suiteNodes/suiteSites), "site %s", site)
	}
}

// TestDaemonSetBecomesReadyOn50SimulatedNodes proves that the real DaemonSet
// controller, the real scheduler and kwok's simulated kubelets work together:
// a plain DaemonSet for 50 of the nodes reports 50 ready pods, one per node.
func TestDaemonSetBecomesReadyOn50SimulatedNodes(t *testing.T) {
	const want = 50
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-daemonset-"}}
	ns, err := cluster.Clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		_ = cluster.Clientset.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})

	labels := map[string]string{"app": "edge-probe"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "edge-probe", Namespace: ns.Name},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "probe", Image: "registry.invalid/edge-probe:1"}},
					Affinity:   &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: firstNodes(want)}}}}}}},
				},
			},
		},
	}
	_, err = cluster.Clientset.AppsV1().DaemonSets(ns.Name).Create(ctx, ds, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	g.Eventually(func(g Gomega) {
		got, err := cluster.Clientset.AppsV1().DaemonSets(ns.Name).Get(ctx, ds.Name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got.Status.DesiredNumberScheduled).To(BeEquivalentTo(want))
		g.Expect(got.Status.NumberReady).To(BeEquivalentTo(want))
	}).WithTimeout(2 * time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())

	// One Running, Ready pod on each node: the scheduler placed them, kwok ran them.
	pods, err := cluster.Clientset.CoreV1().Pods(ns.Name).List(ctx, metav1.ListOptions{LabelSelector: "app=edge-probe"})
	g.Expect(err).NotTo(HaveOccurred())
	perNode := map[string]int{}
	for _, p := range pods.Items {
		g.Expect(p.Status.Phase).To(Equal(corev1.PodRunning), p.Name)
		g.Expect(p.Spec.NodeName).NotTo(BeEmpty(), p.Name)
		perNode[p.Spec.NodeName]++
	}
	g.Expect(perNode).To(HaveLen(want))
	for node, n := range perNode {
		g.Expect(n).To(Equal(1), "pods on %s", node)
	}
}

// firstNodes names the first n simulated nodes.
func firstNodes(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = localcluster.NodeName(i, suiteSites)
	}
	return out
}
