package plan

import (
	"fmt"
	"iter"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/inferd/config"
)

// Node is what the controller observed of one node that the rollout
// targets or once targeted.
type Node struct {
	Name string
	// Site is the node's value of spec.strategy.canary.topologyKey.
	Site string
	// Variant is the artifact of the model the node runs (slmopsv1alpha1.DefaultVariant
	// without variants).
	Variant string
	// Target: spec.nodeSelector selects the node.
	Target bool
	// Reachable: the node is Ready.
	Reachable bool
	// Revision is the value of the rollout's cohort label on the node: the
	// revision the node is assigned to run; empty when it has none.
	Revision string
	// Pod is the inferd pod of Revision on the node.
	Pod Pod
	// StageRevision is the value of the rollout's stage label on the node:
	// the revision whose model the node's stager holds or fetches.
	StageRevision string
	// Stage is the stager pod of StageRevision on the node.
	Stage Pod
	// Allocatable is the node's allocatable resources, for the fit check
	// (memory and ephemeral storage).
	Allocatable corev1.ResourceList
	// PeerSite is the node's value of the peer sharing topologyKey.
	PeerSite string
	// Class is the node's hardware class (ClassOf its labels).
	Class string
}

// Pod is what matters of an inferd pod for the analysis.
type Pod struct {
	Exists bool
	Ready  bool
	// Since is when the pod last changed readiness (or was created).
	Since time.Time
	// Failure is a CamelCase reason when the pod cannot become ready by waiting
	// (CrashLoopBackOff, ImagePullBackOff, ...), empty otherwise.
	Failure string
	Message string
	// Restarts of the container; Terminated is its last termination message.
	Restarts   int32
	Terminated string
	// Report is what the pod's inferd measured in its self-test (its
	// config.ReportAnnotation); nil when it reported nothing valid.
	Report *config.Report
}

// Input is everything a decision depends on. It is built by the controller
// from the cluster; the plan is a pure function of it.
type Input struct {
	Generation int64
	// ModelGeneration is the generation of the SLMModel that Revision,
	// Digest and Artifacts were computed from.
	ModelGeneration int64
	// Spec is defaulted (slmopsv1alpha1.DefaultEdgeRolloutSpec): the plan
	// reads its fields without fallbacks.
	Spec        slmopsv1alpha1.EdgeRolloutSpec
	Annotations map[string]string
	Status      slmopsv1alpha1.EdgeRolloutStatus
	// Revision is the revision the current spec and model describe.
	Revision string
	// Digest is the model digest of Revision, for the history.
	Digest string
	// Artifacts are the files of the model of Revision (the default and
	// each variant), for the fit check and the variant counts.
	Artifacts []Artifact
	// Nodes are sorted by name.
	Nodes []Node
	Now   time.Time
	// ConfigError is why the inferd config of Revision fails
	// config.Validate (empty when it passes): such a revision is never
	// rolled out.
	ConfigError string
}

// Event is one Kubernetes Event the plan asks for.
type Event struct {
	Type, Reason, Message string
}

// Plan is what the controller should do now.
type Plan struct {
	Status slmopsv1alpha1.EdgeRolloutStatus
	// Labels maps a node to the revision its cohort label should name; an
	// empty revision removes the label.
	Labels map[string]string
	// Revisions are the revisions whose DaemonSets must exist; the others go.
	Revisions []string
	// StageLabels maps a node to the revision its stage label should name;
	// an empty revision removes the label.
	StageLabels map[string]string
	// StageRevision is the revision whose stager DaemonSets must exist;
	// empty when nothing stages (the others go).
	StageRevision string
	// Sites counts the target nodes of every site, in the order of
	// status.sites (which lists the first maxSites of them): the per-site
	// metrics read it.
	Sites  []slmopsv1alpha1.SiteStatus
	Events []Event
	// RequeueAfter is when time alone changes the decision (a pause or
	// minReadySeconds ends, a deadline passes); zero when only a change in the
	// cluster can.
	RequeueAfter time.Duration
}

// maxFailingNodes bounds status.failingNodes.
const maxFailingNodes = 20

// maxListedMessage bounds the message of each node listed in the status
// (failing and excluded nodes): with the lists' caps, it keeps the object of
// a rollout over thousands of nodes under 64 KiB.
const maxListedMessage = 256

// Compute decides the phase, step, cohort and node assignments of a
// rollout. It runs in stages, each reading what the earlier ones decided:
// the revisions (annotations acted on, a new canary started), the nodes
// that take part (fit and staging exclusions, which depend on the revision
// nodes move to), the phase and cohort, the label changes within the
// budget, and last the counts and the staging of the next nodes.
func Compute(in Input) Plan {
	st := *in.Status.DeepCopy()
	p := Plan{Labels: map[string]string{}}
	now := metav1.NewTime(in.Now)
	d := decider{in: in, st: &st, p: &p, now: now, canary: &in.Spec.Strategy.Canary}

	targets := make([]*Node, 0, len(in.Nodes))
	for i := range in.Nodes {
		n := &in.Nodes[i]
		if n.Target {
			targets = append(targets, n)
		} else if n.Revision != "" {
			p.Labels[n.Name] = "" // the node left the selector: its pod goes
		}
	}
	d.all, d.targets = targets, targets
	d.unfit = fit(in, targets)

	// The revisions.
	d.actOnAnnotations()
	d.followRevision()
	// The nodes that take part: not excluded, and not of a hardware class
	// the canary failed on.
	d.targets = d.eligible(targets)
	d.blockClasses()
	// The phase and the cohort.
	reason, message := d.decide()
	// The label changes, the counts, the stagers.
	if !in.Spec.Paused {
		d.assign()
	}
	d.count()
	d.stage()
	if reason == slmopsv1alpha1.ReasonCompleted || reason == slmopsv1alpha1.ReasonNodesJoining {
		if n := len(d.excluded); n > 0 {
			message += fmt.Sprintf("; %d target nodes excluded (status.distribution.excludedNodes)", n)
		}
		if n := len(st.ExcludedClasses); n > 0 {
			message += fmt.Sprintf("; excluded hardware classes: %d (status.excludedClasses)", n)
		}
	}
	SetPhase(&st, in.Generation, st.Phase, reason, message, now)
	st.ObservedModelGeneration = in.ModelGeneration
	d.partiallyRolledBack()
	st.Variants = variantCounts(in.Artifacts, in.Nodes)
	p.Sites = d.siteCounts()
	st.Sites, st.SiteCount = p.Sites[:min(len(p.Sites), maxSites)], int32(len(p.Sites))
	if len(st.Sites) == 0 {
		st.Sites = nil
	}
	st.HardwareClasses = d.classStatus()

	p.Revisions = d.revisionsInUse()
	p.Status = st
	return p
}

// behind is how many target nodes of excluded hardware classes run their
// class's revision rather than the stable one.
func (d *decider) behind() int {
	n := 0
	for _, t := range d.targets {
		if home := d.home(t); home != d.st.StableRevision && t.Revision == home {
			n++
		}
	}
	return n
}

// decide sets the phase and picks the cohort: held while the spec pauses
// the rollout, steady without a canary, held on an invalid config, and
// moved step by step otherwise.
func (d *decider) decide() (reason, message string) {
	st := d.st
	switch {
	case d.in.Spec.Paused:
		// Hold everything: no node switches revision.
		st.Phase = slmopsv1alpha1.PhasePaused
		return slmopsv1alpha1.ReasonSpecPaused, "spec.paused is true; no node switches revision until it is false"
	case st.CanaryRevision == "":
		return d.steady()
	case d.in.ConfigError != "" && st.CanaryRevision == d.in.Revision:
		return d.invalidConfig()
	default:
		return d.progress()
	}
}

type decider struct {
	in     Input
	st     *slmopsv1alpha1.EdgeRolloutStatus
	p      *Plan
	now    metav1.Time
	canary *slmopsv1alpha1.CanaryStrategy
	// all are the target nodes; targets are those of them that take part
	// (not excluded by a fit check or a failure to stage).
	all, targets []*Node
	// unfit are the target nodes that cannot hold the model, by name.
	unfit map[string]slmopsv1alpha1.ExcludedNode
	// blocked are the target nodes of the hardware classes the canary
	// failed on: out of targets, they go home (see home).
	blocked []*Node
	// excluded are the target nodes left out, by name.
	excluded map[string]slmopsv1alpha1.ExcludedNode
	// order is targets in cohort order, computed once (see ordered).
	order []*Node
	// cohort are the target nodes that should run the canary revision now.
	cohort map[string]bool
	// originFailed are the origin's failures learned from a stager, per
	// site and artifact (see learnOriginFailures).
	originFailed map[siteKey]slmopsv1alpha1.ExcludedNode
	// failing are the canary nodes the step's judgement found failing, by
	// name (status.failingNodes lists at most 20 of them).
	failing map[string]bool
}

func (d *decider) event(typ, reason, format string, args ...any) {
	d.p.Events = append(d.p.Events, Event{Type: typ, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

// wake asks to be reconciled again at t, if t is in the future.
func (d *decider) wake(t time.Time) {
	after := t.Sub(d.in.Now)
	if after <= 0 {
		return
	}
	if d.p.RequeueAfter == 0 || after < d.p.RequeueAfter {
		d.p.RequeueAfter = after
	}
}

// action reports whether annotation carries a value not acted on yet, and
// records it as acted on.
func (d *decider) action(annotation string, recorded *string) bool {
	v := d.in.Annotations[annotation]
	if v == "" || v == *recorded {
		return false
	}
	*recorded = v
	return true
}

// actOnAnnotations applies abort and retry; promote is applied by progress.
func (d *decider) actOnAnnotations() {
	st := d.st
	// A Degraded canary holds its cohort until it is aborted or retried, so
	// abort applies to it too.
	abortable := Active(st.Phase) || st.Phase == slmopsv1alpha1.PhaseDegraded
	if d.action(slmopsv1alpha1.AbortAnnotation, &st.Actions.Abort) && st.CanaryRevision != "" && abortable {
		d.finishCanary(slmopsv1alpha1.PhaseAborted)
		d.event(corev1.EventTypeWarning, slmopsv1alpha1.EventReasonAborted, "Rollout of revision %s aborted by %s; the cohort goes back to %s",
			st.CanaryRevision, slmopsv1alpha1.AbortAnnotation, stableName(st.StableRevision))
	}
	if d.action(slmopsv1alpha1.RetryAnnotation, &st.Actions.Retry) && st.CanaryRevision != "" && !Active(st.Phase) {
		d.startCanary(st.CanaryRevision)
		d.event(corev1.EventTypeNormal, slmopsv1alpha1.EventReasonRetried, "Canary of revision %s started again at step 1 by %s", st.CanaryRevision, slmopsv1alpha1.RetryAnnotation)
	}
}

// Active reports whether a phase is one in which the canary moves or may move.
func Active(phase slmopsv1alpha1.RolloutPhase) bool {
	switch phase {
	case slmopsv1alpha1.PhaseRolledBack, slmopsv1alpha1.PhaseAborted, slmopsv1alpha1.PhaseDegraded, slmopsv1alpha1.PhaseCompleted:
		return false
	}
	return true
}

func stableName(rev string) string {
	if rev == "" {
		return "no revision (there is no stable one yet)"
	}
	return "stable revision " + rev
}

// followRevision starts a canary when the spec or the model describes a new
// revision, and cancels it when they went back to the stable one.
func (d *decider) followRevision() {
	st, rev := d.st, d.in.Revision
	switch {
	case rev == st.StableRevision && st.CanaryRevision != "":
		d.event(corev1.EventTypeNormal, slmopsv1alpha1.EventReasonCanaryCancelled, "The spec went back to stable revision %s; canary %s is cancelled", rev, st.CanaryRevision)
		d.setHistoryPhase(st.CanaryRevision, slmopsv1alpha1.PhaseAborted)
		st.CanaryRevision, st.PauseStartedAt = "", nil
		st.Phase = slmopsv1alpha1.PhaseProgressing
	case rev != st.StableRevision && rev != st.CanaryRevision:
		if st.CanaryRevision != "" && Active(st.Phase) {
			d.setHistoryPhase(st.CanaryRevision, slmopsv1alpha1.PhaseAborted)
			d.event(corev1.EventTypeNormal, slmopsv1alpha1.EventReasonCanarySuperseded, "Revision %s supersedes canary %s", rev, st.CanaryRevision)
		}
		d.startCanary(rev)
		st.History = append([]slmopsv1alpha1.RevisionHistory{{
			Revision: rev, Digest: d.in.Digest, Phase: slmopsv1alpha1.PhaseProgressing, StartedAt: &d.now,
		}}, st.History...)
		if len(st.History) > 10 {
			st.History = st.History[:10]
		}
		d.event(corev1.EventTypeNormal, slmopsv1alpha1.EventReasonCanaryStarted, "Rolling out revision %s (model %s) in %d steps over %d target nodes, replacing %s",
			rev, d.in.Digest, len(d.canary.Steps), len(d.targets), stableName(st.StableRevision))
	}
}

func (d *decider) startCanary(rev string) {
	st := d.st
	st.CanaryRevision = rev
	st.CurrentStep = 0
	st.StepStartedAt = &d.now
	st.PauseStartedAt = nil
	st.FailingNodes = nil
	st.Phase = slmopsv1alpha1.PhaseProgressing
	d.setHistoryPhase(rev, slmopsv1alpha1.PhaseProgressing)
	// A retry tries the classes it failed on again; they stay on their
	// revision until it reaches them.
	for i := range st.ExcludedClasses {
		if st.ExcludedClasses[i].CanaryRevision == rev {
			st.ExcludedClasses[i].CanaryRevision = ""
		}
	}
}

// finishCanary ends the canary in phase: Completed makes it stable; RolledBack
// and Aborted send the cohort back to the stable revision.
func (d *decider) finishCanary(phase slmopsv1alpha1.RolloutPhase) {
	st := d.st
	d.setHistoryPhase(st.CanaryRevision, phase)
	for i := range st.History {
		if st.History[i].Revision == st.CanaryRevision && st.History[i].FinishedAt == nil && phase != slmopsv1alpha1.PhaseDegraded {
			st.History[i].FinishedAt = &d.now
		}
	}
	st.Phase = phase
	st.PauseStartedAt = nil
	if phase == slmopsv1alpha1.PhaseCompleted {
		d.keepClassesOf(st.CanaryRevision)
		st.StableRevision, st.CanaryRevision = st.CanaryRevision, ""
		st.FailingNodes = nil
	}
}

func (d *decider) setHistoryPhase(rev string, phase slmopsv1alpha1.RolloutPhase) {
	for i := range d.st.History {
		if d.st.History[i].Revision == rev {
			d.st.History[i].Phase = phase
			return
		}
	}
}

// steady keeps every target node on the stable revision.
func (d *decider) steady() (reason, message string) {
	st := d.st
	d.cohort = map[string]bool{}
	// An unreachable node that runs another revision switches when it
	// returns (see assign); it does not hold the rollout meanwhile.
	switched, away := 0, 0
	for _, n := range d.targets {
		switch {
		case n.Revision == d.home(n):
			switched++
		case !n.Reachable && n.Revision != "":
			away++
		}
	}
	if st.StableRevision == "" {
		st.Phase = slmopsv1alpha1.PhasePending
		return slmopsv1alpha1.ReasonNoRevision, "no revision to roll out yet"
	}
	if switched+away < len(d.targets) {
		st.Phase = slmopsv1alpha1.PhaseProgressing
		return slmopsv1alpha1.ReasonNodesJoining, fmt.Sprintf("%d of %d target nodes run stable revision %s", switched, len(d.targets), st.StableRevision)
	}
	if switched == 0 {
		// No success without nodes.
		st.Phase = slmopsv1alpha1.PhaseProgressing
		return slmopsv1alpha1.ReasonNoTargetNodes, fmt.Sprintf("no reachable target node runs revision %s (%d target nodes, %d unreachable, %d excluded)",
			st.StableRevision, len(d.targets), away, len(d.excluded))
	}
	st.Phase = slmopsv1alpha1.PhaseCompleted
	if behind := d.behind(); behind > 0 && away == 0 {
		return slmopsv1alpha1.ReasonCompleted, fmt.Sprintf("all %d target nodes run their revision: %d run %s, %d of excluded hardware classes stay on their own",
			len(d.targets), switched-behind, st.StableRevision, behind)
	}
	if away > 0 {
		return slmopsv1alpha1.ReasonCompleted, fmt.Sprintf("%d of %d target nodes run revision %s; %d unreachable nodes switch when they return",
			switched, len(d.targets), st.StableRevision, away)
	}
	return slmopsv1alpha1.ReasonCompleted, fmt.Sprintf("all %d target nodes run revision %s", len(d.targets), st.StableRevision)
}

// failCanary ends a canary that failed for reason: Degraded under
// rollbackPolicy Manual (the cohort stays as it is, for a person to look
// at), RolledBack otherwise.
func (d *decider) failCanary(reason, summary string) (string, string) {
	st := d.st
	if d.in.Spec.RollbackPolicy == slmopsv1alpha1.RollbackManual {
		st.Phase = slmopsv1alpha1.PhaseDegraded
		d.setHistoryPhase(st.CanaryRevision, slmopsv1alpha1.PhaseDegraded)
		d.event(corev1.EventTypeWarning, slmopsv1alpha1.EventReasonDegraded, "Revision %s degraded: %s; rollbackPolicy is Manual", st.CanaryRevision, summary)
		d.freeze()
		return reason, summary + "; annotate " + slmopsv1alpha1.AbortAnnotation + " or " + slmopsv1alpha1.RetryAnnotation
	}
	d.finishCanary(slmopsv1alpha1.PhaseRolledBack)
	d.cohort = map[string]bool{}
	d.event(corev1.EventTypeWarning, slmopsv1alpha1.EventReasonRolledBack, "Revision %s rolled back to %s: %s", st.CanaryRevision, stableName(st.StableRevision), summary)
	return reason, summary + "; rolled back"
}

// failure is the failure with which the canary failed, kept in the Degraded
// condition while the rollout stays failed; nil when there is none.
func (d *decider) failure() *failure {
	c := meta.FindStatusCondition(d.st.Conditions, slmopsv1alpha1.ConditionDegraded)
	if c == nil || c.Status != metav1.ConditionTrue {
		return nil
	}
	switch c.Reason {
	case slmopsv1alpha1.ReasonCanaryFailed, slmopsv1alpha1.ReasonStagingFailed, slmopsv1alpha1.ReasonInvalidConfig, slmopsv1alpha1.ReasonSlowerThanStable:
		return &failure{Reason: c.Reason, Message: c.Message}
	}
	return nil
}

// readyOnCanary counts the target nodes whose pod of the canary revision is
// ready.
func (d *decider) readyOnCanary() int {
	n := 0
	for _, t := range d.targets {
		if t.Revision == d.st.CanaryRevision && t.Pod.Ready {
			n++
		}
	}
	return n
}

// invalidConfig holds a revision whose inferd config inferd would refuse:
// no node switches to it (the cohort goes back to the stable revision), and
// the rollout reports the error until the spec or the model changes.
func (d *decider) invalidConfig() (reason, message string) {
	st := d.st
	d.cohort = map[string]bool{}
	message = fmt.Sprintf("revision %s cannot run: its inferd config is invalid: %s; fix the SLMModel or the EdgeRollout; %s keeps serving",
		st.CanaryRevision, d.in.ConfigError, stableName(st.StableRevision))
	if st.Phase != slmopsv1alpha1.PhaseDegraded {
		d.event(corev1.EventTypeWarning, slmopsv1alpha1.EventReasonInvalidConfig, "%s", message)
	}
	st.Phase = slmopsv1alpha1.PhaseDegraded
	st.PauseStartedAt = nil
	d.setHistoryPhase(st.CanaryRevision, slmopsv1alpha1.PhaseDegraded)
	return slmopsv1alpha1.ReasonInvalidConfig, message
}

// freeze keeps the cohort as it is: a Degraded rollout waits for a person.
func (d *decider) freeze() {
	d.cohort = map[string]bool{}
	for _, n := range d.targets {
		if n.Revision == d.st.CanaryRevision {
			d.cohort[n.Name] = true
		}
	}
}

// waitDeadline is when a step stops waiting for unreachable nodes under the
// Wait policy; the zero time under Skip.
func (d *decider) waitDeadline() time.Time {
	u := d.canary.UnreachableNodes
	if u.Policy != slmopsv1alpha1.UnreachableNodesWait || d.st.StepStartedAt == nil {
		return time.Time{}
	}
	return d.st.StepStartedAt.Add(ptr.Deref(u.Deadline, metav1.Duration{}).Duration)
}

func failingNode(n *Node, reason, message string) slmopsv1alpha1.FailingNode {
	since := metav1.NewTime(n.Pod.Since)
	fn := slmopsv1alpha1.FailingNode{Node: n.Name, Reason: reason, Message: message}
	if !n.Pod.Since.IsZero() {
		fn.Since = &since
	}
	return fn
}

// mergeFailing keeps the first-seen time of nodes that keep failing and
// bounds the list.
func mergeFailing(old, now []slmopsv1alpha1.FailingNode) []slmopsv1alpha1.FailingNode {
	prev := map[string]slmopsv1alpha1.FailingNode{}
	for _, f := range old {
		prev[f.Node] = f
	}
	out := make([]slmopsv1alpha1.FailingNode, 0, min(len(now), maxFailingNodes))
	for _, f := range now {
		if len(out) == maxFailingNodes {
			break
		}
		if p, ok := prev[f.Node]; ok && p.Reason == f.Reason && p.Since != nil {
			f.Since = p.Since
		}
		f.Message = truncate(f.Message, maxListedMessage)
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// assign decides each target node's revision and which nodes switch now,
// within maxUnavailable. A node that has no ready pod already switches
// freely; every other switch takes one unit of the budget, in cohort order.
// An unreachable node that runs a revision is not relabelled while it is
// away: its pod would restart the moment it reconnects, together with every
// other returning node, past the budget. It switches once it is back, paced
// like any other node.
func (d *decider) assign() {
	st := d.st
	budget := scaled(d.canary.MaxUnavailable, len(d.targets), true, 1)
	type change struct{ node, want string }
	var costly []change
	for n := range joined(d.ordered(), d.blocked) {
		want := d.home(n)
		if d.cohort[n.Name] && st.CanaryRevision != "" {
			want = st.CanaryRevision
		}
		unavailable := n.Revision != "" && n.Reachable && !n.Pod.Ready
		if unavailable {
			budget--
		}
		switch {
		case n.Revision == want:
		case !d.mayActivate(n, want):
			// Stage, then activate: the node keeps serving what it runs
			// until the model it moves to is in its cache.
		case !n.Reachable && n.Revision != "":
			// Switches when it returns, within the budget.
		case unavailable || !n.Reachable:
			d.p.Labels[n.Name] = want
		default:
			costly = append(costly, change{n.Name, want})
		}
	}
	for _, c := range costly {
		if budget <= 0 {
			break
		}
		d.p.Labels[c.node] = c.want
		budget--
	}
}

// joined yields the nodes of a, then those of b, without copying them.
func joined(a, b []*Node) iter.Seq[*Node] {
	return func(yield func(*Node) bool) {
		for _, list := range [2][]*Node{a, b} {
			for _, n := range list {
				if !yield(n) {
					return
				}
			}
		}
	}
}

// count fills the node counts of the status.
func (d *decider) count() {
	st := d.st
	var canaryN, ready, updated, unreachable int32
	for _, n := range d.all {
		if st.CanaryRevision != "" && n.Revision == st.CanaryRevision {
			canaryN++
		}
		if n.Revision != "" && n.Revision == d.in.Revision {
			updated++
		}
		// An unreachable node's pod status is stale: it is not counted as
		// ready while its node cannot be seen.
		if n.Revision != "" && n.Pod.Ready && n.Reachable {
			ready++
		}
		if !n.Reachable {
			unreachable++
		}
	}
	total := int32(len(d.all))
	st.TargetNodes, st.CanaryNodes, st.ReadyNodes, st.UpdatedNodes = total, canaryN, ready, updated
	st.UnavailableNodes, st.UnreachableNodes = total-ready, unreachable
}

// revisionsInUse are the revisions whose DaemonSets must exist: stable,
// canary, and any that a node still carries until it switched away.
func (d *decider) revisionsInUse() []string {
	set := map[string]bool{}
	if d.st.StableRevision != "" {
		set[d.st.StableRevision] = true
	}
	for _, e := range d.st.ExcludedClasses {
		if e.Revision != "" {
			set[e.Revision] = true
		}
	}
	if d.st.CanaryRevision != "" && Active(d.st.Phase) {
		set[d.st.CanaryRevision] = true
	}
	for i := range d.in.Nodes {
		n := &d.in.Nodes[i]
		rev := n.Revision
		if want, ok := d.p.Labels[n.Name]; ok {
			rev = want
		}
		if rev != "" {
			set[rev] = true
		}
		// A node switching away keeps its old pod until the label changes.
		if n.Revision != "" {
			set[n.Revision] = true
		}
	}
	out := make([]string, 0, len(set))
	for rev := range set {
		out = append(out, rev)
	}
	slices.Sort(out)
	return out
}
