package edgerollout

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/controllers/edgerollout/plan"
	"github.com/slmops/slmops/inferd/config"
)

// The node cache is shared by every rollout on a node, and inferd evicts
// only what no rollout pins (see inferd/fetch.Prune). A rollout's pins are
// every artifact of its stable and canary revisions: what its nodes run or
// may go back to. They live in the ConfigMap <rollout>-cache, mounted into
// its serving and stager pods, and not in the pod template: they change
// whenever the stable revision does, and a template change would restart
// every pod of the rollout. The kubelet updates a mounted ConfigMap in
// place.

const (
	cacheVolume    = "cache-pins"
	cacheMountPath = "/etc/slmops/cache"
)

// cacheConfig is how the pods of r share the node cache: their rollout's
// pins file and name, and the operator's bound on unpinned files.
func cacheConfig(r *slmopsv1alpha1.EdgeRollout, d Defaults) config.Cache {
	return config.Cache{
		PinsFile: cacheMountPath + "/" + config.PinsKey,
		Owner:    r.Namespace + "." + r.Name,
		MaxBytes: d.ModelCacheMaxBytes,
	}
}

// addCacheVolume mounts the rollout's cache pins; optional, so that a pod
// starts before the operator wrote them (inferd then evicts nothing).
func addCacheVolume(r *slmopsv1alpha1.EdgeRollout, spec *corev1.PodSpec) {
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: cacheVolume, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: slmopsv1alpha1.CacheConfigMapName(r.Name)}, Optional: ptr.To(true),
	}}})
	c := &spec.Containers[0]
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: cacheVolume, MountPath: cacheMountPath, ReadOnly: true})
}

// reconcileCache writes the rollout's cache pins from its status, as the
// plan just wrote it. It runs before the DaemonSets are made, so that the
// pods of a new canary find their pins.
func (r *Reconciler) reconcileCache(ctx context.Context, ro *slmopsv1alpha1.EdgeRollout, arts []plan.Artifact, obs *observation) error {
	data, err := json.Marshal(config.Pins{Digests: plan.CachePins(&ro.Status, arts, obs.daemonSets)})
	if err != nil {
		return err
	}
	return r.applyConfigMap(ctx, ro, slmopsv1alpha1.CacheConfigMapName(ro.Name), slmopsv1alpha1.ComponentModelCachePins,
		config.PinsKey, string(data), "the cache pins")
}

// applyConfigMap makes the rollout's ConfigMap name hold data under key
// (and nothing else): created owned and labelled, updated only when it
// changed, and never written when another owner holds the name. what names
// the document in errors and logs.
func (r *Reconciler) applyConfigMap(ctx context.Context, ro *slmopsv1alpha1.EdgeRollout, name, component, key, data, what string) error {
	nn := types.NamespacedName{Namespace: ro.Namespace, Name: name}
	var cm corev1.ConfigMap
	err := r.Get(ctx, nn, &cm)
	if client.IgnoreNotFound(err) != nil {
		return err
	}
	if err == nil {
		if !metav1.IsControlledBy(&cm, ro) {
			return fmt.Errorf("ConfigMap %s exists and is not this rollout's; %s cannot be written: rename or delete it", nn, what)
		}
		if len(cm.Data) == 1 && cm.Data[key] == data {
			return nil
		}
		cm.Data = map[string]string{key: data}
		if err := r.Update(ctx, &cm); err != nil {
			return fmt.Errorf("update ConfigMap %s: %w", klog.KObj(&cm), err)
		}
		ctrl.LoggerFrom(ctx).V(1).Info("Updated "+what, "configMap", klog.KObj(&cm))
		return nil
	}
	cm = corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ro.Namespace, Labels: map[string]string{
			slmopsv1alpha1.ManagedByLabel: slmopsv1alpha1.ManagedByValue, slmopsv1alpha1.RolloutLabel: ro.Name,
			slmopsv1alpha1.ComponentLabel: component,
		}},
		Data: map[string]string{key: data},
	}
	if err := controllerutil.SetControllerReference(ro, &cm, r.Scheme()); err != nil {
		return err
	}
	if err := r.Create(ctx, &cm); err != nil {
		if apierrors.IsAlreadyExists(err) {
			// The cache holds only the operator's ConfigMaps (by label):
			// one it cannot see is someone else's.
			return fmt.Errorf("ConfigMap %s exists and is not this rollout's; %s cannot be written: rename or delete it", nn, what)
		}
		return fmt.Errorf("create ConfigMap %s: %w", klog.KObj(&cm), err)
	}
	return nil
}
