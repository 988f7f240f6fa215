package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/inferd/config"
)

// TestTheCachePinsFollowTheRollout: the rollout's <rollout>-cache
// ConfigMap appears with every artifact of its revision, adds the new
// canary's while the stable one stays pinned, and drops the canary's when
// the spec goes back to the stable revision.
func TestTheCachePinsFollowTheRollout(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t)
	m := model(ns) // default sha256:..42, amd64 variant sha256:..43
	g.Expect(env.Client.Create(ctx, m)).To(Succeed())
	r := rollout(ns, "kiosks")
	g.Expect(env.Client.Create(ctx, r)).To(Succeed())
	digest := func(i int) string { return fmt.Sprintf("sha256:%064x", i) }
	pins := func(g Gomega) []string {
		var cm corev1.ConfigMap
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: slmopsv1alpha1.CacheConfigMapName("kiosks")}, &cm)).To(Succeed())
		g.Expect(metav1.IsControlledBy(&cm, r)).To(BeTrue())
		g.Expect(cm.Labels).To(HaveKeyWithValue(slmopsv1alpha1.ManagedByLabel, slmopsv1alpha1.ManagedByValue))
		var p config.Pins
		g.Expect(json.Unmarshal([]byte(cm.Data[config.PinsKey]), &p)).To(Succeed())
		return p.Digests
	}
	var first string
	g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(r), r)).To(Succeed())
		first = r.Status.StableRevision + r.Status.CanaryRevision
		g.Expect(first).NotTo(BeEmpty())
		g.Expect(pins(g)).To(Equal([]string{digest(42), digest(43)}))
	}).WithTimeout(20 * time.Second).Should(Succeed())

	// Paused, so that the new canary stays a canary whatever the nodes do.
	base := r.DeepCopy()
	r.Spec.Paused = true
	g.Expect(env.Client.Patch(ctx, r, client.MergeFrom(base))).To(Succeed())
	setDigest := func(i int) {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(m), m)).To(Succeed())
		m.Spec.Digest = digest(i)
		g.Expect(env.Client.Update(ctx, m)).To(Succeed())
	}
	setDigest(44)
	g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(r), r)).To(Succeed())
		g.Expect(r.Status.CanaryRevision).NotTo(BeEmpty())
		g.Expect(r.Status.CanaryRevision).NotTo(Equal(first))
		want := []string{digest(43), digest(44)}
		if r.Status.StableRevision == first {
			want = []string{digest(42), digest(43), digest(44)}
		}
		g.Expect(pins(g)).To(Equal(want))
	}).WithTimeout(20 * time.Second).Should(Succeed())

	// The spec goes back: the canary's file is no longer pinned.
	setDigest(42)
	g.Eventually(func(g Gomega) {
		g.Expect(pins(g)).To(Equal([]string{digest(42), digest(43)}))
	}).WithTimeout(20 * time.Second).Should(Succeed())
}

// TestTheReconcileReadsTheCacheInPlace: the manager's cache gives the
// rollout controller informer stores to read Nodes (all) and Pods (by
// namespace) from in place, the path it takes instead of copying lists;
// the objects are the store's own, slimmed by the cache's transforms.
func TestTheReconcileReadsTheCacheInPlace(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "inferd-x", Namespace: ns,
		Labels: map[string]string{slmopsv1alpha1.ManagedByLabel: slmopsv1alpha1.ManagedByValue, slmopsv1alpha1.RolloutLabel: "kiosks"}},
		Spec: corev1.PodSpec{NodeName: "edge-x", Containers: []corev1.Container{{Name: "inferd", Image: "registry.invalid/inferd:v1"}}}}
	g.Expect(env.Client.Create(ctx, pod)).To(Succeed())
	inf, err := mgr.GetCache().GetInformer(ctx, &corev1.Pod{})
	g.Expect(err).NotTo(HaveOccurred())
	si, ok := inf.(toolscache.SharedIndexInformer)
	g.Expect(ok).To(BeTrue(), "the manager's Pod informer %T has no store to read in place", inf)
	g.Eventually(func(g Gomega) {
		items, err := si.GetIndexer().ByIndex(toolscache.NamespaceIndex, ns)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(items).To(HaveLen(1))
		p := items[0].(*corev1.Pod)
		g.Expect(p.Spec.NodeName).To(Equal("edge-x"))
		g.Expect(p.Spec.Containers).To(BeEmpty(), "the cached pod is not the slim one")
	}).WithTimeout(10 * time.Second).Should(Succeed())
	inf, err = mgr.GetCache().GetInformer(ctx, &corev1.Node{})
	g.Expect(err).NotTo(HaveOccurred())
	_, ok = inf.(toolscache.SharedIndexInformer)
	g.Expect(ok).To(BeTrue(), "the manager's Node informer %T has no store to read in place", inf)
}
