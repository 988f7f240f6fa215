package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// NodeSelector selects nodes by their labels. It is a metav1.LabelSelector
// with bounds, so that the API server checks it at admission.
type NodeSelector struct {
	// matchLabels selects nodes that have every one of these labels.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	MatchLabels map[string]string `json:"matchLabels,omitempty"`

	// matchExpressions selects nodes that match every one of these requirements.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	MatchExpressions []NodeSelectorRequirement `json:"matchExpressions,omitempty"`
}

// NodeSelectorRequirement is one requirement on a node label.
// +kubebuilder:validation:XValidation:rule="self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0 : !has(self.values) || size(self.values) == 0",message="values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist"
type NodeSelectorRequirement struct {
	// key is the label key.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=317
	Key string `json:"key"`

	// operator is In, NotIn, Exists or DoesNotExist.
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self in ['In', 'NotIn', 'Exists', 'DoesNotExist']",message="operator must be In, NotIn, Exists or DoesNotExist"
	Operator metav1.LabelSelectorOperator `json:"operator"`

	// values for In and NotIn.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	// +listType=atomic
	Values []string `json:"values,omitempty"`
}

// InferdTemplate is the inferd container that runs the model on each node. The
// operator adds the secure defaults that are not negotiable: non-root user,
// read-only root filesystem, no privilege escalation, all capabilities
// dropped, the RuntimeDefault seccomp profile.
type InferdTemplate struct {
	// image of inferd; unset means the operator's default (the manager's
	// --inferd-image, the Helm chart's inferd.image), so that upgrading the
	// operator rolls the new inferd out as a canary. A rollout that names an
	// image keeps it.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`

	// imagePullPolicy of the inferd image: Always, IfNotPresent or Never.
	// +optional
	// +kubebuilder:default=IfNotPresent
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self in ['Always', 'IfNotPresent', 'Never']",message="imagePullPolicy must be Always, IfNotPresent or Never"
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// imagePullSecrets to pull the inferd image with.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// port inferd serves its OpenAI-compatible API and probes on. A port of 1024
	// or more needs no privilege.
	// +optional
	// +kubebuilder:default=8080
	// +kubebuilder:validation:Minimum=1024
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// resources of the inferd container; unset fields come from the SLMModel's
	// spec.runtime.resources.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// env adds or overrides environment variables of the inferd container.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=name
	Env []corev1.EnvVar `json:"env,omitempty"`

	// priorityClassName of the inferd pods.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// apiTokenSecretRef, when set, names a key of a Secret in the rollout's
	// namespace that holds the bearer token inferd's OpenAI-compatible API
	// then requires (Authorization: Bearer <token>). Probes, /status,
	// /metrics and the peers' blob endpoint stay open. The token reaches
	// inferd as an environment variable from the Secret, never in the pod
	// spec or a log.
	// +optional
	APITokenSecretRef *corev1.SecretKeySelector `json:"apiTokenSecretRef,omitempty"`
}

// CanaryPause holds a step after its cohort is healthy: for a duration, or
// until promoted by hand when duration is unset.
type CanaryPause struct {
	// duration of the pause, such as "10m"; unset waits until promoted.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|([0-9]{1,5}([.][0-9]{1,9})?(ns|us|µs|ms|s|m|h)){1,4})$') && duration(self) <= duration('720h')",message="pause.duration must be a duration from 0s to 720h, such as 90s, 10m or 1h30m (a number and a unit: s, m or h)"
	Duration *metav1.Duration `json:"duration,omitempty"`
}

// CanaryStep is one step of a canary: how many target nodes run the canary
// revision once the step is reached.
type CanaryStep struct {
	// nodes is the size of the cohort at this step: a count of nodes (1 or more)
	// or a percentage of the target nodes ("1%" to "100%"), rounded up.
	// +required
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 1 : self.matches('^(100|[1-9][0-9]?)%$')",message="nodes must be a node count of at least 1 or a percentage from 1% to 100%"
	Nodes intstr.IntOrString `json:"nodes"`

	// pause, when set, holds the step after its cohort is healthy: for
	// pause.duration, or until promoted by hand when it is {}.
	// +optional
	Pause *CanaryPause `json:"pause,omitempty"`
}

// UnreachableNodesPolicy says what a rollout does about target nodes that are
// NotReady or unreachable.
// +kubebuilder:validation:MaxLength=16
// +kubebuilder:validation:XValidation:rule="self in ['Skip', 'Wait']",message="unreachableNodes.policy must be Skip (go on without them) or Wait (hold the step up to the deadline)"
type UnreachableNodesPolicy string

const (
	// UnreachableNodesSkip goes on without them; they get the right revision
	// when they return.
	UnreachableNodesSkip UnreachableNodesPolicy = "Skip"
	// UnreachableNodesWait holds the step until they return, up to the deadline,
	// then goes on as Skip does.
	UnreachableNodesWait UnreachableNodesPolicy = "Wait"
)

// UnreachableNodes is the policy for target nodes that are NotReady or unreachable.
type UnreachableNodes struct {
	// policy is Skip or Wait.
	// +optional
	// +kubebuilder:default=Skip
	Policy UnreachableNodesPolicy `json:"policy,omitempty"`

	// deadline is how long a step waits for unreachable nodes under Wait.
	// +optional
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|([0-9]{1,5}([.][0-9]{1,9})?(ns|us|µs|ms|s|m|h)){1,4})$') && duration(self) >= duration('1s') && duration(self) <= duration('168h')",message="unreachableNodes.deadline must be a duration from 1s to 168h, such as 90s, 10m or 2h (a number and a unit: s, m or h)"
	Deadline *metav1.Duration `json:"deadline,omitempty"`
}

// TopologyOrder says how cohorts follow the topologyKey.
// +kubebuilder:validation:MaxLength=16
// +kubebuilder:validation:XValidation:rule="self in ['Spread', 'SiteBySite']",message="topologyOrder must be Spread or SiteBySite"
type TopologyOrder string

const (
	// TopologySpread takes each cohort evenly from every site, so that an early
	// canary sees every kind of site.
	TopologySpread TopologyOrder = "Spread"
	// TopologySiteBySite fills one site before the next, so that a bad model
	// touches as few sites as possible.
	TopologySiteBySite TopologyOrder = "SiteBySite"
)

// CanaryStrategy grows a cohort of canary nodes step by step.
// +kubebuilder:validation:XValidation:rule="!has(self.steps) || size(self.steps) == 0 || self.steps[size(self.steps) - 1].nodes == '100%'",message="the last canary step must be nodes: \"100%\", so that the rollout reaches every target node"
// +kubebuilder:validation:XValidation:rule="!has(self.steps) || self.steps.all(i, s, i == 0 || type(s.nodes) != string || type(self.steps[i-1].nodes) != string || !s.nodes.matches('^(100|[1-9][0-9]?)%$') || !self.steps[i-1].nodes.matches('^(100|[1-9][0-9]?)%$') || self.steps[i-1].nodes.size() < s.nodes.size() || (self.steps[i-1].nodes.size() == s.nodes.size() && self.steps[i-1].nodes < s.nodes))",message="percentage steps must strictly increase, such as 5%, 25%, 100%"
// +kubebuilder:validation:XValidation:rule="!has(self.steps) || self.steps.all(i, s, i == 0 || type(s.nodes) != int || type(self.steps[i-1].nodes) != int || self.steps[i-1].nodes < s.nodes)",message="node-count steps must strictly increase, such as 1, 10, 50"
type CanaryStrategy struct {
	// steps of the canary, in order; the last one must be "100%".
	// +optional
	// +kubebuilder:default={{nodes: "10%"}, {nodes: "50%"}, {nodes: "100%"}}
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:XValidation:rule="size(self) > 0",message="strategy.canary.steps must not be empty: list steps that end with nodes: \"100%\", or leave steps out for the default 10%, 50%, 100%"
	// +listType=atomic
	Steps []CanaryStep `json:"steps,omitempty"`

	// maxUnavailable is how many target nodes may be without a ready inferd pod
	// at once while nodes switch revision: a count or a percentage of the target
	// nodes.
	// +optional
	// +kubebuilder:default="10%"
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 1 : self.matches('^(100|[1-9][0-9]?)%$')",message="maxUnavailable must be a node count of at least 1 or a percentage from 1% to 100%"
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`

	// minReadySeconds is how long a canary pod must be Ready to count as
	// healthy; 0 counts it at once.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	MinReadySeconds *int32 `json:"minReadySeconds,omitempty"`

	// progressDeadlineSeconds is how long a canary node may take to become ready
	// before it counts as failed.
	// +optional
	// +kubebuilder:default=600
	// +kubebuilder:validation:Minimum=30
	// +kubebuilder:validation:Maximum=86400
	ProgressDeadlineSeconds int32 `json:"progressDeadlineSeconds,omitempty"`

	// unreachableNodes is the policy for target nodes that are NotReady or
	// unreachable during the rollout.
	// +optional
	// +kubebuilder:default={policy: Skip, deadline: "10m"}
	UnreachableNodes UnreachableNodes `json:"unreachableNodes,omitempty"`

	// topologyKey is a node label, such as topology.kubernetes.io/zone, whose
	// values are sites; cohorts are chosen across sites as topologyOrder says.
	// +optional
	// +kubebuilder:validation:MaxLength=317
	// +kubebuilder:validation:XValidation:rule="self.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$')",message="topologyKey must be a node label key, such as topology.kubernetes.io/zone"
	TopologyKey string `json:"topologyKey,omitempty"`

	// topologyOrder is Spread (every cohort from every site) or SiteBySite (one
	// site after another). It needs topologyKey.
	// +optional
	// +kubebuilder:default=Spread
	TopologyOrder TopologyOrder `json:"topologyOrder,omitempty"`
}

// RolloutStrategy says how a new revision reaches the target nodes.
type RolloutStrategy struct {
	// canary grows a cohort of nodes step by step.
	// +optional
	// +kubebuilder:default={}
	Canary CanaryStrategy `json:"canary,omitempty"`
}

// RolloutAnalysis decides from the canary nodes' readiness whether a step is
// healthy and whether the rollout failed.
type RolloutAnalysis struct {
	// successRatio is the share of a step's cohort, from "0" to "1", that must
	// have a Ready inferd pod of the canary revision before the step is promoted.
	// +optional
	// +kubebuilder:default="1"
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0([.][0-9]{1,4})?|1([.]0{1,4})?)$')",message="analysis.successRatio must be a fraction from 0 to 1 with at most 4 decimals, such as 0.95 (not a percentage)"
	SuccessRatio string `json:"successRatio,omitempty"`

	// maxFailedNodes is how many canary nodes may fail (not ready past
	// progressDeadlineSeconds, or crash-looping) before the rollout fails: a
	// count or a percentage of the target nodes. 0 fails on the first.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')",message="maxFailedNodes must be a node count of at least 0 or a percentage from 0% to 100%"
	MaxFailedNodes *intstr.IntOrString `json:"maxFailedNodes,omitempty"`

	// hardwareClassLabels are the node labels whose values make up a node's
	// hardware class: the nodes that share them are compared with each
	// other (status.hardwareClasses, the relative thresholds, and the scope
	// HardwareClass). A node without one of the labels has an empty value
	// for it.
	// +optional
	// +kubebuilder:default={"kubernetes.io/arch","node.kubernetes.io/instance-type"}
	// +kubebuilder:validation:MaxItems=4
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=317
	// +listType=set
	HardwareClassLabels []string `json:"hardwareClassLabels,omitempty"`

	// minRelativeThroughput, when set, is how fast the canary must generate
	// compared with the stable revision on the same hardware class: the
	// median decode tokens/s that its inferd pods measured in their
	// self-test, as a fraction of the stable pods' median, such as "0.9". A
	// class below it fails the step with reason SlowerThanStable. Classes
	// without a stable figure are judged by the self-test's absolute
	// thresholds alone.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]{1,2}([.][0-9]{1,4})?$') && double(self) > 0.0",message="analysis.minRelativeThroughput must be a fraction of the stable revision's throughput above 0, such as 0.9"
	MinRelativeThroughput string `json:"minRelativeThroughput,omitempty"`

	// maxRelativeTimeToFirstToken, when set, is how much longer the canary
	// may take to its first token than the stable revision on the same
	// hardware class (medians of the self-test), such as "1.2". A class above
	// it fails the step with reason SlowerThanStable.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]{1,2}([.][0-9]{1,4})?$') && double(self) >= 1.0",message="analysis.maxRelativeTimeToFirstToken must be a factor of at least 1, such as 1.2"
	MaxRelativeTimeToFirstToken string `json:"maxRelativeTimeToFirstToken,omitempty"`

	// scope is what a failed step rolls back. Fleet (the default): the whole
	// canary. HardwareClass: only the hardware classes whose cohort failed;
	// their nodes go back to the stable revision and sit out the later
	// steps, while the other classes go on to Completed (with the condition
	// PartiallyRolledBack naming the classes that stayed on stable).
	// +optional
	// +kubebuilder:default=Fleet
	Scope AnalysisScope `json:"scope,omitempty"`
}

// AnalysisScope is what a failed step of a canary rolls back.
// +kubebuilder:validation:MaxLength=16
// +kubebuilder:validation:XValidation:rule="self in ['Fleet', 'HardwareClass']",message="analysis.scope must be Fleet or HardwareClass"
type AnalysisScope string

const (
	// AnalysisScopeFleet rolls the whole canary back.
	AnalysisScopeFleet AnalysisScope = "Fleet"
	// AnalysisScopeHardwareClass rolls back only the hardware classes that
	// failed.
	AnalysisScopeHardwareClass AnalysisScope = "HardwareClass"
)

// RollbackPolicy says what a failed rollout does.
// +kubebuilder:validation:MaxLength=16
// +kubebuilder:validation:XValidation:rule="self in ['Automatic', 'Manual']",message="rollbackPolicy must be Automatic or Manual"
type RollbackPolicy string

const (
	// RollbackAutomatic moves the canary cohort back to the stable revision.
	RollbackAutomatic RollbackPolicy = "Automatic"
	// RollbackManual leaves the cohort as it is, Degraded, until aborted or retried.
	RollbackManual RollbackPolicy = "Manual"
)

// EdgeRolloutSpec says which model goes to which edge nodes, and how.
// +kubebuilder:validation:XValidation:rule="!has(self.distribution) || !has(self.distribution.peerSharing) || has(self.distribution.peerSharing.topologyKey) || (has(self.strategy) && has(self.strategy.canary) && has(self.strategy.canary.topologyKey))",message="distribution.peerSharing needs a topologyKey (its own or strategy.canary.topologyKey) to tell the sites apart"
// +kubebuilder:validation:XValidation:rule="!has(self.strategy) || !has(self.strategy.canary) || !has(self.strategy.canary.topologyOrder) || self.strategy.canary.topologyOrder != 'SiteBySite' || has(self.strategy.canary.topologyKey)",message="strategy.canary.topologyOrder SiteBySite needs strategy.canary.topologyKey"
type EdgeRolloutSpec struct {
	// modelRef names the SLMModel, in the same namespace, to roll out.
	// +required
	ModelRef LocalObjectReference `json:"modelRef"`

	// nodeSelector selects the target nodes by label; empty selects every node.
	// +optional
	NodeSelector *NodeSelector `json:"nodeSelector,omitempty"`

	// tolerations of the inferd pods, for target nodes with taints.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// template is the inferd container.
	// +optional
	// +kubebuilder:default={}
	Template InferdTemplate `json:"template,omitempty"`

	// strategy says how a new revision reaches the target nodes.
	// +optional
	// +kubebuilder:default={}
	Strategy RolloutStrategy `json:"strategy,omitempty"`

	// analysis decides when a step is healthy and when the rollout failed.
	// +optional
	// +kubebuilder:default={}
	Analysis RolloutAnalysis `json:"analysis,omitempty"`

	// rollbackPolicy is Automatic (a failed canary goes back to the stable
	// revision) or Manual (it stays Degraded until aborted or retried).
	// +optional
	// +kubebuilder:default=Automatic
	RollbackPolicy RollbackPolicy `json:"rollbackPolicy,omitempty"`

	// distribution says how the model reaches the nodes' caches: staging
	// before activation, peer sharing within sites, fit checks.
	// +optional
	// +kubebuilder:default={}
	Distribution Distribution `json:"distribution,omitempty"`

	// paused holds the rollout where it is: no node switches revision until it
	// is false again. Nodes already switched keep running.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// Distribution says how the model reaches the nodes' caches before they
// switch to it: staged ahead of the canary, shared between the nodes of a
// site, and only on nodes that can hold it.
// +kubebuilder:validation:XValidation:rule="!has(self.peerSharing) || has(self.staging)",message="distribution.peerSharing needs distribution.staging: sites are seeded by the stagers"
type Distribution struct {
	// staging downloads and verifies the canary revision's model into a node's
	// cache, while the node's stable revision keeps serving, before the node
	// may join the canary cohort. A node that cannot stage (no disk, a source
	// it cannot reach) is listed in status.distribution.excludedNodes and stays
	// on its revision; it does not count as a failed canary node.
	// +optional
	Staging *Staging `json:"staging,omitempty"`

	// peerSharing lets the nodes of a site fetch the model from another node
	// of the same site that already holds the verified file, before the
	// origin. Each site is seeded by one node from the origin first. Every
	// byte is verified against the digest, whichever node sent it.
	// +optional
	PeerSharing *PeerSharing `json:"peerSharing,omitempty"`

	// fit excludes nodes that cannot hold the model: allocatable memory, or
	// allocatable ephemeral storage (the node disk of the cache), below the
	// model's size plus headroom. It applies to models that give sizeBytes.
	// +optional
	// +kubebuilder:default={}
	Fit Fit `json:"fit,omitempty"`

	// maxExcludedNodes bounds how many target nodes may be left out of the
	// rollout (unfit for the model, or failed to stage it), as a count or a
	// percentage of the target nodes (rounded down). Past it the rollout
	// fails as a failed canary does (RolledBack, or Degraded under
	// rollbackPolicy Manual) with reason StagingFailed: a model that most
	// nodes cannot take is a failed rollout, not a success on the rest.
	// +optional
	// +kubebuilder:default="10%"
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')",message="maxExcludedNodes must be a node count of at least 0 or a percentage from 0% to 100%, such as 10%"
	MaxExcludedNodes *intstr.IntOrString `json:"maxExcludedNodes,omitempty"`
}

// Staging runs ahead of the canary within a download budget.
type Staging struct {
	// lookaheadSteps is how many canary steps ahead staging runs: 1 stages the
	// nodes of the next step while the current one is judged.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=20
	LookaheadSteps *int32 `json:"lookaheadSteps,omitempty"`

	// maxConcurrentNodes is how many nodes may download at once.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	MaxConcurrentNodes int32 `json:"maxConcurrentNodes,omitempty"`

	// maxBytesPerSecond bounds the rollout's downloads: each of the
	// maxConcurrentNodes downloads gets an equal share. Unset is unlimited.
	// +optional
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="isQuantity(string(self)) && quantity(string(self)).isGreaterThan(quantity('1023'))",message="maxBytesPerSecond must be a quantity of bytes of at least 1Ki, such as 10Mi or 200M"
	MaxBytesPerSecond *resource.Quantity `json:"maxBytesPerSecond,omitempty"`

	// windows are the times of day when staging may start on more nodes;
	// downloads that started go on. Empty is always.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	Windows []StagingWindow `json:"windows,omitempty"`

	// timeZone of the windows, an IANA name such as Europe/Berlin; UTC when unset.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z][A-Za-z0-9_+/-]*$') && self != 'Local' && timestamp('2000-01-01T00:00:00Z').getHours(self) >= 0",message="distribution.staging.timeZone must be an IANA time zone name such as Europe/Berlin, America/New_York or UTC"
	TimeZone string `json:"timeZone,omitempty"`
}

// StagingWindow is a daily time range, [start, end); an end before the start
// runs past midnight.
// +kubebuilder:validation:XValidation:rule="self.start != self.end",message="a staging window must not start and end at the same time"
type StagingWindow struct {
	// start as HH:MM, 24-hour.
	// +required
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$')",message="a staging window's start must be a time of day as HH:MM, 24-hour, such as 22:00"
	Start string `json:"start"`
	// end as HH:MM, 24-hour.
	// +required
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$')",message="a staging window's end must be a time of day as HH:MM, 24-hour, such as 06:00"
	End string `json:"end"`
}

// PeerSharing shares verified model files between the nodes of a site.
type PeerSharing struct {
	// topologyKey is the node label whose values are sites; unset means
	// spec.strategy.canary.topologyKey.
	// +optional
	// +kubebuilder:validation:MaxLength=317
	// +kubebuilder:validation:XValidation:rule="self.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$')",message="topologyKey must be a node label key, such as topology.kubernetes.io/zone"
	TopologyKey string `json:"topologyKey,omitempty"`

	// maxPeers is how many peers of its site a node is offered, tried in turn.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16
	MaxPeers int32 `json:"maxPeers,omitempty"`
}

// Fit is the headroom a node must have beyond the model's size.
type Fit struct {
	// memoryHeadroom is allocatable memory needed beyond the model's size
	// (context, buffers, the runtime) until a pod of the revision has
	// reported inferd's estimate of the model (its weights and the KV cache
	// of maxConcurrentRequests sequences at contextLength, read from the
	// file, as `inferd check` prints it); from then on a node needs that
	// estimate plus 64Mi for inferd itself.
	// +optional
	// +kubebuilder:default="256Mi"
	// +kubebuilder:validation:XIntOrString
	MemoryHeadroom *resource.Quantity `json:"memoryHeadroom,omitempty"`

	// diskHeadroom is disk that must stay free beyond the model's size: the
	// node's allocatable ephemeral storage is checked by the operator, the free
	// space of the cache folder by the stager on the node.
	// +optional
	// +kubebuilder:default="512Mi"
	// +kubebuilder:validation:XIntOrString
	DiskHeadroom *resource.Quantity `json:"diskHeadroom,omitempty"`
}

// RolloutPhase is where a rollout is.
// +kubebuilder:validation:Enum=Pending;Progressing;Paused;Completed;Degraded;RolledBack;Aborted
type RolloutPhase string

// The phases of a rollout.
const (
	// PhasePending: the model or the target nodes are not resolved yet.
	PhasePending RolloutPhase = "Pending"
	// PhaseProgressing: the canary grows step by step.
	PhaseProgressing RolloutPhase = "Progressing"
	// PhasePaused: held by spec.paused or a step's pause.
	PhasePaused RolloutPhase = "Paused"
	// PhaseCompleted: every target node runs the current revision, which is stable.
	PhaseCompleted RolloutPhase = "Completed"
	// PhaseDegraded: more canary nodes failed than analysis.maxFailedNodes
	// allows, and rollbackPolicy is Manual.
	PhaseDegraded RolloutPhase = "Degraded"
	// PhaseRolledBack: the canary failed and the cohort is back on the stable revision.
	PhaseRolledBack RolloutPhase = "RolledBack"
	// PhaseAborted: aborted by hand; the cohort is back on the stable revision.
	PhaseAborted RolloutPhase = "Aborted"
)

// FailingNode is a target node whose inferd pod of the canary revision is not healthy.
type FailingNode struct {
	// node name.
	// +required
	Node string `json:"node"`
	// reason in CamelCase, such as NotReady, CrashLoopBackOff, SelfTestFailed, Unreachable.
	// +required
	Reason string `json:"reason"`
	// message for people.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
	// since when the node has been failing.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
}

// RevisionHistory is one revision that the rollout ran.
type RevisionHistory struct {
	// revision hash.
	// +required
	Revision string `json:"revision"`
	// digest of the model's default artifact in that revision.
	// +optional
	Digest string `json:"digest,omitempty"`
	// phase the revision ended in, or is in.
	// +optional
	Phase RolloutPhase `json:"phase,omitempty"`
	// startedAt is when its canary started.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// finishedAt is when it was completed, rolled back or aborted.
	// +optional
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
}

// RolloutActions records the last annotation values the operator acted on.
type RolloutActions struct {
	// promote is the last slmops.dev/promote value acted on.
	// +optional
	Promote string `json:"promote,omitempty"`
	// promoteFull is the last slmops.dev/promote-full value acted on.
	// +optional
	PromoteFull string `json:"promoteFull,omitempty"`
	// abort is the last slmops.dev/abort value acted on.
	// +optional
	Abort string `json:"abort,omitempty"`
	// retry is the last slmops.dev/retry value acted on.
	// +optional
	Retry string `json:"retry,omitempty"`
}

// EdgeRolloutStatus is the observed state of an EdgeRollout.
type EdgeRolloutStatus struct {
	// observedGeneration is the generation of the spec that this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// observedModelGeneration is the generation of the SLMModel (spec.modelRef)
	// that this status describes. The SLMModel is Reconciling until every
	// EdgeRollout that uses it has observed its generation and settled, so
	// that a GitOps tool that changed the model and waits for both objects'
	// kstatus never takes this status, of the previous model, for the new
	// one's.
	// +optional
	ObservedModelGeneration int64 `json:"observedModelGeneration,omitempty"`

	// phase is where the rollout is.
	// +optional
	Phase RolloutPhase `json:"phase,omitempty"`

	// currentStep is the index of the canary step being rolled out, from 0.
	// +optional
	CurrentStep int32 `json:"currentStep"`

	// stepStartedAt is when the current step started, for pauses and deadlines.
	// +optional
	StepStartedAt *metav1.Time `json:"stepStartedAt,omitempty"`

	// pauseStartedAt is when the current step's pause started, once its cohort
	// was healthy.
	// +optional
	PauseStartedAt *metav1.Time `json:"pauseStartedAt,omitempty"`

	// stableRevision is the revision that nodes outside the cohort run.
	// +optional
	StableRevision string `json:"stableRevision,omitempty"`

	// canaryRevision is the revision that the cohort runs.
	// +optional
	CanaryRevision string `json:"canaryRevision,omitempty"`

	// targetNodes is how many nodes the nodeSelector selects.
	// +optional
	TargetNodes int32 `json:"targetNodes,omitempty"`
	// canaryNodes is how many target nodes are in the canary cohort.
	// +optional
	CanaryNodes int32 `json:"canaryNodes,omitempty"`
	// readyNodes is how many target nodes have a Ready inferd pod of their revision.
	// +optional
	ReadyNodes int32 `json:"readyNodes,omitempty"`
	// updatedNodes is how many target nodes run the canary revision.
	// +optional
	UpdatedNodes int32 `json:"updatedNodes,omitempty"`
	// unavailableNodes is how many target nodes have no Ready inferd pod.
	// +optional
	UnavailableNodes int32 `json:"unavailableNodes,omitempty"`
	// unreachableNodes is how many target nodes are NotReady or unreachable.
	// +optional
	UnreachableNodes int32 `json:"unreachableNodes,omitempty"`

	// failingNodes lists up to 20 canary nodes that are not healthy, with why.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	// +listType=atomic
	FailingNodes []FailingNode `json:"failingNodes,omitempty"`

	// conditions: Ready, Progressing, Degraded, Paused, and kstatus's
	// Reconciling and Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// history lists the latest revisions, newest first, at most 10.
	// +optional
	// +kubebuilder:validation:MaxItems=10
	// +listType=atomic
	History []RevisionHistory `json:"history,omitempty"`

	// actions records the last annotation values acted on.
	// +optional
	Actions RolloutActions `json:"actions,omitempty"`

	// variants counts the target nodes per artifact of a model with
	// variants: each node runs the first variant whose nodeSelector matches
	// it, or the default artifact ("default").
	// +optional
	// +kubebuilder:validation:MaxItems=17
	// +listType=map
	// +listMapKey=name
	Variants []VariantStatus `json:"variants,omitempty"`

	// sites count the target nodes per site (their value of
	// strategy.canary.topologyKey, "(none)" for a node without one), so that
	// `kubectl slm status` reads one object however large the fleet: at most
	// 100 sites, those with nodes that are not ready first, then by name.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	// +listType=map
	// +listMapKey=name
	Sites []SiteStatus `json:"sites,omitempty"`
	// siteCount is how many sites the target nodes are in; sites lists them
	// all when it is at most 100.
	// +optional
	SiteCount int32 `json:"siteCount,omitempty"`

	// hardwareClasses are the target nodes per hardware class (the values of
	// analysis.hardwareClassLabels), with what their inferd pods of the
	// canary and the stable revision measured in their self-tests: at most
	// 16 classes, largest first, and the rest added up under "(other)".
	// +optional
	// +kubebuilder:validation:MaxItems=17
	// +listType=map
	// +listMapKey=name
	HardwareClasses []HardwareClassStatus `json:"hardwareClasses,omitempty"`

	// excludedClasses are the hardware classes whose canary failed under
	// analysis.scope HardwareClass: their nodes stay on revision and sit out
	// the rest of the rollout, which goes on for the other classes.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	ExcludedClasses []ExcludedClass `json:"excludedClasses,omitempty"`

	// distribution is how far the model of the revision that nodes move to
	// has reached their caches, and which nodes are left out and why.
	// +optional
	Distribution *DistributionStatus `json:"distribution,omitempty"`
}

// DistributionStatus counts the target nodes by staging state.
type DistributionStatus struct {
	// revision whose model is being staged.
	// +optional
	Revision string `json:"revision,omitempty"`
	// stagedNodes hold the revision's verified model (or run it).
	// +optional
	StagedNodes int32 `json:"stagedNodes"`
	// stagingNodes are downloading it now.
	// +optional
	StagingNodes int32 `json:"stagingNodes"`
	// failedNodes could not stage it; they are among excludedNodes.
	// +optional
	FailedNodes int32 `json:"failedNodes"`
	// unfitNodes cannot hold the model (memory or disk); they are among excludedNodes.
	// +optional
	UnfitNodes int32 `json:"unfitNodes"`
	// waitingNodes are yet to stage: beyond the lookahead, the download
	// budget, or the staging window.
	// +optional
	WaitingNodes int32 `json:"waitingNodes"`
	// nextWindow is when staging may start on more nodes, while outside the
	// staging windows.
	// +optional
	NextWindow *metav1.Time `json:"nextWindow,omitempty"`
	// excludedNodes lists up to 50 target nodes left out of the rollout, with
	// why: they keep the revision they run and do not count as failed canary
	// nodes.
	// +optional
	// +kubebuilder:validation:MaxItems=50
	// +listType=atomic
	ExcludedNodes []ExcludedNode `json:"excludedNodes,omitempty"`
}

// ExcludedNode is a target node left out of the rollout.
type ExcludedNode struct {
	// node name.
	// +required
	Node string `json:"node"`
	// reason in CamelCase: InsufficientMemory, InsufficientDisk, FetchFailed, StagingFailed.
	// +required
	Reason string `json:"reason"`
	// message for people.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// HardwareClassStatus is one hardware class of the target nodes.
type HardwareClassStatus struct {
	// name is the class: the values of analysis.hardwareClassLabels on its
	// nodes, joined by "/" ("-" for a label a node lacks), or "(other)".
	// +required
	// +kubebuilder:validation:MaxLength=512
	Name string `json:"name"`

	// nodes is how many target nodes the class has.
	// +optional
	Nodes int32 `json:"nodes,omitempty"`

	// canary is what the class's nodes of the canary revision show.
	// +optional
	Canary *ClassFigures `json:"canary,omitempty"`

	// stable is what the class's nodes of the stable revision show.
	// +optional
	Stable *ClassFigures `json:"stable,omitempty"`
}

// ClassFigures are the nodes of one revision in one hardware class and what
// their inferd pods measured in their self-tests. The figures are decimal
// strings (Kubernetes APIs carry no floats), empty when no pod reported.
type ClassFigures struct {
	// revision is the revision the figures are of.
	// +required
	// +kubebuilder:validation:MaxLength=64
	Revision string `json:"revision"`

	// nodes run the revision; ready of them have a Ready pod; failed of them
	// failed (crash-looping, a failed self-test, past the progress
	// deadline).
	// +optional
	Nodes int32 `json:"nodes,omitempty"`
	// +optional
	Ready int32 `json:"ready,omitempty"`
	// +optional
	Failed int32 `json:"failed,omitempty"`

	// reports is how many of the nodes' inferd pods reported a self-test.
	// +optional
	Reports int32 `json:"reports,omitempty"`

	// decodeTokensPerSecondP50 and decodeTokensPerSecondP90 are the median
	// and the 90th percentile of the decode rate the reports measured.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	DecodeTokensPerSecondP50 string `json:"decodeTokensPerSecondP50,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=32
	DecodeTokensPerSecondP90 string `json:"decodeTokensPerSecondP90,omitempty"`

	// timeToFirstTokenSecondsP50 and timeToFirstTokenSecondsP90 are the
	// median and the 90th percentile of the time to the first token.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	TimeToFirstTokenSecondsP50 string `json:"timeToFirstTokenSecondsP50,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=32
	TimeToFirstTokenSecondsP90 string `json:"timeToFirstTokenSecondsP90,omitempty"`
}

// ExcludedClass is a hardware class left on its revision because the
// canary failed on it.
type ExcludedClass struct {
	// name is the class, as in hardwareClasses.
	// +required
	// +kubebuilder:validation:MaxLength=512
	Name string `json:"name"`

	// revision is the revision the class's nodes stay on; empty when there
	// was none (they then run nothing of this rollout).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Revision string `json:"revision,omitempty"`

	// canaryRevision is the revision that failed on the class.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	CanaryRevision string `json:"canaryRevision,omitempty"`

	// reason is why, in CamelCase (SlowerThanStable, CanaryFailed).
	// +required
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason"`

	// message says it with the figures.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Message string `json:"message,omitempty"`
}

// SiteStatus counts the target nodes of one site.
type SiteStatus struct {
	// name is the site: the nodes' value of strategy.canary.topologyKey.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// targetNodes is how many target nodes the site has.
	// +optional
	TargetNodes int32 `json:"targetNodes"`
	// canaryNodes is how many of them run the canary revision.
	// +optional
	CanaryNodes int32 `json:"canaryNodes,omitempty"`
	// readyNodes is how many of them have a Ready inferd pod of their revision.
	// +optional
	ReadyNodes int32 `json:"readyNodes"`
	// failingNodes is how many of them are failing canary nodes.
	// +optional
	FailingNodes int32 `json:"failingNodes,omitempty"`
}

// VariantStatus is how many target nodes run one artifact of the model.
type VariantStatus struct {
	// name of the variant, or "default" for the model's own artifact.
	// +required
	Name string `json:"name"`
	// digest of the artifact.
	// +optional
	Digest string `json:"digest,omitempty"`
	// targetNodes is how many target nodes this artifact is for.
	// +optional
	TargetNodes int32 `json:"targetNodes"`
	// readyNodes is how many of them have a Ready inferd pod.
	// +optional
	ReadyNodes int32 `json:"readyNodes"`
}

// EdgeRollout ships an SLMModel to a set of edge nodes progressively: a canary
// cohort that grows step by step while it stays healthy, or rolls back.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=er,categories=slmops
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.spec.modelRef.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Step",type=integer,JSONPath=`.status.currentStep`
// +kubebuilder:printcolumn:name="Canary",type=integer,JSONPath=`.status.canaryNodes`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyNodes`
// +kubebuilder:printcolumn:name="Target",type=integer,JSONPath=`.status.targetNodes`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.canaryRevision`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type EdgeRollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says which model goes to which nodes, and how.
	// +required
	Spec EdgeRolloutSpec `json:"spec"`
	// status is the observed state of the rollout.
	// +optional
	Status EdgeRolloutStatus `json:"status,omitempty"`
}

// EdgeRolloutList is a list of EdgeRollouts.
//
// +kubebuilder:object:root=true
type EdgeRolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EdgeRollout `json:"items"`
}
