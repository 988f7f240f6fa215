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

// computeStatus is the status of m when rollouts use it. Every artifact is
// pinned by the digest in the spec, so the model is resolved as soon as the
// spec is accepted; inferd verifies each download against it.
//
// The model is Reconciling while a rollout that uses it has not observed its
// generation, or is still moving (the rollout is Reconciling too). A GitOps
// tool that applies a new digest and then waits for every object's kstatus
// (Flux's wait and healthChecks) would otherwise find the model Current at
// once and the rollout still Current of the previous model for as long as
// the rollout controller takes to see the change, and report the new digest
// rolled out before its canary started. Observed alone is not enough: such a
// tool reads the rollouts and then the models, and a rollout may observe the
// model between the two reads. A model is Current only once, at the moment
// it is read, every rollout of it has settled on its generation (Completed,
// or failed, which the rollout's own kstatus reports).
func computeStatus(m *slmopsv1alpha1.SLMModel, rollouts []slmopsv1alpha1.EdgeRollout, now metav1.Time) slmopsv1alpha1.SLMModelStatus {
	st := *m.Status.DeepCopy()
	st.ObservedGeneration = m.Generation
	st.Digest = m.Spec.Digest
	st.SizeBytes = m.Spec.SizeBytes
	st.Rollouts = int32(len(rollouts))
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
	if pending := pendingRollouts(m, rollouts); pending > 0 {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: slmopsv1alpha1.ConditionReconciling, Status: metav1.ConditionTrue, ObservedGeneration: m.Generation,
			Reason: slmopsv1alpha1.ReasonRolloutsPending, LastTransitionTime: now,
			Message: fmt.Sprintf("%d of %d EdgeRollouts that use this model have not settled on generation %d yet", pending, len(rollouts), m.Generation),
		})
	} else {
		meta.RemoveStatusCondition(&st.Conditions, slmopsv1alpha1.ConditionReconciling)
	}
	return st
}

// pendingRollouts counts the rollouts that have not settled on m's
// generation: their status describes an older model, or an older spec of
// their own (one that may have named another model), or they are
// Reconciling. Rollouts being deleted do not count.
func pendingRollouts(m *slmopsv1alpha1.SLMModel, rollouts []slmopsv1alpha1.EdgeRollout) int {
	n := 0
	for i := range rollouts {
		ro := &rollouts[i]
		switch {
		case ro.DeletionTimestamp != nil:
		case ro.Status.ObservedModelGeneration != m.Generation, ro.Status.ObservedGeneration != ro.Generation,
			meta.IsStatusConditionTrue(ro.Status.Conditions, slmopsv1alpha1.ConditionReconciling):
			n++
		}
	}
	return n
}
