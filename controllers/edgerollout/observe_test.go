package edgerollout

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/controllers/edgerollout/plan"
)

// fleet is a rollout halfway through its switch on n nodes in 10 sites, as
// the manager's cache holds it: slim nodes (labels as a K3s agent and the
// local cluster set them, allocatable, Ready), each with the serving pod
// of its revision, half of them on the new one.
func fleet(b *testing.B, n int) (*Reconciler, *slmopsv1alpha1.EdgeRollout, *slmopsv1alpha1.SLMModel) {
	b.Helper()
	mu := intstr.FromString("10%")
	m := &slmopsv1alpha1.SLMModel{
		ObjectMeta: metav1.ObjectMeta{Name: "model", Namespace: "bench", Generation: 1},
		Spec: slmopsv1alpha1.SLMModelSpec{
			Source:       slmopsv1alpha1.ModelSource{HTTP: &slmopsv1alpha1.HTTPSource{URL: "https://models.example.com/model.gguf"}},
			Digest:       fmt.Sprintf("sha256:%064x", 2),
			Quantization: slmopsv1alpha1.QuantizationQ4_0,
		},
	}
	ro := &slmopsv1alpha1.EdgeRollout{
		ObjectMeta: metav1.ObjectMeta{Name: "fleet", Namespace: "bench", Generation: 2},
		Spec: slmopsv1alpha1.EdgeRolloutSpec{
			ModelRef: slmopsv1alpha1.LocalObjectReference{Name: "model"},
			Template: slmopsv1alpha1.InferdTemplate{Image: "registry.invalid/inferd:v1"},
			Strategy: slmopsv1alpha1.RolloutStrategy{Canary: slmopsv1alpha1.CanaryStrategy{
				MaxUnavailable: &mu, MinReadySeconds: ptr.To[int32](0), ProgressDeadlineSeconds: 1200,
				TopologyKey: "topology.kubernetes.io/zone",
				Steps:       []slmopsv1alpha1.CanaryStep{{Nodes: intstr.Parse("1%")}, {Nodes: intstr.Parse("50%")}, {Nodes: intstr.Parse("100%")}},
			}},
		},
	}
	r := &Reconciler{Now: time.Now}
	slmopsv1alpha1.DefaultEdgeRolloutSpec(&ro.Spec)
	slmopsv1alpha1.DefaultSLMModelSpec(&m.Spec)
	revNew := computeRevision(ro, m, r.Defaults)
	revOld := "0123456789"
	ro.Status.StableRevision = revOld
	ro.Status.CanaryRevision = revNew

	indexers := toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc}
	podInf := toolscache.NewSharedIndexInformer(&toolscache.ListWatch{}, &corev1.Pod{}, 0, indexers)
	nodeInf := toolscache.NewSharedIndexInformer(&toolscache.ListWatch{}, &corev1.Node{}, 0, indexers)
	cohort := slmopsv1alpha1.CohortLabel(ro.Namespace, ro.Name)
	for i := range n {
		name := fmt.Sprintf("edge-%05d", i)
		rev := revOld
		if i%2 == 0 {
			rev = revNew
		}
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
				"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64",
				"beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "arm64", "node.kubernetes.io/instance-type": "k3s",
				"topology.kubernetes.io/zone": fmt.Sprintf("site-%02d", i%10), "topology.kubernetes.io/region": "edge",
				"slmops.dev/simulated": "true", cohort: rev,
			}},
			Status: corev1.NodeStatus{
				Allocatable: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("3840Mi"), corev1.ResourceCPU: resource.MustParse("4")},
				Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			},
		}
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ro.Namespace, Name: "fleet-" + rev + "-" + name, Labels: map[string]string{
				slmopsv1alpha1.RolloutLabel: ro.Name, slmopsv1alpha1.RevisionLabel: rev,
				"controller-revision-hash": "5d8f7c9b6", "pod-template-generation": "1",
			}, CreationTimestamp: metav1.Now()},
			Spec: corev1.PodSpec{NodeName: name},
			Status: corev1.PodStatus{Phase: corev1.PodRunning,
				Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}},
				ContainerStatuses: []corev1.ContainerStatus{{Name: "inferd", Ready: true}}},
		}
		if err := nodeInf.GetIndexer().Add(node); err != nil {
			b.Fatal(err)
		}
		if err := podInf.GetIndexer().Add(pod); err != nil {
			b.Fatal(err)
		}
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		b.Fatal(err)
	}
	if err := slmopsv1alpha1.AddToScheme(scheme); err != nil {
		b.Fatal(err)
	}
	r.Client = fake.NewClientBuilder().WithScheme(scheme).Build()
	r.Informers = storeInformers{byType: map[reflect.Type]toolscache.SharedIndexInformer{
		reflect.TypeFor[*corev1.Pod](): podInf, reflect.TypeFor[*corev1.Node](): nodeInf}}
	return r, ro, m
}

// BenchmarkObserveAndDecide is a reconcile's reading of the cache and its
// decision, for a rollout halfway through its switch, at 1,000 and 5,000
// nodes: the CPU that every reconcile spends before it writes anything.
func BenchmarkObserveAndDecide(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			r, ro, m := fleet(b, n)
			b.ReportAllocs()
			for b.Loop() {
				s, err := r.observe(ctx, ro.DeepCopy(), m.DeepCopy())
				if err != nil {
					b.Fatal(err)
				}
				if got := len(s.obs.in.Nodes); got != n {
					b.Fatalf("observed %d nodes, want %d", got, n)
				}
				_ = plan.Compute(s.obs.in)
			}
		})
	}
}
