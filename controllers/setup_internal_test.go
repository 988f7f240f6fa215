package controllers

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/controllers/edgerollout/plan"
	"github.com/slmops/slmops/inferd/config"
)

// TestTheCachedPodKeepsWhatTheOperatorReads: the cache's slim pod gives
// the same observation (readiness and since when, restarts, the failure and
// inferd's termination message, the self-test report) as the full pod, with
// its node, labels and IP, at a fraction of its size.
func TestTheCachedPodKeepsWhatTheOperatorReads(t *testing.T) {
	report, err := config.FormatReport(config.Report{Digest: "sha256:" + strings.Repeat("ab", 32), Passed: true, Reason: config.ReasonPassed, DecodeTokensPerSecond: 12})
	if err != nil {
		t.Fatal(err)
	}
	full := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "fleet-abc-x1", Namespace: "shops", CreationTimestamp: metav1.Unix(1000, 0),
			Labels:        map[string]string{slmopsv1alpha1.RolloutLabel: "fleet", slmopsv1alpha1.RevisionLabel: "abc"},
			Annotations:   map[string]string{config.ReportAnnotation: report},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate}}},
		Spec: corev1.PodSpec{NodeName: "edge-1", Containers: []corev1.Container{{
			Name: "inferd", Image: "ghcr.io/slmops/inferd:v1",
			Env: []corev1.EnvVar{{Name: config.EnvConfig, Value: strings.Repeat(`{"model":"x"}`, 200)}},
		}}, Volumes: []corev1.Volume{{Name: "model-cache"}, {Name: "tmp"}}},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: "10.0.0.7",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.Unix(2000, 0)}},
			ContainerStatuses: []corev1.ContainerStatus{{
				Name: "inferd", RestartCount: 3, Image: "ghcr.io/slmops/inferd:v1", ImageID: "sha256:" + strings.Repeat("cd", 32),
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: "DigestMismatch: want sha256:..."}},
			}},
		},
	}
	slim := full.DeepCopy()
	if _, err := slimPod(slim); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(plan.ObservePod(full), plan.ObservePod(slim)); diff != "" {
		t.Errorf("the slim pod is observed otherwise (-full +slim):\n%s", diff)
	}
	if slim.Spec.NodeName != "edge-1" || slim.Status.PodIP != "10.0.0.7" || !cmp.Equal(slim.Labels, full.Labels) || slim.ManagedFields != nil {
		t.Errorf("slim pod %+v lost its node, IP or labels, or kept its managed fields", slim)
	}
	a, _ := json.Marshal(full)
	b, _ := json.Marshal(slim)
	if len(b)*2 > len(a) {
		t.Errorf("the slim pod is %d bytes of the full pod's %d; want under half", len(b), len(a))
	}
}
