package plan

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// maxAffinityTerms bounds the node affinity of one variant's DaemonSet:
// "this variant's selector and none of the earlier ones'" multiplies out
// into one term per combination of the earlier selectors' requirements.
const maxAffinityTerms = 64

// Artifact is one file of a model, the default or a variant, and the nodes
// it runs on.
type Artifact struct {
	Name         string
	Source       slmopsv1alpha1.ModelSource
	Digest       string
	Quantization slmopsv1alpha1.Quantization
	SizeBytes    *int64
	// Affinity selects the artifact's nodes; nil means every node (a model
	// without variants).
	Affinity *corev1.NodeSelector
}

// Artifacts lists a model's files and their nodes: each variant runs on the
// nodes its nodeSelector matches and no earlier variant's does, the default
// on the nodes no variant matches. A file that no node can get (after a
// variant that matches every node) is left out.
func Artifacts(m *slmopsv1alpha1.SLMModel) ([]Artifact, error) {
	spec := m.Spec
	def := Artifact{Name: slmopsv1alpha1.DefaultVariant, Source: spec.Source, Digest: spec.Digest, Quantization: spec.Quantization, SizeBytes: spec.SizeBytes}
	if len(spec.Variants) == 0 {
		return []Artifact{def}, nil
	}
	var out []Artifact
	var earlier [][]corev1.NodeSelectorRequirement
	for _, v := range spec.Variants {
		sel := requirements(&v.NodeSelector)
		terms, err := excluding([][]corev1.NodeSelectorRequirement{sel}, earlier)
		if err != nil {
			return nil, fmt.Errorf("variant %s: %w", v.Name, err)
		}
		earlier = append(earlier, sel)
		if len(terms) == 0 {
			continue
		}
		out = append(out, Artifact{Name: v.Name, Source: v.Source, Digest: v.Digest, Quantization: v.Quantization,
			SizeBytes: v.SizeBytes, Affinity: nodeSelector(terms)})
	}
	terms, err := excluding([][]corev1.NodeSelectorRequirement{nil}, earlier)
	if err != nil {
		return nil, fmt.Errorf("the default artifact: %w", err)
	}
	if len(terms) > 0 {
		def.Affinity = nodeSelector(terms)
		out = append(out, def)
	}
	return out, nil
}

// variantOf is the artifact that a node with these labels runs.
func variantOf(m *slmopsv1alpha1.SLMModel, nodeLabels map[string]string) string {
	return VariantMatcher(m)(nodeLabels)
}

// VariantMatcher builds the variants' selectors once, for matching every
// node of a reconcile.
func VariantMatcher(m *slmopsv1alpha1.SLMModel) func(nodeLabels map[string]string) string {
	type named struct {
		name string
		sel  labels.Selector
	}
	var sels []named
	for _, v := range m.Spec.Variants {
		if sel, err := v.NodeSelector.Selector(); err == nil {
			sels = append(sels, named{v.Name, sel})
		}
	}
	return func(nodeLabels map[string]string) string {
		for _, s := range sels {
			if s.sel.Matches(labels.Set(nodeLabels)) {
				return s.name
			}
		}
		return slmopsv1alpha1.DefaultVariant
	}
}

// requirements are a selector's matchLabels and matchExpressions as node
// selector requirements, which all must hold.
func requirements(s *slmopsv1alpha1.NodeSelector) []corev1.NodeSelectorRequirement {
	keys := make([]string, 0, len(s.MatchLabels))
	for k := range s.MatchLabels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []corev1.NodeSelectorRequirement
	for _, k := range keys {
		out = append(out, corev1.NodeSelectorRequirement{Key: k, Operator: corev1.NodeSelectorOpIn, Values: []string{s.MatchLabels[k]}})
	}
	for _, r := range s.MatchExpressions {
		out = append(out, corev1.NodeSelectorRequirement{Key: r.Key, Operator: corev1.NodeSelectorOperator(r.Operator), Values: r.Values})
	}
	return out
}

// negate is the requirement that holds exactly where r does not (NotIn and
// DoesNotExist hold on nodes without the label, as in label selectors).
func negate(r corev1.NodeSelectorRequirement) corev1.NodeSelectorRequirement {
	n := r
	switch r.Operator {
	case corev1.NodeSelectorOpIn:
		n.Operator = corev1.NodeSelectorOpNotIn
	case corev1.NodeSelectorOpNotIn:
		n.Operator = corev1.NodeSelectorOpIn
	case corev1.NodeSelectorOpExists:
		n.Operator = corev1.NodeSelectorOpDoesNotExist
	case corev1.NodeSelectorOpDoesNotExist:
		n.Operator = corev1.NodeSelectorOpExists
	}
	return n
}

// excluding ANDs terms (ORed lists of ANDed requirements) with the negation
// of every selector in others: not(a and b) is (not a) or (not b), so each
// term splits into one per requirement of each excluded selector. A
// selector without requirements matches every node, and excluding it leaves
// no term.
func excluding(terms [][]corev1.NodeSelectorRequirement, others [][]corev1.NodeSelectorRequirement) ([][]corev1.NodeSelectorRequirement, error) {
	for _, sel := range others {
		var next [][]corev1.NodeSelectorRequirement
		for _, t := range terms {
			for _, r := range sel {
				next = append(next, append(slices.Clone(t), negate(r)))
			}
		}
		if len(next) > maxAffinityTerms {
			return nil, fmt.Errorf("the variants' nodeSelectors need more than %d node affinity terms to tell their nodes apart; use fewer requirements in the earlier variants", maxAffinityTerms)
		}
		terms = next
	}
	return terms, nil
}

// nodeSelector is the node affinity of ORed terms; nil when a term has no
// requirement, which holds on every node (the API's empty term would match
// none).
func nodeSelector(terms [][]corev1.NodeSelectorRequirement) *corev1.NodeSelector {
	ns := &corev1.NodeSelector{}
	for _, t := range terms {
		if len(t) == 0 {
			return nil
		}
		ns.NodeSelectorTerms = append(ns.NodeSelectorTerms, corev1.NodeSelectorTerm{MatchExpressions: t})
	}
	return ns
}

// variantCounts counts target nodes and ready ones per artifact; nil for a
// model without variants.
func variantCounts(arts []Artifact, nodes []Node) []slmopsv1alpha1.VariantStatus {
	if !slices.ContainsFunc(arts, func(a Artifact) bool { return a.Name != slmopsv1alpha1.DefaultVariant }) {
		return nil
	}
	byName := map[string]*slmopsv1alpha1.VariantStatus{}
	out := make([]slmopsv1alpha1.VariantStatus, 0, len(arts))
	for _, a := range arts {
		out = append(out, slmopsv1alpha1.VariantStatus{Name: a.Name, Digest: a.Digest})
	}
	for i := range out {
		byName[out[i].Name] = &out[i]
	}
	for _, n := range nodes {
		v := byName[n.Variant]
		if !n.Target || v == nil {
			continue
		}
		v.TargetNodes++
		if n.Pod.Ready {
			v.ReadyNodes++
		}
	}
	return out
}

// maxSites bounds status.sites.
const maxSites = 100

// noSite names the site of target nodes without the topology key.
const noSite = "(none)"

// siteCounts counts the target nodes per site, with the canary, ready and
// failing ones: sites with nodes that are not ready first (what an
// operator looks for), then by name. The status lists the first maxSites.
func (d *decider) siteCounts() []slmopsv1alpha1.SiteStatus {
	failing := map[string]bool{}
	for _, f := range d.st.FailingNodes {
		failing[f.Node] = true
	}
	for n := range d.failing {
		failing[n] = true
	}
	bySite := map[string]*slmopsv1alpha1.SiteStatus{}
	for _, n := range d.all {
		name := n.Site
		if name == "" {
			name = noSite
		}
		s := bySite[name]
		if s == nil {
			s = &slmopsv1alpha1.SiteStatus{Name: name}
			bySite[name] = s
		}
		s.TargetNodes++
		if d.st.CanaryRevision != "" && n.Revision == d.st.CanaryRevision {
			s.CanaryNodes++
		}
		if n.Revision != "" && n.Pod.Ready && n.Reachable {
			s.ReadyNodes++
		}
		if failing[n.Name] {
			s.FailingNodes++
		}
	}
	if len(bySite) == 0 {
		return nil
	}
	out := make([]slmopsv1alpha1.SiteStatus, 0, len(bySite))
	for _, s := range bySite {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b slmopsv1alpha1.SiteStatus) int {
		if ua, ub := a.TargetNodes-a.ReadyNodes, b.TargetNodes-b.ReadyNodes; (ua > 0) != (ub > 0) {
			if ua > 0 {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}
