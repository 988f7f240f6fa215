// Package slmmodel reconciles the status of SLMModels: the artifacts they pin
// and how many EdgeRollouts use them.
//
// What it owns: the status of SLMModels. What it may not touch: their spec
// (Git owns it), EdgeRollouts and anything on the nodes; it finds the
// rollouts of a model through controllers/index, never through the
// edgerollout package.
package slmmodel

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// computeStatus is the status of m when rollouts EdgeRollouts use it. Every
// artifact is pinned by the digest in the spec, so the model is resolved as
// soon as the spec is accepted; inferd verifies each download against it.
func computeStatus(m *slmopsv1alpha1.SLMModel, rollouts int32, now metav1.Time) slmopsv1alpha1.SLMModelStatus {
	st := *m.Status.DeepCopy()
	st.ObservedGeneration = m.Generation
	st.Digest = m.Spec.Digest
	st.SizeBytes = m.Spec.SizeBytes
	st.Rollouts = rollouts
	st.Artifacts = []slmopsv1alpha1.ResolvedArtifact{{Digest: m.Spec.Digest, SizeBytes: m.Spec.SizeBytes}}
	for _, v := range m.Spec.Variants {
		st.Artifacts = append(st.Artifacts, slmopsv1alpha1.ResolvedArtifact{Variant: v.Name, Digest: v.Digest, SizeBytes: v.SizeBytes})
	}
	msg := fmt.Sprintf("%d artifact(s) pinned by sha256 digest", len(st.Artifacts))
	for _, t := range []string{slmopsv1alpha1.ConditionResolved, slmopsv1alpha1.ConditionReady} {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: t, Status: metav1.ConditionTrue, ObservedGeneration: m.Generation,
			Reason: slmopsv1alpha1.ReasonDigestPinned, Message: msg, LastTransitionTime: now,
		})
	}
	return st
}
