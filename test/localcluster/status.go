package localcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// reportWaiting reports the container waiting, not ready.
func (p *podProcess) reportWaiting(ctx context.Context, pod *corev1.Pod, reason, message string) {
	if reason+": "+message == p.waiting {
		return // a retry that fails as before: once is enough
	}
	p.waiting = reason + ": " + message
	p.k.logf("%s on %s: %s", p, p.node, p.waiting)
	ctr := &pod.Spec.Containers[0]
	p.patchContainer(ctx, ctr, "", corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}, false, false)
}

// reportContainer reports the container running, ready or not.
func (p *podProcess) reportContainer(ctx context.Context, ctr *corev1.Container, pid int, state corev1.ContainerState, ready bool) {
	p.waiting = ""
	p.patchContainer(ctx, ctr, processID(pid), state, true, ready)
}

// reportExit reports that the process exited and waits for a restart.
func (p *podProcess) reportExit(ctx context.Context, ctr *corev1.Container, pid int, began time.Time, code int32, logStart int64, backoff time.Duration) {
	reason := "Error"
	if code == 0 {
		reason = "Completed"
	}
	p.restarts++
	p.waiting = ""
	p.lastTerminated = &corev1.ContainerStateTerminated{
		ExitCode: code, Reason: reason, Message: p.terminationMessage(ctr, code, logStart),
		StartedAt: metav1.NewTime(began), FinishedAt: metav1.Now(), ContainerID: processID(pid),
	}
	waiting := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
		Reason:  "CrashLoopBackOff",
		Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", backoff, ctr.Name, p.name, p.namespace, p.uid),
	}}
	p.patchContainer(ctx, ctr, processID(pid), waiting, false, false)
}

// terminationMessage is what the process wrote to its termination log, or
// the end of its log when it failed without one and the container asks for
// that.
func (p *podProcess) terminationMessage(ctr *corev1.Container, code int32, logStart int64) string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "termination-log"))
	if msg := strings.TrimSpace(string(b)); msg != "" || code == 0 || ctr.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		return truncate(msg, maxTerminationMessage)
	}
	f, err := os.Open(filepath.Join(p.dir, "log"))
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(logStart, io.SeekStart); err != nil {
		return ""
	}
	b, _ = io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > fallbackLogLines {
		lines = lines[len(lines)-fallbackLogLines:]
	}
	msg := strings.Join(lines, "\n")
	if len(msg) > fallbackLogBytes {
		msg = msg[len(msg)-fallbackLogBytes:]
	}
	return msg
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func processID(pid int) string {
	if pid == 0 {
		return ""
	}
	return "process://" + strconv.Itoa(pid)
}

// patchContainer reports the container's status and the pod's Ready and
// ContainersReady conditions that follow from it.
//
// kwok may write its Stage's status once more after the harness took over
// (a job it queued for an older version of the pod), which would leave the pod
// ContainerCreating for good: so the status is kept, and written again
// whenever the pod is seen to differ from it (see drifted), as a kubelet's
// status manager does.
func (p *podProcess) patchContainer(ctx context.Context, ctr *corev1.Container, id string, state corev1.ContainerState, started, ready bool) {
	if p.readySince.IsZero() || ready != p.ready {
		p.ready, p.readySince = ready, metav1.Now()
	}
	status := corev1.ContainerStatus{
		Name: ctr.Name, Image: ctr.Image, ContainerID: id,
		State: state, Ready: ready, Started: &started, RestartCount: p.restarts,
	}
	if p.lastTerminated != nil {
		status.LastTerminationState = corev1.ContainerState{Terminated: p.lastTerminated}
	}
	condition := func(t corev1.PodConditionType) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: p.readySince}
		if !ready {
			c.Status, c.Reason = corev1.ConditionFalse, "ContainersNotReady"
			c.Message = fmt.Sprintf("containers with unready status: [%s]", ctr.Name)
		}
		return c
	}
	// A strategic merge patch merges conditions by type (PodScheduled and
	// Initialized stay) and replaces the atomic containerStatuses; it needs no
	// resourceVersion, so it never conflicts.
	data, err := json.Marshal(map[string]any{"status": map[string]any{
		"conditions":        []corev1.PodCondition{condition(corev1.PodReady), condition(corev1.ContainersReady)},
		"containerStatuses": []corev1.ContainerStatus{status},
	}})
	if err != nil {
		p.k.logf("%s: encode status patch: %v", p, err)
		return
	}
	p.reportMu.Lock()
	p.reported, p.desired = &status, data
	p.reportMu.Unlock()
	p.writeStatus(ctx, false)
}

// drifted reports whether the pod's status differs from the one reported.
func (p *podProcess) drifted(pod *corev1.Pod) bool {
	p.reportMu.Lock()
	want := p.reported
	p.reportMu.Unlock()
	if want == nil {
		return false
	}
	if pod.Status.PodIP != p.ipReported() || len(pod.Status.ContainerStatuses) != 1 {
		return true
	}
	got := pod.Status.ContainerStatuses[0]
	kind := func(s corev1.ContainerState) int {
		switch {
		case s.Running != nil:
			return 1
		case s.Terminated != nil:
			return 2
		}
		return 0
	}
	return got.Ready != want.Ready || got.RestartCount != want.RestartCount || kind(got.State) != kind(want.State) ||
		podReadyCondition(pod) != want.Ready
}

func podReadyCondition(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ipReported is the pod IP once it was reported.
func (p *podProcess) ipReported() string {
	p.reportMu.Lock()
	defer p.reportMu.Unlock()
	return p.ipPatched
}

// resyncStatus writes the status again when the pod drifted from it.
func (p *podProcess) resyncStatus(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.resync:
			// The IP too when kwok replaced it, or when it was never written
			// (the node went offline first).
			reported := p.ipReported()
			p.writeStatus(ctx, reported == "" || p.latest.Load().Status.PodIP != reported)
			// A drift seen in a version older than the write is harmless, but
			// must not turn into a busy loop.
			if !sleep(ctx, probePeriod) {
				return
			}
		}
	}
}

// writeStatus writes the pod IP (when ip) and the latest reported status.
//
// Nothing is written while the node is offline: reconnect asks for the write
// when it returns.
func (p *podProcess) writeStatus(ctx context.Context, ip bool) {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	if p.k.nodeOffline(p.node) != nil {
		return
	}
	if ip {
		// A merge patch replaces podIPs, in case kwok gave the pod one before
		// the harness took it over.
		data, _ := json.Marshal(map[string]any{"status": map[string]any{"podIP": p.ip, "podIPs": []any{map[string]any{"ip": p.ip}}}})
		if p.patchStatus(ctx, types.MergePatchType, data) {
			p.reportMu.Lock()
			p.ipPatched = p.ip
			p.reportMu.Unlock()
		}
	}
	p.reportMu.Lock()
	data := p.desired
	p.reportMu.Unlock()
	if data != nil {
		p.patchStatus(ctx, types.StrategicMergePatchType, data)
	}
}

// patchStatus patches the pod's status, retrying what may pass on a retry,
// and reports whether it succeeded.
func (p *podProcess) patchStatus(ctx context.Context, pt types.PatchType, data []byte) bool {
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		_, err := p.k.clientset.CoreV1().Pods(p.namespace).Patch(ctx, p.name, pt, data, metav1.PatchOptions{FieldManager: fieldOwner}, "status")
		if err == nil {
			return true
		}
		if apierrors.IsNotFound(err) || ctx.Err() != nil {
			return false
		}
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || attempt == 5 {
			p.k.logf("%s: patch status: %v", p, err)
			return false
		}
		if !sleep(ctx, delay) {
			return false
		}
		delay *= 2
	}
}
