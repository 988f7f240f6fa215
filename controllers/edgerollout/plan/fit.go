package plan

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// RuntimeMemoryBytes is inferd's own memory beyond the model's weights and
// KV cache (the Go runtime, the HTTP server, the forward pass's scratch
// buffers): what the fit check adds to inferd's estimate of a model.
const RuntimeMemoryBytes = 64 << 20

// fit is the target nodes that cannot hold the model of the rollout's
// revision, by name. A node that runs the revision already is never
// checked. Memory: once a pod of the revision has reported inferd's
// estimate for its artifact (the weights and the KV cache of every
// concurrent sequence at the context length, read from the file before it
// loaded it, as `inferd check` prints it), the estimate plus
// RuntimeMemoryBytes; before that, the artifact's sizeBytes plus
// spec.distribution.fit.memoryHeadroom. Disk: sizeBytes plus diskHeadroom.
func fit(in Input, targets []*Node) map[string]slmopsv1alpha1.ExcludedNode {
	f := in.Spec.Distribution.Fit
	memHeadroom, diskHeadroom := BytesOf(f.MemoryHeadroom), BytesOf(f.DiskHeadroom)
	estimates := memoryEstimates(in)
	needs := map[string]need{}
	for _, a := range in.Artifacts {
		size := ptr.Deref(a.SizeBytes, 0)
		n := need{size: size, memory: size + memHeadroom, disk: size + diskHeadroom}
		if e, ok := estimates[a.Name]; ok {
			n.memory, n.estimate, n.estimatedOn = e.bytes+RuntimeMemoryBytes, e.bytes, e.node
		} else if size <= 0 {
			n.memory = 0
		}
		if size <= 0 {
			n.disk = 0
		}
		needs[a.Name] = n
	}
	out := map[string]slmopsv1alpha1.ExcludedNode{}
	for _, n := range targets {
		if n.Revision == in.Revision {
			continue
		}
		if reason, message := needs[n.Variant].problem(n.Allocatable); reason != "" {
			out[n.Name] = slmopsv1alpha1.ExcludedNode{Node: n.Name, Reason: reason, Message: message}
		}
	}
	return out
}

// need is what a node must have for one artifact; 0 where nothing is known.
type need struct {
	size, memory, disk int64
	// estimate is inferd's estimate of the model's memory, reported by the
	// pod on node estimatedOn; 0 before one reported it.
	estimate    int64
	estimatedOn string
}

// estimate is the largest memory estimate reported for an artifact, and
// the node of the pod that reported it.
type estimate struct {
	bytes int64
	node  string
}

// memoryEstimates are, per artifact of the revision, the largest estimate
// that a pod of the revision reported for it (the digest in the report is
// the artifact's): the same file at the same runtime settings gives the
// same estimate on every node, so the first report is enough.
func memoryEstimates(in Input) map[string]estimate {
	digests := map[string]string{}
	for _, a := range in.Artifacts {
		digests[a.Name] = a.Digest
	}
	out := map[string]estimate{}
	for i := range in.Nodes {
		n := &in.Nodes[i]
		r := n.Pod.Report
		if n.Revision != in.Revision || in.Revision == "" || r == nil || r.MemoryEstimateBytes <= 0 || r.Digest != digests[n.Variant] {
			continue
		}
		if r.MemoryEstimateBytes > out[n.Variant].bytes {
			out[n.Variant] = estimate{bytes: r.MemoryEstimateBytes, node: n.Name}
		}
	}
	return out
}

// problem says why a node with allocatable resources cannot hold the
// artifact, or returns empty strings when it can or nothing is known.
func (nd need) problem(allocatable corev1.ResourceList) (reason, message string) {
	short := func(res corev1.ResourceName, need int64) (int64, bool) {
		alloc, known := allocatable[res]
		return alloc.Value(), need > 0 && known && alloc.Value() < need
	}
	if have, ok := short(corev1.ResourceMemory, nd.memory); ok {
		if nd.estimate > 0 {
			return slmopsv1alpha1.ExcludedInsufficientMemory, fmt.Sprintf("allocatable memory %s is less than the model needs: %s as inferd estimated it on %s "+
				"(the weights and the KV cache of spec.runtime.maxConcurrentRequests sequences at contextLength) plus %s for inferd itself (%s in all)",
				human(have), human(nd.estimate), nd.estimatedOn, human(RuntimeMemoryBytes), human(nd.memory))
		}
		return slmopsv1alpha1.ExcludedInsufficientMemory, fmt.Sprintf("allocatable memory %s is less than the model's %s plus headroom (%s in all)",
			human(have), human(nd.size), human(nd.memory))
	}
	if have, ok := short(corev1.ResourceEphemeralStorage, nd.disk); ok {
		return slmopsv1alpha1.ExcludedInsufficientDisk, fmt.Sprintf("allocatable ephemeral storage %s is less than the model's %s plus headroom (%s in all)",
			human(have), human(nd.size), human(nd.disk))
	}
	return "", ""
}

// human prints bytes in binary units, such as 3.8 GiB.
func human(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := int64(unit), 0
	for n := b / unit; n >= unit && exp < 4; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTP"[exp])
}

// BytesOf is a quantity of bytes; 0 when unset (the schema defaults the
// headrooms, see slmopsv1alpha1.DefaultEdgeRolloutSpec).
func BytesOf(q *resource.Quantity) int64 {
	if q == nil {
		return 0
	}
	return q.Value()
}
