// Package controllers wires the slmops controllers into a controller-runtime
// manager: the cache (which objects it holds: only the operator's own Pods,
// DaemonSets and ConfigMaps), the shared field index and each controller.
// Each reconciled kind has its own package beside this file:
// controllers/edgerollout (with its pure decisions in edgerollout/plan) and
// controllers/slmmodel; what they share lives in controllers/index.
//
// What it owns: the wiring, and nothing that decides. What it may not
// touch: a controller's logic (this package calls SetupWithManager and
// nothing else of theirs).
package controllers

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/controllers/edgerollout"
	"github.com/slmops/slmops/controllers/index"
	"github.com/slmops/slmops/controllers/slmmodel"
	"github.com/slmops/slmops/inferd/config"
)

// The manager elects its leader through a Lease in its own namespace (and
// the leader election records a core/v1 Event there), and records Events.
//
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=slmops-system,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",namespace=slmops-system,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// CacheOptions narrows what the manager caches: only the Pods, DaemonSets and
// ConfigMaps that slmops manages (never every Pod of the cluster), and Nodes
// and Pods with only the fields a decision reads (slimNode, slimPod). On a
// fleet of thousands that is most of the manager's memory: at 5,000 nodes,
// with two pods a node while they switch, full pods (each with inferd's
// config) and nodes (their node info, addresses, conditions) were the
// larger part of it.
func CacheOptions() cache.Options {
	managed := labels.SelectorFromSet(labels.Set{slmopsv1alpha1.ManagedByLabel: slmopsv1alpha1.ManagedByValue})
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		// Nodes and Pods keep only what a decision reads.
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:       {Label: managed, Transform: slimPod},
			&appsv1.DaemonSet{}: {Label: managed},
			// The peer directories and cache pins the operator writes, and no other ConfigMap.
			&corev1.ConfigMap{}: {Label: managed},
			&corev1.Node{}:      {Transform: slimNode},
		},
	}
}

// slimNode keeps what the operator reads of a Node (see the rollout's
// observe and its node predicate): its name, labels and deletion, its
// allocatable resources (the fit check) and whether it is Ready (since
// when and why are not read). The operator writes a Node only with a
// label patch built from its name, never from the cached object.
func slimNode(o any) (any, error) {
	n, ok := o.(*corev1.Node)
	if !ok {
		return o, nil
	}
	n.ObjectMeta = slimMeta(n.ObjectMeta, nil)
	n.Spec = corev1.NodeSpec{}
	st := corev1.NodeStatus{Allocatable: n.Status.Allocatable}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			st.Conditions = []corev1.NodeCondition{{Type: c.Type, Status: c.Status}}
		}
	}
	n.Status = st
	return n, nil
}

// slimPod keeps what the operator reads of an inferd pod (see
// plan.ObservePod and the observation): its name, labels, creation and
// deletion, inferd's report annotation, its node, its phase, message, IP,
// Ready condition and its containers' restarts, waiting and last
// termination. The operator never writes a Pod.
func slimPod(o any) (any, error) {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return o, nil
	}
	p.ObjectMeta = slimMeta(p.ObjectMeta, []string{config.ReportAnnotation})
	p.Spec = corev1.PodSpec{NodeName: p.Spec.NodeName}
	st := corev1.PodStatus{Phase: p.Status.Phase, Message: p.Status.Message, PodIP: p.Status.PodIP}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			st.Conditions = []corev1.PodCondition{{Type: c.Type, Status: c.Status, LastTransitionTime: c.LastTransitionTime}}
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		slim := corev1.ContainerStatus{Name: cs.Name, RestartCount: cs.RestartCount, Ready: cs.Ready}
		if w := cs.State.Waiting; w != nil {
			slim.State.Waiting = &corev1.ContainerStateWaiting{Reason: w.Reason, Message: w.Message}
		}
		if t := cs.LastTerminationState.Terminated; t != nil {
			slim.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: t.ExitCode, Reason: t.Reason, Message: t.Message}
		}
		st.ContainerStatuses = append(st.ContainerStatuses, slim)
	}
	p.Status = st
	return p, nil
}

// slimMeta is the metadata a cached object keeps: its identity, version,
// labels, creation and deletion, and of its annotations only those named.
func slimMeta(m metav1.ObjectMeta, annotations []string) metav1.ObjectMeta {
	out := metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion, Generation: m.Generation,
		CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp, Labels: m.Labels}
	for _, a := range annotations {
		if v, ok := m.Annotations[a]; ok {
			if out.Annotations == nil {
				out.Annotations = map[string]string{}
			}
			out.Annotations[a] = v
		}
	}
	return out
}

// Options are how the controllers run.
type Options struct {
	// Defaults fill in what rollouts leave unset.
	Defaults edgerollout.Defaults
	// Workers is how many rollouts are reconciled at once
	// (edgerollout.DefaultWorkers when 0).
	Workers int
	// Resync is the safety-net re-read of a moving rollout
	// (edgerollout.DefaultResync when 0). Tests make it long, to show that
	// every decision is taken on watch events.
	Resync time.Duration
}

// SetupWithManager registers every slmops controller with mgr.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	if err := index.Register(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	if err := (&edgerollout.Reconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Informers: mgr.GetCache(),
		Recorder:  mgr.GetEventRecorder("slmops"),
		Defaults:  opts.Defaults,
		Resync:    opts.Resync,
		Workers:   opts.Workers,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&slmmodel.Reconciler{Client: mgr.GetClient()}).SetupWithManager(mgr)
}
