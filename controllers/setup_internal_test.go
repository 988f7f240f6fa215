package controllers

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
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
			Labels:          map[string]string{slmopsv1alpha1.RolloutLabel: "fleet", slmopsv1alpha1.RevisionLabel: "abc"},
			Annotations:     map[string]string{config.ReportAnnotation: report, "kubectl.kubernetes.io/restartedAt": "2026-12-01T00:00:00Z"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "DaemonSet", Name: "fleet-abc", UID: "u1"}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate}}},
		Spec: corev1.PodSpec{NodeName: "edge-1", Containers: []corev1.Container{{
			Name: "inferd", Image: "ghcr.io/slmops/inferd:v1",
			Env: []corev1.EnvVar{{Name: config.EnvConfig, Value: strings.Repeat(`{"model":"x"}`, 200)}},
		}}, Volumes: []corev1.Volume{{Name: "model-cache"}, {Name: "tmp"}}},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: "10.0.0.7", PodIPs: []corev1.PodIP{{IP: "10.0.0.7"}}, HostIP: "192.168.1.7", QOSClass: corev1.PodQOSBurstable,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Unix(1500, 0)},
				{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.Unix(2000, 0), Reason: "ContainersNotReady"},
				{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.Unix(2000, 0)},
			},
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
	if slim.Spec.NodeName != "edge-1" || slim.Status.PodIP != "10.0.0.7" || !cmp.Equal(slim.Labels, full.Labels) || slim.ManagedFields != nil ||
		slim.Name != full.Name || slim.Namespace != full.Namespace || !slim.CreationTimestamp.Equal(&full.CreationTimestamp) {
		t.Errorf("slim pod %+v lost its name, node, IP or labels, or kept its managed fields", slim)
	}
	if len(slim.Annotations) != 1 || len(slim.Status.Conditions) != 1 || slim.OwnerReferences != nil {
		t.Errorf("slim pod kept annotations %v, conditions %v, owners %v; want only the report and Ready", slim.Annotations, slim.Status.Conditions, slim.OwnerReferences)
	}
	// A pod deleted, or failed, is seen as such.
	gone := full.DeepCopy()
	gone.DeletionTimestamp, gone.Status.Phase, gone.Status.Message = &metav1.Time{Time: metav1.Unix(3000, 0).Time}, corev1.PodFailed, "evicted"
	gone.Status.ContainerStatuses[0].State = corev1.ContainerState{}
	slimGone := gone.DeepCopy()
	if _, err := slimPod(slimGone); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(plan.ObservePod(gone), plan.ObservePod(slimGone)); diff != "" || slimGone.DeletionTimestamp.IsZero() {
		t.Errorf("the slim failed, deleted pod is observed otherwise (deleted %v; -full +slim):\n%s", slimGone.DeletionTimestamp, diff)
	}
	a, _ := json.Marshal(full)
	b, _ := json.Marshal(slim)
	if len(b)*2 > len(a) {
		t.Errorf("the slim pod is %d bytes of the full pod's %d; want under half", len(b), len(a))
	}
}

// TestTheCachedNodeKeepsWhatTheOperatorReads: the cache's slim node keeps
// its name, labels, deletion, allocatable resources and Ready condition (its
// status only), at a fraction of a kubelet-written node's size.
func TestTheCachedNodeKeepsWhatTheOperatorReads(t *testing.T) {
	for _, ready := range []corev1.ConditionStatus{corev1.ConditionTrue, corev1.ConditionFalse, corev1.ConditionUnknown} {
		full := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "edge-1", UID: "n1", ResourceVersion: "42", DeletionTimestamp: &metav1.Time{Time: metav1.Unix(3000, 0).Time},
				Labels:        map[string]string{"kubernetes.io/arch": "arm64", "topology.kubernetes.io/zone": "shop-7", slmopsv1alpha1.CohortLabel("shops", "fleet"): "abc"},
				Annotations:   map[string]string{"node.alpha.kubernetes.io/ttl": "0", "k3s.io/node-args": strings.Repeat(`"--flag",`, 40)},
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "k3s", Operation: metav1.ManagedFieldsOperationUpdate}}},
			Spec: corev1.NodeSpec{PodCIDR: "10.42.0.0/24", ProviderID: "k3s://edge-1"},
			Status: corev1.NodeStatus{
				Capacity:    corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("8Gi")},
				Allocatable: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("7Gi"), corev1.ResourceCPU: resource.MustParse("4")},
				Conditions: []corev1.NodeCondition{
					{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
					{Type: corev1.NodeReady, Status: ready, Reason: "KubeletReady", Message: "kubelet is posting ready status", LastHeartbeatTime: metav1.Unix(2000, 0)},
				},
				Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.7"}, {Type: corev1.NodeHostName, Address: "edge-1"}},
				NodeInfo:  corev1.NodeSystemInfo{MachineID: strings.Repeat("f", 32), KernelVersion: "6.6.0", OSImage: "Debian GNU/Linux 12", Architecture: "arm64", KubeletVersion: "v1.36.3+k3s1"},
				Images:    []corev1.ContainerImage{{Names: []string{"ghcr.io/slmops/inferd:v1"}, SizeBytes: 1 << 26}},
			},
		}
		slim := full.DeepCopy()
		if _, err := slimNode(slim); err != nil {
			t.Fatal(err)
		}
		if slim.Name != "edge-1" || !cmp.Equal(slim.Labels, full.Labels) || slim.DeletionTimestamp.IsZero() || slim.ResourceVersion != "42" ||
			!cmp.Equal(slim.Status.Allocatable, full.Status.Allocatable) || len(slim.Status.Conditions) != 1 || slim.Status.Conditions[0].Type != corev1.NodeReady || slim.Status.Conditions[0].Status != ready {
			t.Errorf("slim node %+v lost what the operator reads", slim)
		}
		a, _ := json.Marshal(full)
		b, _ := json.Marshal(slim)
		if len(b)*2 > len(a) {
			t.Errorf("the slim node is %d bytes of the full node's %d; want under half", len(b), len(a))
		}
	}
}
