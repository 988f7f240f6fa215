package localcluster

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Labels of the nodes whose pods a process kubelet runs as processes.
const (
	// ProcessNodeLabel marks a node whose pods (those a process kubelet
	// selects) run as local processes: kubectl get nodes -l shows them, and a
	// rollout's nodeSelector can aim at them.
	ProcessNodeLabel = "slmops.dev/process-node"
	// ProcessCPULabel bounds the CPU of the processes of a node's pods (a
	// quantity: "500m", "2"), so that hardware classes differ measurably on
	// one machine. See cpu.go.
	ProcessCPULabel = "slmops.dev/process-cpu"
)

// DefaultProcessCPU is the CPU bound per architecture that make cluster-up
// and the e2e helpers give the nodes they choose: an ARM board half a core,
// an x86 mini PC two, so that GOMAXPROCS (1 and 2), the CFS quota and the
// CPU share all differ by class. Half a core rather than one: a quota of a
// whole core never throttles a process that computes on one thread, so
// two classes of 1 and 2 cores would decode a small model about as fast.
var DefaultProcessCPU = map[string]string{"arm64": "500m", "amd64": "2"}

// ChooseProcessNodes picks n of the cluster's simulated nodes spread over
// the architectures and sites (see spreadNodes), labels them ProcessNodeLabel
// and, where cpuByArch names their architecture, ProcessCPULabel, and
// removes both labels from every other simulated node. It returns the names
// for ProcessKubeletOptions.Nodes.
func (c *Cluster) ChooseProcessNodes(ctx context.Context, n int, cpuByArch map[string]string) ([]string, error) {
	list, err := c.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: SimulatedLabel + "=true"})
	if err != nil {
		return nil, fmt.Errorf("list simulated nodes: %w", err)
	}
	if n > len(list.Items) {
		return nil, fmt.Errorf("%d process nodes asked for, the cluster has %d simulated nodes", n, len(list.Items))
	}
	chosen := spreadNodes(list.Items, n)
	isChosen := map[string]bool{}
	for _, name := range chosen {
		isChosen[name] = true
	}
	for i := range list.Items {
		node := &list.Items[i]
		want := map[string]any{ProcessNodeLabel: nil, ProcessCPULabel: nil}
		if isChosen[node.Name] {
			want[ProcessNodeLabel] = "true"
			if cpu, ok := cpuByArch[node.Labels[corev1.LabelArchStable]]; ok {
				want[ProcessCPULabel] = cpu
			}
		}
		changed := false
		for k, v := range want {
			have, ok := node.Labels[k]
			if (v == nil && ok) || (v != nil && (!ok || have != v)) {
				changed = true
			}
		}
		if !changed {
			continue
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": want}})
		if _, err := c.Clientset.CoreV1().Nodes().Patch(ctx, node.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldOwner}); err != nil {
			return nil, fmt.Errorf("label process node %s: %w", node.Name, err)
		}
	}
	return chosen, nil
}

// spreadNodes picks n nodes so that the architectures, and then the sites,
// are as evenly represented as they can be: each pick is a node of the
// architecture least chosen so far and, among those, of the site least
// chosen, the lowest name first. So 2 nodes are an arm64 and an amd64 one at
// two sites, and 4 in 4 sites are one per site.
func spreadNodes(nodes []corev1.Node, n int) []string {
	left := slices.Clone(nodes)
	slices.SortFunc(left, func(a, b corev1.Node) int { return cmp.Compare(a.Name, b.Name) })
	byArch, bySite := map[string]int{}, map[string]int{}
	var chosen []string
	for range min(n, len(left)) {
		best := 0
		for i := 1; i < len(left); i++ {
			a, b := &left[i], &left[best]
			archA, archB := byArch[a.Labels[corev1.LabelArchStable]], byArch[b.Labels[corev1.LabelArchStable]]
			siteA, siteB := bySite[a.Labels[ZoneLabel]], bySite[b.Labels[ZoneLabel]]
			if archA < archB || (archA == archB && siteA < siteB) {
				best = i
			}
		}
		node := left[best]
		left = slices.Delete(left, best, best+1)
		byArch[node.Labels[corev1.LabelArchStable]]++
		bySite[node.Labels[ZoneLabel]]++
		chosen = append(chosen, node.Name)
	}
	slices.Sort(chosen)
	return chosen
}
