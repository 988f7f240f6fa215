package localcluster

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// OfflineAnnotation takes a simulated node offline while it is set.
const OfflineAnnotation = "slmops.dev/simulate-offline"

var stageGVR = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "stages"}

// SetNodeOffline makes kwok report the node NotReady (offline) or Ready again.
// The node's pods carry the annotation too while it is offline: a Stage sees
// only the pod, and the one that restores a running pod's Ready condition
// after the controller-manager cleared it (slmops-pod-ready-again) must
// leave the pods of a node whose kubelet is cut off alone. Offline, the node
// is annotated before its pods; online, after them.
func (c *Cluster) SetNodeOffline(ctx context.Context, node string, offline bool) error {
	var value any
	if offline {
		value = "true"
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{OfflineAnnotation: value}}})
	patchNode := func() error {
		_, err := c.Clientset.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	}
	if offline {
		if err := patchNode(); err != nil {
			return err
		}
	}
	pods, err := c.Clientset.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return fmt.Errorf("list the pods of %s: %w", node, err)
	}
	for _, p := range pods.Items {
		if _, err := c.Clientset.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("annotate pod %s/%s of %s: %w", p.Namespace, p.Name, node, err)
		}
	}
	if !offline {
		return patchNode()
	}
	return nil
}

// InjectCrashLoop makes every new pod whose first container runs image on one of
// nodes crash-loop instead of becoming ready, until RemoveFault(name). It is a
// kwok Stage with weight 1, so it wins over the default pod lifecycle (weight 0).
func (c *Cluster) InjectCrashLoop(ctx context.Context, name, image string, nodes []string) error {
	values := make([]any, 0, len(nodes))
	for _, n := range nodes {
		values = append(values, n)
	}
	stage := podStage("slmops-fault-"+name, []any{
		map[string]any{"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
		map[string]any{"key": ".status.phase", "operator": "In", "values": []any{"Pending"}},
		map[string]any{"key": ".spec.containers.[0].image", "operator": "In", "values": []any{image}},
		map[string]any{"key": ".spec.nodeName", "operator": "In", "values": values},
	}, 300, crashLoopStatus)
	dc, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	if _, err := dc.Resource(stageGVR).Create(ctx, stage, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("inject fault %s: %w", name, err)
	}
	return nil
}

// RemoveFault removes a fault that InjectCrashLoop added.
func (c *Cluster) RemoveFault(ctx context.Context, name string) error {
	dc, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	err = dc.Resource(stageGVR).Delete(ctx, "slmops-fault-"+name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// crashLoopStatus is the status of a pod whose container keeps crashing.
const crashLoopStatus = `{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  type: Ready
  reason: ContainersNotReady
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  started: false
  restartCount: 4
  state:
    waiting:
      reason: CrashLoopBackOff
      message: "simulated: back-off restarting failed container"
  lastState:
    terminated:
      exitCode: 1
      reason: Error
      message: "simulated: self-test failed"
{{ end }}
phase: Running
startTime: {{ $now | Quote }}
`

// podStage is a kwok Stage of weight 1 for Pods that match exprs: it wins
// over the default pod lifecycle (weight 0) and, after delayMs, writes
// statusTemplate.
func podStage(name string, exprs []any, delayMs int64, statusTemplate string) *unstructured.Unstructured {
	spec := map[string]any{
		"resourceRef": map[string]any{"apiGroup": "v1", "kind": "Pod"},
		"weight":      int64(1),
		"selector":    map[string]any{"matchExpressions": exprs},
		"next":        map[string]any{"statusTemplate": statusTemplate},
	}
	if delayMs > 0 {
		spec["delay"] = map[string]any{"durationMilliseconds": delayMs}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1",
		"kind":       "Stage",
		"metadata":   map[string]any{"name": name},
		"spec":       spec,
	}}
}
