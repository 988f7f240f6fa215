package plan

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/test/testutil"
)

// TestVariantAffinityAgreesWithFirstMatch: on every node, exactly one
// artifact's DaemonSet affinity (as the scheduler's own matcher reads it)
// matches, and it is the first variant whose selector matches the node, or
// the default; that is also the variant status counts the node under.
func TestVariantAffinityAgreesWithFirstMatch(t *testing.T) {
	sel := func(labels map[string]string, exprs ...slmopsv1alpha1.NodeSelectorRequirement) slmopsv1alpha1.NodeSelector {
		return slmopsv1alpha1.NodeSelector{MatchLabels: labels, MatchExpressions: exprs}
	}
	req := func(key string, op metav1.LabelSelectorOperator, values ...string) slmopsv1alpha1.NodeSelectorRequirement {
		return slmopsv1alpha1.NodeSelectorRequirement{Key: key, Operator: op, Values: values}
	}
	models := map[string][]slmopsv1alpha1.NodeSelector{
		"none":    nil,
		"by arch": {sel(map[string]string{"kubernetes.io/arch": "arm64"}), sel(map[string]string{"kubernetes.io/arch": "amd64"})},
		"overlapping": {
			sel(map[string]string{"kubernetes.io/arch": "arm64", "memory": "large"}),
			sel(nil, req("kubernetes.io/arch", metav1.LabelSelectorOpIn, "arm64", "riscv64")),
			sel(nil, req("accelerator", metav1.LabelSelectorOpExists), req("memory", metav1.LabelSelectorOpNotIn, "small")),
			sel(nil, req("accelerator", metav1.LabelSelectorOpDoesNotExist), req("kubernetes.io/arch", metav1.LabelSelectorOpIn, "amd64")),
		},
		"catch-all first": {sel(nil), sel(map[string]string{"kubernetes.io/arch": "amd64"})},
	}
	var nodes []map[string]string
	for _, arch := range []string{"arm64", "amd64", "riscv64", ""} {
		for _, memory := range []string{"small", "large", ""} {
			for _, accel := range []string{"npu", ""} {
				l := map[string]string{}
				for k, v := range map[string]string{"kubernetes.io/arch": arch, "memory": memory, "accelerator": accel} {
					if v != "" {
						l[k] = v
					}
				}
				nodes = append(nodes, l)
			}
		}
	}
	for name, selectors := range models {
		t.Run(name, func(t *testing.T) {
			m := &slmopsv1alpha1.SLMModel{Spec: slmopsv1alpha1.SLMModelSpec{Digest: testutil.Digest(0), Quantization: slmopsv1alpha1.QuantizationQ4_0}}
			for i, s := range selectors {
				m.Spec.Variants = append(m.Spec.Variants, slmopsv1alpha1.ModelVariant{
					Name: fmt.Sprintf("v%d", i), NodeSelector: s, Digest: testutil.Digest(i + 1), Quantization: slmopsv1alpha1.QuantizationQ8_0,
				})
			}
			arts, err := Artifacts(m)
			if err != nil {
				t.Fatal(err)
			}
			var state []Node
			for i, l := range nodes {
				node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("n%d", i), Labels: l}}
				var matched []string
				for _, a := range arts {
					if a.Affinity == nil {
						matched = append(matched, a.Name)
						continue
					}
					ok, err := nodeaffinity.NewLazyErrorNodeSelector(a.Affinity).Match(node)
					if err != nil {
						t.Fatalf("%s's affinity: %v", a.Name, err)
					}
					if ok {
						matched = append(matched, a.Name)
					}
				}
				want := variantOf(m, l)
				if len(matched) != 1 || matched[0] != want {
					t.Errorf("node %v: the affinities of %v match; want only %s", l, matched, want)
				}
				state = append(state, Node{Name: node.Name, Target: true, Variant: want, Pod: Pod{Ready: i%2 == 0}})
			}
			counts := variantCounts(arts, state)
			if len(selectors) == 0 {
				if counts != nil {
					t.Errorf("a model without variants counts %v", counts)
				}
				return
			}
			total := int32(0)
			for _, c := range counts {
				total += c.TargetNodes
			}
			if total != int32(len(nodes)) {
				t.Errorf("variant counts %v add up to %d nodes of %d", counts, total, len(nodes))
			}
		})
	}
}
