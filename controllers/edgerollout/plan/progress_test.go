package plan

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// healthyStep is the judgement of step 1 of 3 whose cohort of 2 of 20
// nodes is healthy and done: every check passes it to promote.
func healthyStep() judgement {
	return judgement{Step: 0, Steps: 3, Size: 2, Total: 20, Healthy: 2, Counted: 2, Needed: 2, ReadyOnCanary: 2, Revision: "new", Now: t0, PauseStartedAt: t0}
}

// TestEachCheckDecidesOnTheJudgementAlone: every check of the chain, given
// only a judgement, decides as its rule says, and passes when its rule does
// not apply.
func TestEachCheckDecidesOnTheJudgementAlone(t *testing.T) {
	failing := []slmopsv1alpha1.FailingNode{{Node: "n1", Reason: "CrashLoopBackOff"}, {Node: "n2", Reason: "SelfTestFailed"}}
	cases := map[string]struct {
		check    func(judgement) (verdict, bool)
		edit     func(*judgement)
		decides  bool
		decision decision
		reason   string
		message  string // a part of the message
		wake     time.Time
	}{
		"failed: more failing nodes than maxFailedNodes fails the canary": {
			check: checkFailed, edit: func(j *judgement) { j.Failing, j.MaxFailed = failing, 1 },
			decides: true, decision: fail, reason: slmopsv1alpha1.ReasonCanaryFailed, message: "2 canary nodes failed, more than maxFailedNodes 1: n1 (CrashLoopBackOff), n2",
		},
		"failed: as many failing nodes as maxFailedNodes pass": {
			check: checkFailed, edit: func(j *judgement) { j.Failing, j.MaxFailed = failing, 2 },
		},
		"failed: too many excluded nodes fail the staging": {
			check: checkFailed, edit: func(j *judgement) { j.TooManyExcluded, j.ExcludedSummary = true, "5 of 20 target nodes excluded" },
			decides: true, decision: fail, reason: slmopsv1alpha1.ReasonStagingFailed, message: "5 of 20 target nodes excluded",
		},
		"failed: a Degraded canary is held with the failure it keeps": {
			check: checkFailed, edit: func(j *judgement) {
				j.Degraded, j.Kept = true, &failure{Reason: slmopsv1alpha1.ReasonStagingFailed, Message: "origin said 404"}
			},
			decides: true, decision: hold, reason: slmopsv1alpha1.ReasonStagingFailed, message: "origin said 404",
		},
		"failed: a Degraded canary without a kept failure is held as CanaryFailed": {
			check: checkFailed, edit: func(j *judgement) { j.Degraded, j.Failing = true, failing },
			decides: true, decision: hold, reason: slmopsv1alpha1.ReasonCanaryFailed, message: "2 canary nodes failed; annotate",
		},
		"healthy: fewer healthy nodes than needed wait": {
			check: checkHealthy, edit: func(j *judgement) { j.Healthy = 1 },
			decides: true, decision: wait, reason: slmopsv1alpha1.ReasonStepProgressing, message: "step 1 of 3 (2 of 20 target nodes): 1 healthy, 2 needed, 0 to switch",
		},
		"healthy: nodes still to switch wait": {
			check: checkHealthy, edit: func(j *judgement) { j.ToSwitch = 1 },
			decides: true, decision: wait, reason: slmopsv1alpha1.ReasonStepProgressing, message: "1 to switch",
		},
		"healthy: unreachable cohort nodes under Wait wait until the deadline": {
			check: checkHealthy, edit: func(j *judgement) {
				j.ToSwitch, j.Unreachable, j.Waiting, j.WaitDeadline = 1, 1, true, t0.Add(5*time.Minute)
			},
			decides: true, decision: wait, reason: slmopsv1alpha1.ReasonWaitingForUnreachableNodes, message: "waiting until 2026-11-28T12:05:00Z", wake: t0.Add(5 * time.Minute),
		},
		"healthy: unreachable cohort nodes past the deadline do not hold the step": {
			check: checkHealthy, edit: func(j *judgement) { j.ToSwitch, j.Unreachable = 1, 1 },
		},
		"healthy: a promoted step passes however it looks": {
			check: checkHealthy, edit: func(j *judgement) { j.Healthy, j.Promote = 0, true },
		},
		"staging: a healthy cohort short of staged nodes waits": {
			check: checkStaging, edit: func(j *judgement) { j.Unstaged = 3 },
			decides: true, decision: wait, reason: slmopsv1alpha1.ReasonWaitingForStaging, message: "3 more must stage the model",
		},
		"staging: nothing to stage passes": {
			check: checkStaging, edit: func(*judgement) {},
		},
		"reports: healthy nodes yet to report the figures the analysis compares wait": {
			check: checkReports, edit: func(j *judgement) { j.AwaitingReports, j.ReportsDue = 2, t0.Add(20*time.Second) },
			decides: true, decision: wait, reason: slmopsv1alpha1.ReasonWaitingForReports,
			message: "waiting until " + t0.Add(20*time.Second).UTC().Format(time.RFC3339) + " for the self-test reports of 2 of them", wake: t0.Add(20 * time.Second),
		},
		"reports: a promoted step does not wait for reports": {
			check: checkReports, edit: func(j *judgement) { j.AwaitingReports, j.ReportsDue, j.Promote = 2, t0.Add(20*time.Second), true },
		},
		"reports: nothing awaited passes": {
			check: checkReports, edit: func(*judgement) {},
		},
		"paused: a pause without a duration holds until promoted": {
			check: checkPaused, edit: func(j *judgement) { j.Pause = &slmopsv1alpha1.CanaryPause{} },
			decides: true, decision: pause, reason: slmopsv1alpha1.ReasonStepPaused, message: "paused until promoted",
		},
		"paused: a pause that has not ended holds and wakes at its end": {
			check: checkPaused, edit: func(j *judgement) {
				j.Pause = &slmopsv1alpha1.CanaryPause{Duration: &metav1.Duration{Duration: time.Hour}}
				j.PauseStartedAt = t0.Add(-10 * time.Minute)
			},
			decides: true, decision: pause, reason: slmopsv1alpha1.ReasonStepPaused, message: "paused until 2026-11-28T12:50:00Z", wake: t0.Add(50 * time.Minute),
		},
		"paused: a pause that has ended passes": {
			check: checkPaused, edit: func(j *judgement) {
				j.Pause = &slmopsv1alpha1.CanaryPause{Duration: &metav1.Duration{Duration: time.Hour}}
				j.PauseStartedAt = t0.Add(-time.Hour)
			},
		},
		"paused: a promoted step is not held": {
			check: checkPaused, edit: func(j *judgement) { j.Pause, j.Promote = &slmopsv1alpha1.CanaryPause{}, true },
		},
		"promote: a step that is not the last promotes": {
			check: checkPromote, edit: func(*judgement) {}, decides: true, decision: promote,
		},
		"promote: the last step without a ready node waits": {
			check: checkPromote, edit: func(j *judgement) { j.Step, j.ReadyOnCanary, j.Promote = 2, 0, true },
			decides: true, decision: wait, reason: slmopsv1alpha1.ReasonStepProgressing, message: "no target node runs revision new ready yet",
		},
		"promote: the last step of no target node says so": {
			check: checkPromote, edit: func(j *judgement) { j.Step, j.Total, j.ReadyOnCanary, j.Excluded = 2, 0, 0, 4 },
			decides: true, decision: wait, reason: slmopsv1alpha1.ReasonNoTargetNodes, message: "no target node can take revision new (4 excluded)",
		},
		"promote: the last step with a ready node promotes": {
			check: checkPromote, edit: func(j *judgement) { j.Step = 2 }, decides: true, decision: promote,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			j := healthyStep()
			tc.edit(&j)
			v, ok := tc.check(j)
			if ok != tc.decides {
				t.Fatalf("decided %v (%+v); want %v", ok, v, tc.decides)
			}
			if !ok {
				return
			}
			if v.Decision != tc.decision || v.Reason != tc.reason || !strings.Contains(v.Message, tc.message) || !v.Wake.Equal(tc.wake) {
				t.Errorf("verdict %+v; want decision %d, reason %q, a message with %q, wake %s", v, tc.decision, tc.reason, tc.message, tc.wake)
			}
		})
	}
}

// TestTheChainStopsAtTheFirstDecision: the checks run in order, so a
// judgement that more than one would decide on gets the earliest's verdict,
// and one that none stops reaches promote.
func TestTheChainStopsAtTheFirstDecision(t *testing.T) {
	for _, tc := range []struct {
		edit func(*judgement)
		want string
	}{
		{func(*judgement) {}, "promote"},
		{func(j *judgement) { j.Pause = &slmopsv1alpha1.CanaryPause{} }, "paused"},
		{func(j *judgement) { j.Pause, j.Unstaged = &slmopsv1alpha1.CanaryPause{}, 1 }, "staging"},
		{func(j *judgement) {
			j.AwaitingReports, j.Slower = 1, []classFailure{{Class: "arm64", Reason: slmopsv1alpha1.ReasonSlowerThanStable}}
		}, "reports"},
		{func(j *judgement) { j.AwaitingReports, j.Unstaged = 1, 1 }, "staging"},
		{func(j *judgement) { j.Unstaged, j.Healthy = 1, 0 }, "healthy"},
		{func(j *judgement) { j.Healthy, j.TooManyExcluded = 0, true }, "failed"},
	} {
		j := healthyStep()
		tc.edit(&j)
		if _, got := runChecks(j); got != tc.want {
			t.Errorf("%+v: decided by %s; want %s", j, got, tc.want)
		}
	}
}
