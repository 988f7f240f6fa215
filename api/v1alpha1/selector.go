package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// LabelSelector converts s to the metav1 form; nil selects everything.
func (s *NodeSelector) LabelSelector() *metav1.LabelSelector {
	if s == nil {
		return &metav1.LabelSelector{}
	}
	out := &metav1.LabelSelector{MatchLabels: s.MatchLabels}
	for _, r := range s.MatchExpressions {
		out.MatchExpressions = append(out.MatchExpressions, metav1.LabelSelectorRequirement{
			Key: r.Key, Operator: r.Operator, Values: r.Values,
		})
	}
	return out
}

// Selector returns s as a labels.Selector; nil selects everything.
func (s *NodeSelector) Selector() (labels.Selector, error) {
	return metav1.LabelSelectorAsSelector(s.LabelSelector())
}
