package edgerollout

import (
	"context"
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// storeInformers gives an informer per kind, whose stores the test fills.
type storeInformers struct {
	cache.Informers
	byType map[reflect.Type]toolscache.SharedIndexInformer
}

func (s storeInformers) GetInformer(_ context.Context, obj client.Object, _ ...cache.InformerGetOption) (cache.Informer, error) {
	return s.byType[reflect.TypeOf(obj)], nil
}

// TestCachedReadsTheStoreInPlace: with the manager's informers, a reconcile
// gets the stores' own objects (no copies), the pods of one namespace by
// its index; without them it lists through the client, with the same
// objects.
func TestCachedReadsTheStoreInPlace(t *testing.T) {
	ctx := context.Background()
	pod := func(ns, name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	pods := []*corev1.Pod{pod("a", "p1"), pod("a", "p2"), pod("b", "p3")}
	nodes := []*corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, {ObjectMeta: metav1.ObjectMeta{Name: "n2"}}}

	indexers := toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc}
	podInf := toolscache.NewSharedIndexInformer(&toolscache.ListWatch{}, &corev1.Pod{}, 0, indexers)
	nodeInf := toolscache.NewSharedIndexInformer(&toolscache.ListWatch{}, &corev1.Node{}, 0, indexers)
	var objs []client.Object
	for _, p := range pods {
		if err := podInf.GetIndexer().Add(p); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, p.DeepCopy())
	}
	for _, n := range nodes {
		if err := nodeInf.GetIndexer().Add(n); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, n.DeepCopy())
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	lister := &Reconciler{Client: fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()}
	inPlace := &Reconciler{Informers: storeInformers{byType: map[reflect.Type]toolscache.SharedIndexInformer{
		reflect.TypeFor[*corev1.Pod](): podInf, reflect.TypeFor[*corev1.Node](): nodeInf}}}

	names := func(os []client.Object) []string {
		var out []string
		for _, o := range os {
			out = append(out, o.GetNamespace()+"/"+o.GetName())
		}
		slices.Sort(out)
		return out
	}
	for _, r := range []*Reconciler{lister, inPlace} {
		gotPods, err := cached[corev1.Pod](ctx, r, &corev1.PodList{}, "a")
		if err != nil {
			t.Fatal(err)
		}
		gotNodes, err := cached[corev1.Node](ctx, r, &corev1.NodeList{}, "")
		if err != nil {
			t.Fatal(err)
		}
		var ps, ns []client.Object
		for _, p := range gotPods {
			ps = append(ps, p)
		}
		for _, n := range gotNodes {
			ns = append(ns, n)
		}
		if got := names(ps); !slices.Equal(got, []string{"a/p1", "a/p2"}) {
			t.Errorf("pods of namespace a: %v", got)
		}
		if got := names(ns); !slices.Equal(got, []string{"/n1", "/n2"}) {
			t.Errorf("nodes: %v", got)
		}
		if r == inPlace {
			for _, p := range gotPods {
				if !slices.Contains(pods, p) {
					t.Errorf("pod %s is a copy, not the store's own object", p.Name)
				}
			}
		}
	}
}
