package e2e

import (
	"context"
	"encoding/json"

	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/inferd/config"
)

// TestVariantsOnAMixedFleet: a model with an arm64 Q4_0 variant and an
// amd64 Q8_0 variant rolls out to the simulated fleet (ARM boards and x86
// mini PCs); every node ends with a ready pod of its architecture's
// variant, configured with that variant's file, and the status counts the
// nodes per variant.
func TestVariantsOnAMixedFleet(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := kube(t)
	ns := newNamespace(t, "e2e-variants")
	startOperator(t, ns)
	m := model(ns, digestOf(100))
	arm := slmopsv1alpha1.ModelVariant{
		Name: "arm64-q4", NodeSelector: slmopsv1alpha1.NodeSelector{MatchLabels: map[string]string{"kubernetes.io/arch": "arm64"}},
		Source: slmopsv1alpha1.ModelSource{HTTP: &slmopsv1alpha1.HTTPSource{URL: "https://models.example.com/tinyllama-q4_0.gguf"}},
		Digest: digestOf(101), Quantization: slmopsv1alpha1.QuantizationQ4_0,
	}
	x86 := slmopsv1alpha1.ModelVariant{
		Name: "amd64-q8", NodeSelector: slmopsv1alpha1.NodeSelector{MatchLabels: map[string]string{"kubernetes.io/arch": "amd64"}},
		Source: slmopsv1alpha1.ModelSource{HTTP: &slmopsv1alpha1.HTTPSource{URL: "https://models.example.com/tinyllama-q8_0.gguf"}},
		Digest: digestOf(102), Quantization: slmopsv1alpha1.QuantizationQ8_0,
	}
	m.Spec.Variants = []slmopsv1alpha1.ModelVariant{arm, x86}
	r := rollout(ns, "50%", "100%")
	createRollout(t, c, m, r)
	got := waitForPhase(t, c, r, slmopsv1alpha1.PhaseCompleted, "", 3*time.Minute, nil)

	want := map[string]slmopsv1alpha1.ModelVariant{"arm64": arm, "amd64": x86}
	nodes, err := cluster.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	perArch := map[string]int32{}
	for _, n := range nodes.Items {
		perArch[n.Labels["kubernetes.io/arch"]]++
	}
	g.Expect(perArch).To(HaveLen(2), "the simulated fleet mixes ARM and x86 nodes")

	g.Eventually(func(g Gomega) {
		var pods corev1.PodList
		g.Expect(c.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{slmopsv1alpha1.RevisionLabel: got.Status.StableRevision})).To(Succeed())
		archOf := map[string]string{}
		for _, n := range nodes.Items {
			archOf[n.Name] = n.Labels["kubernetes.io/arch"]
		}
		onNode := map[string]bool{}
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil || p.Spec.NodeName == "" {
				continue
			}
			v := want[archOf[p.Spec.NodeName]]
			g.Expect(p.Labels[slmopsv1alpha1.VariantLabel]).To(Equal(v.Name), "the pod on %s (%s)", p.Spec.NodeName, archOf[p.Spec.NodeName])
			var cfg config.Config
			for _, e := range p.Spec.Containers[0].Env {
				if e.Name == config.EnvConfig {
					g.Expect(json.Unmarshal([]byte(e.Value), &cfg)).To(Succeed())
				}
			}
			g.Expect(cfg.Model.Digest).To(Equal(v.Digest), "the pod on %s", p.Spec.NodeName)
			g.Expect(cfg.Model.Quantization).To(Equal(string(v.Quantization)))
			onNode[p.Spec.NodeName] = true
		}
		g.Expect(onNode).To(HaveLen(suiteNodes), "every node runs one pod of the stable revision")
	}).WithTimeout(time.Minute).Should(Succeed())

	counts := map[string]slmopsv1alpha1.VariantStatus{}
	for _, v := range get(t, c, r).Status.Variants {
		counts[v.Name] = v
	}
	g.Expect(counts["arm64-q4"].TargetNodes).To(Equal(perArch["arm64"]))
	g.Expect(counts["amd64-q8"].TargetNodes).To(Equal(perArch["amd64"]))
	g.Expect(counts["arm64-q4"].Digest).To(Equal(arm.Digest))
	g.Expect(counts[slmopsv1alpha1.DefaultVariant].TargetNodes).To(BeZero(), "no node is neither ARM nor x86")
	g.Expect(counts["arm64-q4"].ReadyNodes + counts["amd64-q8"].ReadyNodes).To(BeNumerically(">=", suiteNodes*9/10))
}
