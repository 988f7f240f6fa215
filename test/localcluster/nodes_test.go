package localcluster

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func TestSimulatedNodesSpreadOverSitesAndHardware(t *testing.T) {
	const n, sites = 12, 4
	perSite, perArch, names := map[string]int{}, map[string]int{}, map[string]bool{}
	for i := range n {
		node := SimulatedNode(i, sites)
		if names[node.Name] {
			t.Fatalf("node name %s used twice", node.Name)
		}
		names[node.Name] = true
		perSite[node.Labels[ZoneLabel]]++
		perArch[node.Labels["kubernetes.io/arch"]]++
		capacity, allocatable := node.Status.Capacity[corev1.ResourceMemory], node.Status.Allocatable[corev1.ResourceMemory]
		if allocatable.Cmp(capacity) >= 0 {
			t.Errorf("%s: allocatable memory %s is not below capacity %s", node.Name, allocatable.String(), capacity.String())
		}
		if node.Annotations[kwokNodeAnnotation] != "fake" {
			t.Errorf("%s: kwok would not manage it: annotations %v", node.Name, node.Annotations)
		}
	}
	if diff := cmp.Diff(map[string]int{"site-01": 3, "site-02": 3, "site-03": 3, "site-04": 3}, perSite); diff != "" {
		t.Errorf("nodes per site (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"arm64": 8, "amd64": 4}, perArch); diff != "" {
		t.Errorf("nodes per architecture (-want +got):\n%s", diff)
	}
}
