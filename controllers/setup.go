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
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/controllers/edgerollout"
	"github.com/slmops/slmops/controllers/index"
	"github.com/slmops/slmops/controllers/slmmodel"
)

// The manager elects its leader through a Lease in its own namespace (and
// the leader election records a core/v1 Event there), and records Events.
//
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=slmops-system,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",namespace=slmops-system,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// CacheOptions narrows what the manager caches: only the Pods, DaemonSets and
// ConfigMaps that slmops manages (never every Pod of the cluster), and Nodes
// and Pods without the parts no decision reads (a Node's container image
// lists, a Pod's spec but its node; managed fields of both), which is most
// of their size on a fleet of thousands: at 5,000 nodes, with two pods a
// node while they switch, the pod specs alone (each with inferd's config)
// were the larger part of the manager's memory.
func CacheOptions() cache.Options {
	managed := labels.SelectorFromSet(labels.Set{slmopsv1alpha1.ManagedByLabel: slmopsv1alpha1.ManagedByValue})
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:       {Label: managed, Transform: slimPod},
			&appsv1.DaemonSet{}: {Label: managed},
			// The peer directories and cache pins the operator writes, and no other ConfigMap.
			&corev1.ConfigMap{}: {Label: managed},
			&corev1.Node{}:      {Transform: slimNode},
		},
	}
}

func slimNode(o any) (any, error) {
	if n, ok := o.(*corev1.Node); ok {
		n.ManagedFields = nil
		n.Status.Images = nil
		n.Status.VolumesAttached = nil
		n.Status.VolumesInUse = nil
	}
	return o, nil
}

// slimPod keeps what the operator reads of an inferd pod (its metadata, its
// node, its status; see plan.ObservePod and the observation): the operator
// never writes a Pod, so nothing is sent back without its spec.
func slimPod(o any) (any, error) {
	if p, ok := o.(*corev1.Pod); ok {
		p.ManagedFields = nil
		p.Spec = corev1.PodSpec{NodeName: p.Spec.NodeName}
		for i := range p.Status.ContainerStatuses {
			cs := &p.Status.ContainerStatuses[i]
			cs.ImageID, cs.ContainerID, cs.VolumeMounts, cs.AllocatedResources, cs.Resources = "", "", nil, nil, nil
		}
	}
	return o, nil
}

// Options are how the controllers run.
type Options struct {
	// Defaults fill in what rollouts leave unset.
	Defaults edgerollout.Defaults
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
		Recorder:  mgr.GetEventRecorder("slmops"),
		Defaults:  opts.Defaults,
		Resync:    opts.Resync,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&slmmodel.Reconciler{Client: mgr.GetClient()}).SetupWithManager(mgr)
}
