package v1alpha1_test

import (
	"strings"
	"testing"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// TestNamesDoNotChange pins the names that existing clusters carry: a node's
// cohort and stage labels and a rollout's ConfigMaps are found again by these
// names after an operator upgrade, so a change of their hashing or cutting
// would strand every labelled node. The expected values were computed by the
// functions as they were in controllers/edgerollout before they moved here.
func TestNamesDoNotChange(t *testing.T) {
	long := "a-rollout-name-that-is-long-enough-to-need-cutting-down"
	for _, c := range []struct {
		namespace, name, cohort, stage string
	}{
		{"edge", "shops", "cohort.slmops.dev/edge.shops", "stage.slmops.dev/edge.shops"},
		{"default", "kiosks", "cohort.slmops.dev/default.kiosks", "stage.slmops.dev/default.kiosks"},
		{"retail-eu-west", long,
			"cohort.slmops.dev/retail-eu-west.a-rollout-name-that-is-long-eno-636aacf11c3ecd41",
			"stage.slmops.dev/retail-eu-west.a-rollout-name-that-is-long-eno-636aacf11c3ecd41"},
		{"ns", strings.Repeat("a", 70),
			"cohort.slmops.dev/ns.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-7640400df6e2d2b5",
			"stage.slmops.dev/ns.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-7640400df6e2d2b5"},
		{strings.Repeat("n", 63), "r",
			"cohort.slmops.dev/nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn-2f3e45733347b937",
			"stage.slmops.dev/nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn-2f3e45733347b937"},
	} {
		if got := slmopsv1alpha1.CohortLabel(c.namespace, c.name); got != c.cohort {
			t.Errorf("CohortLabel(%q, %q) = %q, want %q", c.namespace, c.name, got, c.cohort)
		}
		if got := slmopsv1alpha1.StageLabel(c.namespace, c.name); got != c.stage {
			t.Errorf("StageLabel(%q, %q) = %q, want %q", c.namespace, c.name, got, c.stage)
		}
		if name := strings.TrimPrefix(c.cohort, slmopsv1alpha1.CohortLabelPrefix); len(name) > 63 {
			t.Errorf("the name part of %q is longer than 63", c.cohort)
		}
	}
	r250 := strings.Repeat("r", 250)
	for _, c := range []struct{ got, want string }{
		{slmopsv1alpha1.PeersConfigMapName("shops"), "shops-peers"},
		{slmopsv1alpha1.CacheConfigMapName("shops"), "shops-cache"},
		{slmopsv1alpha1.PeersConfigMapName(r250), r250[:240] + "-peers"},
		{slmopsv1alpha1.CacheConfigMapName(r250), r250[:240] + "-cache"},
	} {
		if c.got != c.want {
			t.Errorf("ConfigMap name %q, want %q", c.got, c.want)
		}
	}
}

// TestWireWordsDoNotChange pins the values of the labels, annotations and
// reasons that people, alert rules, dashboards, admission policies and
// kubectl-slm match on, so that the rest of the code (and its tests) can
// use the names.
func TestWireWordsDoNotChange(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{slmopsv1alpha1.ManagedByLabel, "app.kubernetes.io/managed-by"},
		{slmopsv1alpha1.ManagedByValue, "slmops"},
		{slmopsv1alpha1.NameLabel, "app.kubernetes.io/name"},
		{slmopsv1alpha1.InstanceLabel, "app.kubernetes.io/instance"},
		{slmopsv1alpha1.ComponentLabel, "app.kubernetes.io/component"},
		{slmopsv1alpha1.RolloutLabel, "slmops.dev/rollout"},
		{slmopsv1alpha1.RevisionLabel, "slmops.dev/revision"},
		{slmopsv1alpha1.StageRevisionLabel, "slmops.dev/stage-revision"},
		{slmopsv1alpha1.VariantLabel, "slmops.dev/variant"},
		{slmopsv1alpha1.DefaultVariant, "default"},
		{slmopsv1alpha1.CohortLabelPrefix, "cohort.slmops.dev/"},
		{slmopsv1alpha1.StageLabelPrefix, "stage.slmops.dev/"},
		{slmopsv1alpha1.PromoteAnnotation, "slmops.dev/promote"},
		{slmopsv1alpha1.PromoteFullAnnotation, "slmops.dev/promote-full"},
		{slmopsv1alpha1.AbortAnnotation, "slmops.dev/abort"},
		{slmopsv1alpha1.RetryAnnotation, "slmops.dev/retry"},
		{slmopsv1alpha1.ModelDigestAnnotation, "slmops.dev/model-digest"},
		{slmopsv1alpha1.StageConfigAnnotation, "slmops.dev/stage-config"},
		{slmopsv1alpha1.NodeLabelsFinalizer, "slmops.dev/node-labels"},
		{slmopsv1alpha1.HTTPAuthorizationKey, "authorization"},

		{slmopsv1alpha1.ComponentModelServer, "model-server"},
		{slmopsv1alpha1.ComponentModelStager, "model-stager"},
		{slmopsv1alpha1.ComponentPeerDirectory, "peer-directory"},
		{slmopsv1alpha1.ComponentModelCachePins, "model-cache-pins"},

		{slmopsv1alpha1.ReasonModelNotFound, "ModelNotFound"},
		{slmopsv1alpha1.ReasonSpecPaused, "SpecPaused"},
		{slmopsv1alpha1.ReasonNoRevision, "NoRevision"},
		{slmopsv1alpha1.ReasonNodesJoining, "NodesJoining"},
		{slmopsv1alpha1.ReasonNoTargetNodes, "NoTargetNodes"},
		{slmopsv1alpha1.ReasonStepProgressing, "StepProgressing"},
		{slmopsv1alpha1.ReasonWaitingForStaging, "WaitingForStaging"},
		{slmopsv1alpha1.ReasonWaitingForReports, "WaitingForReports"},
		{slmopsv1alpha1.ReasonWaitingForUnreachableNodes, "WaitingForUnreachableNodes"},
		{slmopsv1alpha1.ReasonStepPaused, "StepPaused"},
		{slmopsv1alpha1.ReasonStepStarted, "StepStarted"},
		{slmopsv1alpha1.ReasonCompleted, "Completed"},
		{slmopsv1alpha1.ReasonCanaryFailed, "CanaryFailed"},
		{slmopsv1alpha1.ReasonStagingFailed, "StagingFailed"},
		{slmopsv1alpha1.ReasonInvalidConfig, "InvalidConfig"},
		{slmopsv1alpha1.ReasonDigestPinned, "DigestPinned"},
		{slmopsv1alpha1.ReasonRolloutsPending, "RolloutsPending"},

		{slmopsv1alpha1.EventReasonCanaryStarted, "CanaryStarted"},
		{slmopsv1alpha1.EventReasonCanarySuperseded, "CanarySuperseded"},
		{slmopsv1alpha1.EventReasonCanaryCancelled, "CanaryCancelled"},
		{slmopsv1alpha1.EventReasonStepPaused, "StepPaused"},
		{slmopsv1alpha1.EventReasonStepPromoted, "StepPromoted"},
		{slmopsv1alpha1.EventReasonPromotedFull, "PromotedFull"},
		{slmopsv1alpha1.EventReasonCompleted, "Completed"},
		{slmopsv1alpha1.EventReasonRolledBack, "RolledBack"},
		{slmopsv1alpha1.EventReasonDegraded, "Degraded"},
		{slmopsv1alpha1.EventReasonAborted, "Aborted"},
		{slmopsv1alpha1.EventReasonRetried, "Retried"},
		{slmopsv1alpha1.EventReasonInvalidConfig, "InvalidConfig"},
		{slmopsv1alpha1.EventReasonNodesExcluded, "NodesExcluded"},

		{slmopsv1alpha1.ExcludedInsufficientMemory, "InsufficientMemory"},
		{slmopsv1alpha1.ExcludedInsufficientDisk, "InsufficientDisk"},
		{slmopsv1alpha1.FailingProgressDeadlineExceeded, "ProgressDeadlineExceeded"},
		{slmopsv1alpha1.FailingPodFailed, "PodFailed"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
}
