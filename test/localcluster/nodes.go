package localcluster

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Labels and annotations of the simulated nodes.
const (
	// SimulatedLabel marks the nodes this package creates, so that it deletes only those.
	SimulatedLabel = "slmops.dev/simulated"
	// ZoneLabel is the well-known topology label; each site is one zone.
	ZoneLabel = "topology.kubernetes.io/zone"
	// kwokNodeAnnotation makes kwok manage a node (see --manage-nodes-with-annotation-selector).
	kwokNodeAnnotation = "kwok.x-k8s.io/node"
	// nodeWriteConcurrency bounds concurrent node writes: enough to create 1,000
	// nodes in seconds without tripping the API server's inflight limits.
	nodeWriteConcurrency = 32
)

// hardware is the capacity of a class of small edge device.
type hardware struct {
	arch, cpu, memory, storage string
}

// fleet mixes the devices an edge fleet has: mostly ARM boards, some small x86 boxes.
var fleet = []hardware{
	{arch: "arm64", cpu: "4", memory: "4Gi", storage: "64Gi"},   // a 4 GB ARM board
	{arch: "arm64", cpu: "4", memory: "8Gi", storage: "128Gi"},  // an 8 GB ARM board
	{arch: "amd64", cpu: "4", memory: "16Gi", storage: "256Gi"}, // a mini PC
}

// NodeName is the name of simulated node i (0-based) of a cluster with the given
// number of sites; nodes are dealt round-robin over the sites.
func NodeName(i, sites int) string {
	return fmt.Sprintf("edge-%02d-%04d", i%sites+1, i+1)
}

// SiteName is the zone of simulated node i.
func SiteName(i, sites int) string {
	return fmt.Sprintf("site-%02d", i%sites+1)
}

// SimulatedNode returns simulated node i: a K3s agent on a small device at one site.
func SimulatedNode(i, sites int) *corev1.Node {
	hw := fleet[i%len(fleet)]
	name := NodeName(i, sites)
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse(hw.cpu),
		corev1.ResourceMemory:           resource.MustParse(hw.memory),
		corev1.ResourceEphemeralStorage: resource.MustParse(hw.storage),
		corev1.ResourcePods:             resource.MustParse("110"),
	}
	allocatable := capacity.DeepCopy()
	// What a K3s agent leaves for the system on such a device.
	mem := allocatable[corev1.ResourceMemory]
	mem.Sub(resource.MustParse("256Mi"))
	allocatable[corev1.ResourceMemory] = mem
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				"kubernetes.io/hostname":           name,
				"kubernetes.io/os":                 "linux",
				"kubernetes.io/arch":               hw.arch,
				"beta.kubernetes.io/os":            "linux",
				"beta.kubernetes.io/arch":          hw.arch,
				"node.kubernetes.io/instance-type": "k3s",
				ZoneLabel:                          SiteName(i, sites),
				"topology.kubernetes.io/region":    "edge",
				SimulatedLabel:                     "true",
			},
			Annotations: map[string]string{
				kwokNodeAnnotation:             "fake",
				"node.alpha.kubernetes.io/ttl": "0",
				"k3s.io/hostname":              name,
				"k3s.io/internal-ip":           "10.127.0.1",
			},
		},
		Spec: corev1.NodeSpec{PodCIDR: fmt.Sprintf("10.%d.%d.0/24", 128+i/256%64, i%256)},
		// status.nodeInfo is left to kwok, which fills it in.
		Status: corev1.NodeStatus{Capacity: capacity, Allocatable: allocatable},
	}
}

// EnsureNodes makes the cluster have exactly n simulated nodes spread over
// sites, and waits until all of them are Ready. Nodes that already exist are
// left as they are; surplus simulated nodes are deleted.
func (c *Cluster) EnsureNodes(ctx context.Context, n, sites int) error {
	began := time.Now()
	if sites <= 0 {
		sites = 1
	}
	existing, err := c.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: SimulatedLabel + "=true"})
	if err != nil {
		return fmt.Errorf("list simulated nodes: %w", err)
	}
	want := make(map[string]bool, n)
	for i := range n {
		want[NodeName(i, sites)] = true
	}
	have := make(map[string]bool, len(existing.Items))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(nodeWriteConcurrency)
	deleted := 0
	for _, node := range existing.Items {
		have[node.Name] = true
		if !want[node.Name] {
			deleted++
			g.Go(func() error {
				err := c.Clientset.CoreV1().Nodes().Delete(gctx, node.Name, metav1.DeleteOptions{})
				if err != nil && !apierrors.IsNotFound(err) {
					return fmt.Errorf("delete node %s: %w", node.Name, err)
				}
				return nil
			})
		}
	}
	created := 0
	for i := range n {
		if have[NodeName(i, sites)] {
			continue
		}
		created++
		g.Go(func() error {
			_, err := c.Clientset.CoreV1().Nodes().Create(gctx, SimulatedNode(i, sites), metav1.CreateOptions{})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("create node %s: %w", NodeName(i, sites), err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	c.opts.progress("==> Simulated edge nodes: %d created, %d deleted, %d in %d sites; waiting until all are Ready", created, deleted, n, sites)

	var ready int
	// Three minutes, and more for a fleet past 3,000 nodes: kwok brings
	// about 25 nodes a second up on 2 cores.
	timeout := max(3*time.Minute, time.Duration(n)*60*time.Millisecond)
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		list, err := c.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{
			LabelSelector:   SimulatedLabel + "=true",
			ResourceVersion: "0", // served from the watch cache: cheap at 1,000 nodes
		})
		if err != nil {
			return false, nil //nolint:nilerr // a transient error: poll again
		}
		ready = 0
		for i := range list.Items {
			if NodeReady(&list.Items[i]) {
				ready++
			}
		}
		return ready == n && len(list.Items) == n, nil
	})
	if err != nil {
		// The tail, not only the path: a cluster that fails to start is
		// removed, logs and all.
		kwokLog := filepath.Join(c.Dir, "logs", kwokName+".log")
		return fmt.Errorf("%d of %d simulated nodes Ready: %w; the end of %s:\n%s", ready, n, err, kwokLog, tail(kwokLog, 15))
	}
	c.opts.progress("==> %d simulated edge nodes Ready in %.1fs", n, time.Since(began).Seconds())
	return nil
}

// NodeReady reports whether the node's Ready condition is True.
func NodeReady(node *corev1.Node) bool {
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}
