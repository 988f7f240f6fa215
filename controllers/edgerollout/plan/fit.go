package plan

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// fit is the target nodes that cannot hold the model of the rollout's
// revision with the headroom of spec.distribution.fit, by name. A node that
// runs the revision already is never checked.
func fit(in Input, targets []Node) map[string]slmopsv1alpha1.ExcludedNode {
	size := map[string]int64{}
	for _, a := range in.Artifacts {
		size[a.Name] = ptr.Deref(a.SizeBytes, 0)
	}
	f := in.Spec.Distribution.Fit
	memHeadroom, diskHeadroom := BytesOf(f.MemoryHeadroom), BytesOf(f.DiskHeadroom)
	out := map[string]slmopsv1alpha1.ExcludedNode{}
	for _, n := range targets {
		if n.Revision == in.Revision {
			continue
		}
		if reason, message := fitProblem(n.Allocatable, size[n.Variant], memHeadroom, diskHeadroom); reason != "" {
			out[n.Name] = slmopsv1alpha1.ExcludedNode{Node: n.Name, Reason: reason, Message: message}
		}
	}
	return out
}

// fitProblem says why a node with allocatable resources cannot hold a model of size bytes with the
// given headroom of memory and disk, or returns empty strings when it can or
// nothing is known.
func fitProblem(allocatable corev1.ResourceList, size, memHeadroom, diskHeadroom int64) (reason, message string) {
	if size <= 0 {
		return "", ""
	}
	check := func(res corev1.ResourceName, headroom int64) (have, need int64, ok bool) {
		alloc, known := allocatable[res]
		need = size + headroom
		return alloc.Value(), need, !known || alloc.Value() >= need
	}
	if have, need, ok := check(corev1.ResourceMemory, memHeadroom); !ok {
		return slmopsv1alpha1.ExcludedInsufficientMemory, fmt.Sprintf("allocatable memory %s is less than the model's %s plus headroom (%s in all)",
			human(have), human(size), human(need))
	}
	if have, need, ok := check(corev1.ResourceEphemeralStorage, diskHeadroom); !ok {
		return slmopsv1alpha1.ExcludedInsufficientDisk, fmt.Sprintf("allocatable ephemeral storage %s is less than the model's %s plus headroom (%s in all)",
			human(have), human(size), human(need))
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
