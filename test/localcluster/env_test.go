package localcluster

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// TestResourceFieldRefResolvesAsAKubeletDoes: limits.memory and limits.cpu
// are the container's limit, or the node's allocatable amount when the
// container has none, divided by the divisor and rounded up; another
// resource or container is an error that says so.
func TestResourceFieldRefResolvesAsAKubeletDoes(t *testing.T) {
	nodes := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	if err := nodes.Add(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "edge-1"}, Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
		corev1.ResourceMemory: resource.MustParse("4Gi"), corev1.ResourceCPU: resource.MustParse("2"),
	}}}); err != nil {
		t.Fatal(err)
	}
	p := &podProcess{k: &ProcessKubelet{nodeLister: corelisters.NewNodeLister(nodes)}}
	pod := &corev1.Pod{Spec: corev1.PodSpec{NodeName: "edge-1", Containers: []corev1.Container{
		{Name: "limited", Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse("1Gi"), corev1.ResourceCPU: resource.MustParse("500m")}}},
		{Name: "unlimited"},
	}}}
	for _, c := range []struct {
		container, resource, divisor, want string
	}{
		{"limited", "limits.memory", "1", "1073741824"},
		{"limited", "limits.memory", "1Mi", "1024"},
		{"unlimited", "limits.memory", "", "4294967296"},
		{"limited", "limits.cpu", "1m", "500"},
		{"limited", "limits.cpu", "1", "1"}, // rounded up
		{"unlimited", "limits.cpu", "1", "2"},
	} {
		ref := &corev1.ResourceFieldSelector{ContainerName: c.container, Resource: c.resource}
		if c.divisor != "" {
			ref.Divisor = resource.MustParse(c.divisor)
		}
		got, set, err := p.envValue(context.Background(), pod, corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: ref}})
		if err != nil || !set || got != c.want {
			t.Errorf("%s of %s, divisor %q: %q, %v, %v; want %s", c.resource, c.container, c.divisor, got, set, err, c.want)
		}
	}
	for _, ref := range []*corev1.ResourceFieldSelector{
		{ContainerName: "limited", Resource: "requests.ephemeral-storage"},
		{ContainerName: "missing", Resource: "limits.memory"},
	} {
		if _, _, err := p.envValue(context.Background(), pod, corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: ref}}); err == nil {
			t.Errorf("%s of %s resolved; want an error", ref.Resource, ref.ContainerName)
		}
	}
}
