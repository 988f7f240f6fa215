package localcluster

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func TestSpreadNodes(t *testing.T) {
	fleetOf := func(n, sites int) []corev1.Node {
		var nodes []corev1.Node
		for i := range n {
			nodes = append(nodes, *SimulatedNode(i, sites))
		}
		return nodes
	}
	for name, tc := range map[string]struct {
		nodes []corev1.Node
		n     int
		want  []string
	}{
		"two nodes are one of each architecture at two sites": {
			nodes: fleetOf(12, 4), n: 2,
			want: []string{"edge-01-0001", "edge-02-0006"},
		},
		"four nodes in four sites are one per site, two per architecture": {
			nodes: fleetOf(12, 4), n: 4,
			want: []string{"edge-01-0001", "edge-02-0006", "edge-03-0003", "edge-04-0004"},
		},
		"one site: the architectures alternate": {
			nodes: fleetOf(6, 1), n: 3,
			want: []string{"edge-01-0001", "edge-01-0002", "edge-01-0003"},
		},
		"more than there are: all of them": {
			nodes: fleetOf(2, 1), n: 5,
			want: []string{"edge-01-0001", "edge-01-0002"},
		},
		"none": {nodes: fleetOf(3, 1), n: 0},
	} {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, spreadNodes(tc.nodes, tc.n)); diff != "" {
				t.Errorf("spreadNodes (-want +got):\n%s", diff)
			}
		})
	}
}
