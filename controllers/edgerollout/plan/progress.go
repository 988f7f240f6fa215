package plan

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// A canary step moves in two halves. judge looks at the nodes of the step's
// cohort and sums up what they show in a judgement; then the checks, in
// order, each read the judgement alone and either decide or pass to the
// next: failed (too many cohort nodes failed, or too many target nodes were
// excluded), healthy (the cohort is not ready enough yet), staging (the
// cohort is healthy but short of nodes that must stage first), paused (the
// step's pause has not ended) and promote (the step is done: the next step,
// or the end). The decider then carries out the first decision.

// judgement is what the cohort of the current step shows, and everything
// the checks need to decide on it.
type judgement struct {
	// Step is the current step's index of Steps; Size its cohort size of
	// Total target nodes.
	Step, Steps, Size, Total int
	// Healthy cohort nodes run the canary ready for minReadySeconds;
	// Counted are those that count towards the success ratio (reachable
	// ones, and unreachable ones while the Wait policy waits); Needed is
	// the success ratio of Counted.
	Healthy, Counted, Needed int
	// ToSwitch cohort nodes do not run the canary yet; Unreachable of the
	// cohort cannot be seen.
	ToSwitch, Unreachable int
	// Waiting: the Wait policy waits for unreachable nodes until
	// WaitDeadline.
	Waiting      bool
	WaitDeadline time.Time
	// Failing cohort nodes cannot become ready by waiting; more than
	// MaxFailed fails the canary.
	Failing   []slmopsv1alpha1.FailingNode
	MaxFailed int
	// TooManyExcluded: more target nodes are excluded than
	// maxExcludedNodes allows; ExcludedSummary says which and why.
	TooManyExcluded bool
	ExcludedSummary string
	// Degraded: the canary already failed under rollbackPolicy Manual and
	// waits for a person; Kept is the failure it reports meanwhile.
	Degraded bool
	Kept     *failure
	// Unstaged is how many cohort slots wait for nodes to stage.
	Unstaged int
	// AwaitingReports is how many healthy cohort nodes have not reported
	// their self-test yet while the analysis compares the canary's figures
	// with stable's; ReportsDue is when the last of them is no longer
	// waited for (reportGrace after its pod turned Ready).
	AwaitingReports int
	ReportsDue      time.Time
	// Slower are the hardware classes on which the healthy cohort is slower
	// than the stable revision beyond the relative thresholds.
	Slower []classFailure
	// Pause is the step's pause, which started at PauseStartedAt (now,
	// when it starts with this decision).
	Pause          *slmopsv1alpha1.CanaryPause
	PauseStartedAt time.Time
	// Promote: a person promoted the step (the promote annotation).
	Promote bool
	// ReadyOnCanary target nodes run the canary ready.
	ReadyOnCanary int
	Excluded      int
	Revision      string
	Now           time.Time
}

// failure is a failure reason and message kept in the Degraded condition.
type failure struct{ Reason, Message string }

// stepName names the step in messages.
func (j judgement) stepName() string {
	return fmt.Sprintf("step %d of %d (%d of %d target nodes)", j.Step+1, j.Steps, j.Size, j.Total)
}

// last reports whether the step is the canary's last.
func (j judgement) last() bool { return j.Step == j.Steps-1 }

// done reports whether every cohort node switched that can: only
// unreachable ones are left, and the Wait policy no longer waits for them.
func (j judgement) done() bool {
	return j.ToSwitch == 0 || (j.ToSwitch == j.Unreachable && !j.Waiting)
}

// decision is what a check decided.
type decision int

const (
	// fail ends the canary: RolledBack, or Degraded under Manual.
	fail decision = iota + 1
	// hold keeps a Degraded canary as it is, for a person.
	hold
	// wait keeps the step going: nodes have yet to become healthy or stage.
	wait
	// pause holds a healthy step until its pause ends or it is promoted.
	pause
	// promote ends the step: the next one starts, or the canary completes.
	promote
)

// verdict is a check's decision and why.
type verdict struct {
	Decision        decision
	Reason, Message string
	// Wake is when time alone may change the verdict; zero when only the
	// cluster can.
	Wake time.Time
}

// check decides on a judgement, or passes (ok false) to the next check.
type check struct {
	name   string
	decide func(judgement) (v verdict, ok bool)
}

// checks run in order; the first that decides wins. promote always
// decides.
var checks = []check{
	{"failed", checkFailed},
	{"healthy", checkHealthy},
	{"staging", checkStaging},
	{"reports", checkReports},
	{"slower", checkSlower},
	{"paused", checkPaused},
	{"promote", checkPromote},
}

// runChecks is the verdict of the first check that decides, and its name.
func runChecks(j judgement) (verdict, string) {
	for _, c := range checks {
		if v, ok := c.decide(j); ok {
			return v, c.name
		}
	}
	panic("plan: the promote check always decides")
}

// checkFailed fails the canary when more cohort nodes failed than
// maxFailedNodes, or more target nodes were excluded than maxExcludedNodes;
// a canary that already failed under Manual is held with its failure.
func checkFailed(j judgement) (verdict, bool) {
	if j.Degraded {
		if j.Kept != nil && j.Kept.Reason != slmopsv1alpha1.ReasonCanaryFailed {
			return verdict{Decision: hold, Reason: j.Kept.Reason, Message: j.Kept.Message}, true
		}
		return verdict{Decision: hold, Reason: slmopsv1alpha1.ReasonCanaryFailed, Message: fmt.Sprintf("%d canary nodes failed; annotate %s or %s",
			len(j.Failing), slmopsv1alpha1.AbortAnnotation, slmopsv1alpha1.RetryAnnotation)}, true
	}
	if len(j.Failing) > j.MaxFailed {
		names := make([]string, 0, 3)
		for _, f := range j.Failing[:min(3, len(j.Failing))] {
			names = append(names, f.Node+" ("+f.Reason+")")
		}
		return verdict{Decision: fail, Reason: slmopsv1alpha1.ReasonCanaryFailed, Message: fmt.Sprintf("%d canary nodes failed, more than maxFailedNodes %d: %s",
			len(j.Failing), j.MaxFailed, strings.Join(names, ", "))}, true
	}
	if j.TooManyExcluded {
		return verdict{Decision: fail, Reason: slmopsv1alpha1.ReasonStagingFailed, Message: j.ExcludedSummary}, true
	}
	return verdict{}, false
}

// checkHealthy waits while the cohort has nodes to switch or fewer healthy
// nodes than the success ratio needs, unless a person promoted the step.
func checkHealthy(j judgement) (verdict, bool) {
	if j.Promote || (j.done() && j.Healthy >= j.Needed) {
		return verdict{}, false
	}
	if j.Waiting && j.Unreachable > 0 {
		return verdict{Decision: wait, Reason: slmopsv1alpha1.ReasonWaitingForUnreachableNodes, Wake: j.WaitDeadline,
			Message: fmt.Sprintf("%s: %d cohort nodes are unreachable; waiting until %s", j.stepName(), j.Unreachable, j.WaitDeadline.UTC().Format(time.RFC3339))}, true
	}
	return verdict{Decision: wait, Reason: slmopsv1alpha1.ReasonStepProgressing,
		Message: fmt.Sprintf("%s: %d healthy, %d needed, %d to switch", j.stepName(), j.Healthy, j.Needed, j.ToSwitch)}, true
}

// checkStaging waits while a healthy cohort is short of nodes that must
// stage the model before they join.
func checkStaging(j judgement) (verdict, bool) {
	if j.Promote || j.Unstaged <= 0 {
		return verdict{}, false
	}
	return verdict{Decision: wait, Reason: slmopsv1alpha1.ReasonWaitingForStaging,
		Message: fmt.Sprintf("%s: %d cohort nodes are healthy; %d more must stage the model before they join", j.stepName(), j.Healthy, j.Unstaged)}, true
}

// reportGrace is how long after a healthy cohort node's pod turned Ready
// its self-test report is waited for, when the analysis compares the
// canary's figures with stable's. inferd writes the report as it turns
// Ready, so it is normally there within a second; without the wait, a step
// could be promoted on readiness alone before the figures that should
// decide it arrive. A node whose report never comes (reports off) holds
// the step this long, then is not compared.
const reportGrace = slmopsv1alpha1.ReportGraceSeconds * time.Second

// checkReports waits while healthy cohort nodes have yet to report the
// self-test figures that checkSlower compares, up to reportGrace each.
func checkReports(j judgement) (verdict, bool) {
	if j.Promote || j.AwaitingReports == 0 {
		return verdict{}, false
	}
	return verdict{Decision: wait, Reason: slmopsv1alpha1.ReasonWaitingForReports, Wake: j.ReportsDue,
		Message: fmt.Sprintf("%s: %d healthy; waiting until %s for the self-test reports of %d of them, which the analysis compares with stable's",
			j.stepName(), j.Healthy, j.ReportsDue.UTC().Format(time.RFC3339), j.AwaitingReports)}, true
}

// checkSlower fails the canary when, on some hardware class, its healthy
// cohort nodes measured a slower self-test than the stable revision's
// beyond analysis.minRelativeThroughput or maxRelativeTimeToFirstToken. A
// person's promotion overrides it.
func checkSlower(j judgement) (verdict, bool) {
	if j.Promote || len(j.Slower) == 0 {
		return verdict{}, false
	}
	msgs := make([]string, 0, len(j.Slower))
	for _, c := range j.Slower {
		msgs = append(msgs, c.Message)
	}
	return verdict{Decision: fail, Reason: slmopsv1alpha1.ReasonSlowerThanStable, Message: strings.Join(msgs, "; ")}, true
}

// checkPaused holds a healthy step with a pause until the pause ends, or
// for good when it has no duration, unless a person promoted the step.
func checkPaused(j judgement) (verdict, bool) {
	if j.Promote || j.Pause == nil {
		return verdict{}, false
	}
	if j.Pause.Duration == nil {
		return verdict{Decision: pause, Reason: slmopsv1alpha1.ReasonStepPaused,
			Message: fmt.Sprintf("%s healthy; paused until promoted (annotate %s)", j.stepName(), slmopsv1alpha1.PromoteAnnotation)}, true
	}
	end := j.PauseStartedAt.Add(j.Pause.Duration.Duration)
	if !end.After(j.Now) {
		return verdict{}, false
	}
	return verdict{Decision: pause, Reason: slmopsv1alpha1.ReasonStepPaused, Wake: end,
		Message: fmt.Sprintf("%s healthy; paused until %s", j.stepName(), end.UTC().Format(time.RFC3339))}, true
}

// checkPromote ends the step. The last one completes the canary only with
// the canary ready on at least one node, even when a person promoted it: no
// success without nodes.
func checkPromote(j judgement) (verdict, bool) {
	if j.last() && j.ReadyOnCanary == 0 {
		if j.Total == 0 {
			return verdict{Decision: wait, Reason: slmopsv1alpha1.ReasonNoTargetNodes, Message: fmt.Sprintf(
				"%s: no target node can take revision %s (%d excluded); a rollout completes only on at least one node", j.stepName(), j.Revision, j.Excluded)}, true
		}
		return verdict{Decision: wait, Reason: slmopsv1alpha1.ReasonStepProgressing, Message: fmt.Sprintf(
			"%s: no target node runs revision %s ready yet; a rollout completes only on at least one node", j.stepName(), j.Revision)}, true
	}
	return verdict{Decision: promote}, true
}

// progress moves the canary: pick the cohort of the current step, judge it,
// run the checks and carry out their verdict.
func (d *decider) progress() (reason, message string) {
	st := d.st
	steps := canarySteps(d.canary)
	if int(st.CurrentStep) >= len(steps) {
		st.CurrentStep = int32(len(steps) - 1)
	}
	if st.Phase == slmopsv1alpha1.PhaseRolledBack || st.Phase == slmopsv1alpha1.PhaseAborted {
		return d.stopped()
	}
	if d.action(slmopsv1alpha1.PromoteFullAnnotation, &st.Actions.PromoteFull) && Active(st.Phase) {
		st.CurrentStep = int32(len(steps) - 1)
		st.StepStartedAt, st.PauseStartedAt = &d.now, nil
		d.event(corev1.EventTypeNormal, slmopsv1alpha1.EventReasonPromotedFull, "Revision %s promoted to every target node by %s", st.CanaryRevision, slmopsv1alpha1.PromoteFullAnnotation)
	}
	promoted := d.action(slmopsv1alpha1.PromoteAnnotation, &st.Actions.Promote) && Active(st.Phase)

	j := d.judge(steps, promoted)
	d.failing = map[string]bool{}
	for _, f := range j.Failing {
		d.failing[f.Node] = true
	}
	before := st.FailingNodes
	st.FailingNodes = mergeFailing(st.FailingNodes, j.Failing)
	v, _ := runChecks(j)
	d.wake(v.Wake)
	switch v.Decision {
	case fail:
		// Under scope HardwareClass, a failure of some classes sends only
		// them back, and the step goes on for the others.
		if d.excludeClasses(d.classesOf(v, j)) {
			st.FailingNodes = before
			return d.progress()
		}
		if v.Reason == slmopsv1alpha1.ReasonStagingFailed {
			// The excluded nodes become the failing nodes, so that status
			// says which and why after the rollback, when nothing is
			// excluded any more.
			st.FailingNodes = mergeFailing(nil, d.excludedAsFailing())
		}
		return d.failCanary(v.Reason, v.Message)
	case hold:
		d.freeze()
		if v.Reason != slmopsv1alpha1.ReasonCanaryFailed {
			st.FailingNodes = before // the excluded nodes, as they failed
		}
		return v.Reason, v.Message
	case wait:
		st.Phase = slmopsv1alpha1.PhaseProgressing
		return v.Reason, v.Message
	}
	if j.Pause != nil && !j.Promote && st.PauseStartedAt == nil {
		st.PauseStartedAt = &d.now
		d.event(corev1.EventTypeNormal, slmopsv1alpha1.EventReasonStepPaused, "%s healthy; paused", j.stepName())
	}
	if v.Decision == pause {
		st.Phase = slmopsv1alpha1.PhasePaused
		return v.Reason, v.Message
	}
	return d.promote(j)
}

// stopped is a canary that was rolled back or aborted: the cohort runs the
// stable revision until a person retries.
func (d *decider) stopped() (reason, message string) {
	st := d.st
	d.cohort = map[string]bool{}
	if f := d.failure(); f != nil {
		return f.Reason, f.Message
	}
	return string(st.Phase), fmt.Sprintf("revision %s is not rolled out (%s); the cohort runs %s; annotate %s to try again",
		st.CanaryRevision, strings.ToLower(string(st.Phase)), stableName(st.StableRevision), slmopsv1alpha1.RetryAnnotation)
}

// judge picks the cohort of the current step and sums up what its nodes
// show.
func (d *decider) judge(steps []slmopsv1alpha1.CanaryStep, promoted bool) judgement {
	st, canary := d.st, d.canary
	waitDeadline := d.waitDeadline()
	j := judgement{
		Step: int(st.CurrentStep), Steps: len(steps), Total: len(d.targets),
		Waiting: waitDeadline.After(d.in.Now), WaitDeadline: waitDeadline,
		MaxFailed: scaled(d.in.Spec.Analysis.MaxFailedNodes, len(d.targets), false, 0),
		Degraded:  st.Phase == slmopsv1alpha1.PhaseDegraded, Kept: d.failure(),
		Pause: steps[st.CurrentStep].Pause, PauseStartedAt: d.in.Now,
		Promote: promoted, Excluded: len(d.excluded), Revision: st.CanaryRevision, Now: d.in.Now,
	}
	if st.PauseStartedAt != nil {
		j.PauseStartedAt = st.PauseStartedAt.Time
	}
	j.Size = stepSize(steps, j.Step, j.Total)
	d.cohort = selectCohort(d.ordered(), st.CanaryRevision, j.Size, j.Waiting, d.canJoin)

	healthy := map[string]bool{}
	minReady := time.Duration(ptr.Deref(canary.MinReadySeconds, 0)) * time.Second
	deadline := time.Duration(canary.ProgressDeadlineSeconds) * time.Second
	a := d.in.Spec.Analysis
	compares := ratio(a.MinRelativeThroughput) > 0 || ratio(a.MaxRelativeTimeToFirstToken) > 0
	for _, n := range d.targets {
		if !d.cohort[n.Name] {
			continue
		}
		if n.Revision != st.CanaryRevision {
			j.ToSwitch++
		}
		if !n.Reachable {
			j.Unreachable++
			if j.Waiting {
				j.Counted++ // Wait: an unreachable cohort node holds the step
			}
			continue
		}
		j.Counted++
		if n.Revision != st.CanaryRevision {
			continue
		}
		switch {
		case n.Pod.Ready && !n.Pod.Since.Add(minReady).After(d.in.Now):
			j.Healthy++
			healthy[n.Name] = true
			if compares && n.Pod.Report == nil {
				if due := n.Pod.Since.Add(reportGrace); due.After(d.in.Now) {
					j.AwaitingReports++
					if due.After(j.ReportsDue) {
						j.ReportsDue = due
					}
				}
			}
		case n.Pod.Ready:
			d.wake(n.Pod.Since.Add(minReady))
		case n.Pod.Report != nil && !n.Pod.Report.Passed:
			// inferd said why it cannot serve (a failed self-test, a file
			// that fails verification): no deadline to wait for.
			j.Failing = append(j.Failing, failingNode(n, n.Pod.Report.Reason, n.Pod.Report.Message))
		case n.Pod.Failure != "":
			j.Failing = append(j.Failing, failingNode(n, n.Pod.Failure, n.Pod.Message))
		default:
			since := n.Pod.Since
			if !n.Pod.Exists && st.StepStartedAt != nil {
				since = st.StepStartedAt.Time
			}
			if since.IsZero() || since.Add(deadline).After(d.in.Now) {
				d.wake(since.Add(deadline))
				continue
			}
			j.Failing = append(j.Failing, failingNode(n, slmopsv1alpha1.FailingProgressDeadlineExceeded,
				fmt.Sprintf("inferd pod of revision %s not ready %ds after it started", st.CanaryRevision, canary.ProgressDeadlineSeconds)))
		}
	}
	sort.Slice(j.Failing, func(a, b int) bool { return j.Failing[a].Node < j.Failing[b].Node })
	j.Needed = int(math.Ceil(successRatio(d.in.Spec.Analysis.SuccessRatio)*float64(j.Counted) - 1e-9))
	if !j.Degraded {
		j.ExcludedSummary, j.TooManyExcluded = d.tooManyExcluded()
	}
	if !j.Promote && j.done() && j.Healthy >= j.Needed {
		j.Unstaged = d.unstagedSlots(j.Size)
		j.Slower = d.slowerClasses(healthy)
	}
	j.ReadyOnCanary = d.readyOnCanary()
	return j
}

// promote ends the step: the canary completes after its last step, and the
// next step starts otherwise.
func (d *decider) promote(j judgement) (reason, message string) {
	st := d.st
	if j.Promote {
		d.event(corev1.EventTypeNormal, slmopsv1alpha1.EventReasonStepPromoted, "%s promoted by %s", j.stepName(), slmopsv1alpha1.PromoteAnnotation)
	} else {
		d.event(corev1.EventTypeNormal, slmopsv1alpha1.EventReasonStepPromoted, "%s healthy: %d of %d ready", j.stepName(), j.Healthy, j.Counted)
	}
	if j.last() {
		rev := st.CanaryRevision
		d.finishCanary(slmopsv1alpha1.PhaseCompleted)
		d.cohort = map[string]bool{}
		d.event(corev1.EventTypeNormal, slmopsv1alpha1.EventReasonCompleted, "Revision %s is stable on the target nodes", rev)
		return slmopsv1alpha1.ReasonCompleted, fmt.Sprintf("revision %s is stable on %d target nodes", rev, j.Total)
	}
	steps := canarySteps(d.canary)
	st.CurrentStep++
	st.StepStartedAt, st.PauseStartedAt = &d.now, nil
	st.Phase = slmopsv1alpha1.PhaseProgressing
	size := stepSize(steps, int(st.CurrentStep), j.Total)
	d.cohort = selectCohort(d.ordered(), st.CanaryRevision, size, d.waitDeadline().After(d.in.Now), d.canJoin)
	return slmopsv1alpha1.ReasonStepStarted, fmt.Sprintf("step %d of %d (%d of %d target nodes) started", st.CurrentStep+1, len(steps), size, j.Total)
}

// classesOf are the hardware classes a failed verdict is about: the slower
// classes, or those with more failing cohort nodes than maxFailedNodes of
// theirs; none for a failure of the whole rollout (too many exclusions).
func (d *decider) classesOf(v verdict, j judgement) []classFailure {
	switch v.Reason {
	case slmopsv1alpha1.ReasonSlowerThanStable:
		return j.Slower
	case slmopsv1alpha1.ReasonCanaryFailed:
		return d.failingClasses(j.Failing)
	}
	return nil
}
