package plan

import (
	corev1 "k8s.io/api/core/v1"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/inferd/config"
)

// waitingFailures are container states that waiting will not fix.
var waitingFailures = map[string]bool{
	"CrashLoopBackOff": true, "ImagePullBackOff": true, "ErrImagePull": true, "InvalidImageName": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
}

// ObservePod is what the analysis reads of an inferd pod: readiness and
// since when, a waiting state that waiting will not fix, the restarts and
// inferd's last termination message.
func ObservePod(p *corev1.Pod) Pod { return ObservePodWith(p, ParseReport) }

// PodReady reports whether p's Ready condition is true, as ObservePod
// reads it, without parsing its report.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ParseReport is the report an annotation value holds, or nil when it is
// not a valid one.
func ParseReport(v string) *config.Report {
	r, err := config.ParseReport(v)
	if err != nil {
		return nil
	}
	return &r
}

// ObservePodWith is ObservePod with the report parsed by parse, which a
// controller may answer from what it parsed before: at fleet size, parsing
// every pod's report on every reconcile was a large part of the operator's
// garbage. parse must return ParseReport's result, or one equal to it.
func ObservePodWith(p *corev1.Pod, parse func(string) *config.Report) Pod {
	ps := Pod{Exists: true, Since: p.CreationTimestamp.Time}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			ps.Ready = c.Status == corev1.ConditionTrue
			if !c.LastTransitionTime.IsZero() {
				ps.Since = c.LastTransitionTime.Time
			}
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		ps.Restarts = max(ps.Restarts, cs.RestartCount)
		if t := cs.LastTerminationState.Terminated; t != nil {
			ps.Terminated = t.Message
		}
		if w := cs.State.Waiting; w != nil && waitingFailures[w.Reason] {
			ps.Failure, ps.Message = w.Reason, w.Message
		}
		if t := cs.LastTerminationState.Terminated; ps.Failure == "" && !ps.Ready && t != nil && t.Message != "" && cs.RestartCount > 0 {
			// inferd writes why it failed (a bad digest, a failed self-test)
			// to its termination message.
			ps.Message = t.Message
		}
	}
	if v, ok := p.Annotations[config.ReportAnnotation]; ok {
		ps.Report = parse(v)
	}
	if ps.Failure == "" && p.Status.Phase == corev1.PodFailed {
		ps.Failure, ps.Message = slmopsv1alpha1.FailingPodFailed, p.Status.Message
	}
	return ps
}
