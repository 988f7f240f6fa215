package plan

import (
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// phaseConditions says, for each phase, which conditions are True. Ready,
// Reconciling and Stalled carry kstatus's meaning, so that Flux, Argo CD and
// `kubectl wait --for=condition=Ready` read a rollout's health without plugins:
// Current when Completed, InProgress while it moves or is held, Failed when it
// needs a person.
var phaseConditions = map[slmopsv1alpha1.RolloutPhase]map[string]bool{
	slmopsv1alpha1.PhasePending:     {slmopsv1alpha1.ConditionReconciling: true},
	slmopsv1alpha1.PhaseProgressing: {slmopsv1alpha1.ConditionReconciling: true, slmopsv1alpha1.ConditionProgressing: true},
	slmopsv1alpha1.PhasePaused:      {slmopsv1alpha1.ConditionReconciling: true, slmopsv1alpha1.ConditionPaused: true},
	slmopsv1alpha1.PhaseCompleted:   {slmopsv1alpha1.ConditionReady: true},
	slmopsv1alpha1.PhaseDegraded:    {slmopsv1alpha1.ConditionStalled: true, slmopsv1alpha1.ConditionDegraded: true},
	slmopsv1alpha1.PhaseRolledBack:  {slmopsv1alpha1.ConditionStalled: true, slmopsv1alpha1.ConditionDegraded: true},
	slmopsv1alpha1.PhaseAborted:     {slmopsv1alpha1.ConditionStalled: true},
}

// conditionTypes lists every condition an EdgeRollout carries, in the order
// they are written.
var conditionTypes = []string{
	slmopsv1alpha1.ConditionReady,
	slmopsv1alpha1.ConditionProgressing,
	slmopsv1alpha1.ConditionDegraded,
	slmopsv1alpha1.ConditionPaused,
	slmopsv1alpha1.ConditionReconciling,
	slmopsv1alpha1.ConditionStalled,
}

// SetPhase sets the phase and every condition of status to match it. reason is
// a CamelCase word for the True conditions (the phase's name when empty), and
// message says what happens for people. Conditions that keep their status keep
// their lastTransitionTime.
func SetPhase(status *slmopsv1alpha1.EdgeRolloutStatus, generation int64, phase slmopsv1alpha1.RolloutPhase, reason, message string, now metav1.Time) {
	status.Phase = phase
	status.ObservedGeneration = generation
	if reason == "" {
		reason = string(phase)
	}
	trueNow := phaseConditions[phase]
	for _, t := range conditionTypes {
		cond := metav1.Condition{
			Type:               t,
			Status:             metav1.ConditionFalse,
			ObservedGeneration: generation,
			Reason:             string(phase),
			Message:            "",
			LastTransitionTime: now,
		}
		if trueNow[t] {
			cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, reason, message
		}
		meta.SetStatusCondition(&status.Conditions, cond)
	}
}

// CountsOnly reports whether next differs from prev only in what it counts
// (the node counts, the per-variant, per-site and per-class figures, the staging
// counts and the words of the conditions), and not in anything decided
// (phase, step, revisions, reasons, failing or excluded nodes, history).
// The controller writes such a status at a bounded rate.
func CountsOnly(prev, next *slmopsv1alpha1.EdgeRolloutStatus) bool {
	strip := func(s *slmopsv1alpha1.EdgeRolloutStatus) *slmopsv1alpha1.EdgeRolloutStatus {
		c := s.DeepCopy()
		c.TargetNodes, c.CanaryNodes, c.ReadyNodes, c.UpdatedNodes, c.UnavailableNodes, c.UnreachableNodes = 0, 0, 0, 0, 0, 0
		c.Variants, c.HardwareClasses, c.Sites, c.SiteCount = nil, nil, nil, 0
		if d := c.Distribution; d != nil {
			d.StagedNodes, d.StagingNodes, d.WaitingNodes = 0, 0, 0
		}
		for i := range c.Conditions {
			c.Conditions[i].Message = ""
		}
		return c
	}
	return apiequality.Semantic.DeepEqual(strip(prev), strip(next))
}
