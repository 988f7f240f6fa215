package v1alpha1

// The names on the wire: every label, annotation, finalizer, object name,
// condition type and reason that the operator writes and that people,
// dashboards, alert rules, admission policies and kubectl-slm read. They live
// here, beside the types, so that a reader of the API needs no controller
// package, and so that one place says what must never change: a renamed
// label or a rehashed name strands what existing clusters carry.
// labels_test.go pins their values.

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Labels on the objects the operator makes: DaemonSets, their Pods, and the
// ConfigMaps of peer directories and cache pins.
const (
	// ManagedByLabel and ManagedByValue mark the operator's objects; the
	// manager's cache watches only the Pods, DaemonSets and ConfigMaps that
	// carry them.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of ManagedByLabel on the operator's objects.
	ManagedByValue = "slmops"
	// NameLabel is app.kubernetes.io/name; its value is NameInferd.
	NameLabel = "app.kubernetes.io/name"
	// NameInferd is the value of NameLabel on inferd's DaemonSets and Pods.
	NameInferd = "inferd"
	// InstanceLabel is app.kubernetes.io/instance: the rollout's name.
	InstanceLabel = "app.kubernetes.io/instance"
	// ComponentLabel is app.kubernetes.io/component: what an object is for,
	// one of the Component values.
	ComponentLabel = "app.kubernetes.io/component"
	// RolloutLabel names the EdgeRollout an object belongs to.
	RolloutLabel = "slmops.dev/rollout"
	// RevisionLabel names the revision a serving DaemonSet or Pod runs.
	RevisionLabel = "slmops.dev/revision"
	// StageRevisionLabel on a stager DaemonSet and its pods names the
	// revision whose model they stage (they carry no RevisionLabel, so no
	// serving DaemonSet's selector takes them).
	StageRevisionLabel = "slmops.dev/stage-revision"
	// VariantLabel on a DaemonSet and its pods names the artifact they run:
	// a variant's name, or DefaultVariant.
	VariantLabel = "slmops.dev/variant"
)

// Values of ComponentLabel.
const (
	// ComponentModelServer is a serving inferd DaemonSet and its pods.
	ComponentModelServer = "model-server"
	// ComponentModelStager is a stager DaemonSet (inferd in stage mode) and its pods.
	ComponentModelStager = "model-stager"
	// ComponentPeerDirectory is the ConfigMap of a rollout's peer directory.
	ComponentPeerDirectory = "peer-directory"
	// ComponentModelCachePins is the ConfigMap of a rollout's cache pins.
	ComponentModelCachePins = "model-cache-pins"
)

// DefaultVariant names a model's own artifact, for the nodes that no variant
// matches: the value of VariantLabel and the name in status.variants.
const DefaultVariant = "default"

// Node labels. The operator changes no other label of a node (the admission
// policy in config/policy holds it to these two prefixes).
const (
	// CohortLabelPrefix prefixes the node label that assigns a node to a
	// revision of one rollout (see CohortLabel).
	CohortLabelPrefix = "cohort.slmops.dev/"
	// StageLabelPrefix prefixes the node label that asks a node to stage a
	// revision of one rollout (see StageLabel).
	StageLabelPrefix = "stage.slmops.dev/"
)

// CohortLabel is the node label whose value is the revision of rollout that
// the node runs: "<namespace>.<name>" under cohort.slmops.dev/, or a hash when
// that is longer than a label name may be.
func CohortLabel(namespace, name string) string {
	return CohortLabelPrefix + rolloutKey(namespace, name)
}

// StageLabel is the node label whose value is the revision of rollout whose
// model the node stages.
func StageLabel(namespace, name string) string {
	return StageLabelPrefix + rolloutKey(namespace, name)
}

// rolloutKey is the name part of a rollout's node labels.
func rolloutKey(namespace, name string) string {
	n := namespace + "." + name
	if len(n) > 63 {
		sum := sha256.Sum256([]byte(namespace + "/" + name))
		n = n[:46] + "-" + hex.EncodeToString(sum[:])[:16]
		n = strings.Trim(n, ".-")
	}
	return n
}

// Annotations. The action annotations (PromoteAnnotation, ...) are set by
// people and act on a rollout once per new value, so that they work from
// kubectl (kubectl annotate --overwrite, or the kubectl-slm plugin) and from
// Git alike: the operator records the last value it acted on in
// status.actions and never removes the annotation, so a GitOps tool sees no
// drift. The others are written by the operator on its own objects.
const (
	// PromoteAnnotation promotes the current step now, skipping its pause and analysis.
	PromoteAnnotation = "slmops.dev/promote"
	// PromoteFullAnnotation promotes the canary to every target node at once.
	PromoteFullAnnotation = "slmops.dev/promote-full"
	// AbortAnnotation moves the cohort back to the stable revision and stops.
	AbortAnnotation = "slmops.dev/abort"
	// RetryAnnotation starts an aborted, rolled-back or degraded canary again at step 0.
	RetryAnnotation = "slmops.dev/retry"

	// ModelDigestAnnotation on a DaemonSet is the digest of the artifact its
	// pods run, so that the cache pins of an older revision are known
	// without decoding its inferd config.
	ModelDigestAnnotation = "slmops.dev/model-digest"
	// StageConfigAnnotation on a stager DaemonSet is a hash of its template:
	// a stager whose template is outdated (the download budget changed) is
	// replaced.
	StageConfigAnnotation = "slmops.dev/stage-config"
)

// NodeLabelsFinalizer on an EdgeRollout removes its cohort and stage labels
// from the nodes before the rollout goes; its DaemonSets and ConfigMaps go by
// owner reference.
const NodeLabelsFinalizer = "slmops.dev/node-labels"

// HTTPAuthorizationKey is the key of the Secret named by
// source.http.secretRef whose value is sent as the Authorization header.
const HTTPAuthorizationKey = "authorization"

// PeersConfigMapName is the ConfigMap of a rollout's peer directory.
func PeersConfigMapName(rollout string) string {
	return configMapPrefix(rollout) + "-peers"
}

// CacheConfigMapName is the ConfigMap of a rollout's cache pins.
func CacheConfigMapName(rollout string) string {
	return configMapPrefix(rollout) + "-cache"
}

// configMapPrefix is the rollout's name, cut so that a suffix fits in an
// object name.
func configMapPrefix(rollout string) string {
	if len(rollout) > 240 {
		return rollout[:240]
	}
	return rollout
}

// The identity of serving inferd pods, which the installer makes (the
// chart's inferd.report.namespaces, or config/samples/inferd_report_access.yaml):
// the operator only looks for it.
const (
	// InferdServiceAccount is the ServiceAccount of serving inferd pods, and
	// the name of its RoleBinding.
	InferdServiceAccount = "slmops-inferd"
	// InferdReportClusterRole is what that ServiceAccount may do: patch pods
	// (narrowed by the admission policy of the same name to its own pod's
	// self-test report).
	InferdReportClusterRole = "slmops-inferd-report"
)

// Condition types. Ready, Reconciling and Stalled follow kstatus, so that
// Flux, Argo CD and kubectl wait read health without plugins: an EdgeRollout
// that is Completed is Ready=True; Progressing and Paused are
// Reconciling=True; RolledBack, Degraded and Aborted are Stalled=True.
const (
	// ConditionReady is True when the rollout is Completed, or the model resolved.
	ConditionReady = "Ready"
	// ConditionProgressing is True while the canary grows.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when canary nodes failed beyond maxFailedNodes.
	ConditionDegraded = "Degraded"
	// ConditionPaused is True while the rollout is held.
	ConditionPaused = "Paused"
	// ConditionReconciling is kstatus's "in progress" condition.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is kstatus's "failed" condition.
	ConditionStalled = "Stalled"
	// ConditionResolved is True on an SLMModel whose artifacts are resolved.
	ConditionResolved = "Resolved"
	// ConditionApplied is True on an EdgeRollout when the operator's last
	// reconcile wrote everything its decision asked for (DaemonSets, stagers,
	// peer directory, cache pins, node labels); False, with the reason of the
	// step that failed (ReasonApplyFailed) and the errors, when it could not.
	// It is independent of the phase, and kstatus does not read it.
	ConditionApplied = "Applied"
	// ConditionPartiallyRolledBack is True on an EdgeRollout with
	// analysis.scope HardwareClass while some hardware classes stay on an
	// older revision because the canary failed on them
	// (status.excludedClasses); its message names them. kstatus does not
	// read it: such a rollout is Ready once the other classes completed.
	ConditionPartiallyRolledBack = "PartiallyRolledBack"
)

// Reasons of the conditions that are True (status.phase says which). A
// condition that is False has the phase's name as its reason, and so do the
// True conditions of RolledBack and Aborted once the canary is back on the
// stable revision.
const (
	// ReasonModelNotFound: spec.modelRef names no SLMModel (Pending).
	ReasonModelNotFound = "ModelNotFound"
	// ReasonSpecPaused: spec.paused holds every node where it is (Paused).
	ReasonSpecPaused = "SpecPaused"
	// ReasonNoRevision: there is no revision to roll out yet (Pending).
	ReasonNoRevision = "NoRevision"
	// ReasonNodesJoining: target nodes are moving to the stable revision (Progressing).
	ReasonNodesJoining = "NodesJoining"
	// ReasonNoTargetNodes: no reachable target node runs, or can take, the
	// revision; a rollout completes only on at least one node (Progressing).
	ReasonNoTargetNodes = "NoTargetNodes"
	// ReasonStepProgressing: the current step's cohort is switching or not
	// yet healthy enough (Progressing).
	ReasonStepProgressing = "StepProgressing"
	// ReasonWaitingForStaging: the cohort is healthy but more of its nodes
	// must stage the model before they join (Progressing).
	ReasonWaitingForStaging = "WaitingForStaging"
	// ReasonWaitingForReports: the cohort is healthy, and the analysis
	// compares its self-test figures with stable's, but some of its nodes'
	// reports have not arrived yet (Progressing); the step waits for them
	// up to ReportGraceSeconds after each pod turned Ready.
	ReasonWaitingForReports = "WaitingForReports"
	// ReportGraceSeconds is how long a step waits for a healthy cohort
	// node's self-test report when the analysis compares the canary's
	// figures with stable's (ReasonWaitingForReports).
	ReportGraceSeconds = 30
	// ReasonWaitingForUnreachableNodes: under unreachableNodes.policy Wait,
	// the step waits for cohort nodes that are unreachable (Progressing).
	ReasonWaitingForUnreachableNodes = "WaitingForUnreachableNodes"
	// ReasonStepPaused: the step's cohort is healthy and its pause holds it (Paused).
	ReasonStepPaused = "StepPaused"
	// ReasonStepStarted: the next step started (Progressing).
	ReasonStepStarted = "StepStarted"
	// ReasonCompleted: the revision is stable on the target nodes (Completed).
	ReasonCompleted = "Completed"
	// ReasonCanaryFailed: more cohort nodes failed than
	// analysis.maxFailedNodes allows (RolledBack or Degraded).
	ReasonCanaryFailed = "CanaryFailed"
	// ReasonStagingFailed: more target nodes were excluded (unfit, or failed
	// to stage) than distribution.maxExcludedNodes allows (RolledBack or
	// Degraded). It is also the exclusion reason of a stager that failed
	// without saying why.
	ReasonStagingFailed = "StagingFailed"
	// ReasonInvalidConfig: the inferd config of the revision fails
	// inferd's config.Validate; no DaemonSet of it is made (Degraded).
	ReasonInvalidConfig = "InvalidConfig"
	// ReasonSlowerThanStable: on a hardware class, the canary's self-tests
	// measured a decode rate below analysis.minRelativeThroughput of the
	// stable revision's, or a time to first token above
	// analysis.maxRelativeTimeToFirstToken of it (RolledBack or Degraded; or
	// the class excluded, under scope HardwareClass).
	ReasonSlowerThanStable = "SlowerThanStable"
	// ReasonClassesRolledBack: some hardware classes stay on an older
	// revision (PartiallyRolledBack).
	ReasonClassesRolledBack = "ClassesRolledBack"
	// ReasonApplied: the last reconcile wrote everything it decided (Applied).
	ReasonApplied = "Applied"
	// ReasonApplyFailed is the suffix of the reason of an Applied condition
	// that is False: the act step that failed, such as
	// EnsureDaemonSetsFailed or PatchLabelsFailed.
	ReasonApplyFailed = "Failed"
	// ReasonDigestPinned: every artifact of an SLMModel is pinned by its
	// sha256 digest (Resolved, Ready).
	ReasonDigestPinned = "DigestPinned"
	// ReasonRolloutsPending: an EdgeRollout that uses an SLMModel has not
	// yet observed the model's generation (Reconciling).
	ReasonRolloutsPending = "RolloutsPending"
)

// Reasons of the Events the operator records on an EdgeRollout, one per real
// change. Some are the words of the condition reasons above; they are listed
// apart because an Event says what happened, a condition where it is.
const (
	// EventReasonCanaryStarted: a new revision's canary started.
	EventReasonCanaryStarted = "CanaryStarted"
	// EventReasonCanarySuperseded: a newer revision replaced the canary.
	EventReasonCanarySuperseded = "CanarySuperseded"
	// EventReasonCanaryCancelled: the spec went back to the stable revision.
	EventReasonCanaryCancelled = "CanaryCancelled"
	// EventReasonStepPaused: a step's cohort is healthy and its pause began.
	EventReasonStepPaused = "StepPaused"
	// EventReasonStepPromoted: a step was promoted, by its analysis or by
	// PromoteAnnotation.
	EventReasonStepPromoted = "StepPromoted"
	// EventReasonPromotedFull: PromoteFullAnnotation promoted the canary to
	// every target node.
	EventReasonPromotedFull = "PromotedFull"
	// EventReasonCompleted: the canary revision became stable.
	EventReasonCompleted = "Completed"
	// EventReasonRolledBack: a failed canary went back to the stable revision.
	EventReasonRolledBack = "RolledBack"
	// EventReasonDegraded: a canary failed under rollbackPolicy Manual.
	EventReasonDegraded = "Degraded"
	// EventReasonAborted: AbortAnnotation moved the cohort back.
	EventReasonAborted = "Aborted"
	// EventReasonRetried: RetryAnnotation started the canary again.
	EventReasonRetried = "Retried"
	// EventReasonInvalidConfig: the revision's inferd config is invalid.
	EventReasonInvalidConfig = "InvalidConfig"
	// EventReasonClassRolledBack: under scope HardwareClass, the canary
	// failed on a hardware class, whose nodes went back to their revision.
	EventReasonClassRolledBack = "ClassRolledBack"
	// EventReasonNodesExcluded: target nodes were newly excluded.
	EventReasonNodesExcluded = "NodesExcluded"
)

// Reasons of status.distribution.excludedNodes that the operator decides. A
// stager that cannot stage says why in its termination message (inferd's
// config.Reason* values, such as FetchFailed or OriginRejected), and that
// reason is listed as it is; ReasonStagingFailed is a stager's failure
// without one.
const (
	// ExcludedInsufficientMemory: the node's allocatable memory is below the
	// model's size plus distribution.fit.memoryHeadroom, or, once a pod of
	// the revision reported it, below inferd's estimate of the model plus
	// its own memory. inferd uses the same word when the estimate is more
	// than its container may use.
	ExcludedInsufficientMemory = "InsufficientMemory"
	// ExcludedInsufficientDisk: the node's allocatable ephemeral storage is
	// below the model's size plus distribution.fit.diskHeadroom. inferd's
	// stager uses the same word for a cache filesystem that is too full.
	ExcludedInsufficientDisk = "InsufficientDisk"
)

// Reasons of status.failingNodes that the operator decides; the others are
// the kubelet's container reasons (CrashLoopBackOff, ImagePullBackOff, ...).
const (
	// FailingProgressDeadlineExceeded: the node's inferd pod of the canary
	// revision was not ready within progressDeadlineSeconds.
	FailingProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	// FailingPodFailed: the node's inferd pod failed.
	FailingPodFailed = "PodFailed"
)
