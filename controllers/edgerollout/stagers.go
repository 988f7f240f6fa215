package edgerollout

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/controllers/edgerollout/plan"
	"github.com/slmops/slmops/inferd/config"
)

const (
	// peersVolume and peersMountPath are where inferd pods find the peer
	// directory of their rollout.
	peersVolume    = "peers"
	peersMountPath = "/etc/slmops/peers"
)

// stageDaemonSetName is the stager DaemonSet of one artifact of a revision.
func stageDaemonSetName(rollout, revision, variant string) string {
	suffix := "-" + revision + "-stage"
	if variant != slmopsv1alpha1.DefaultVariant {
		suffix = "-" + revision + "-" + shortVariant(variant) + "-stage"
	}
	if max := 63 - len(suffix); len(rollout) > max {
		rollout = strings.TrimRight(rollout[:max], "-.")
	}
	return rollout + suffix
}

// reconcileStagers makes the stager DaemonSets what the plan says: those
// of the plan's stage revision, one per artifact, and no other.
func (r *Reconciler) reconcileStagers(ctx context.Context, s *scope) error {
	log := ctrl.LoggerFrom(ctx)
	ro, model, arts, obs, p := s.ro, s.model, s.arts, s.obs, s.plan
	want := map[string]*appsv1.DaemonSet{}
	if p.StageRevision != "" && p.StageRevision == obs.in.Revision {
		for _, a := range arts {
			ds, err := buildStageDaemonSet(ro, model, p.StageRevision, a, r.Defaults)
			if err != nil {
				return err
			}
			want[ds.Name] = ds
		}
	}
	for _, ds := range obs.stagers {
		w := want[ds.Name]
		if w != nil && w.Annotations[slmopsv1alpha1.StageConfigAnnotation] == ds.Annotations[slmopsv1alpha1.StageConfigAnnotation] {
			delete(want, ds.Name)
			continue
		}
		// Not needed, or outdated: a new one is made once this one is gone.
		delete(want, ds.Name)
		if err := r.Delete(ctx, ds, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete stager DaemonSet %s: %w", klog.KObj(ds), err)
		}
		log.Info("Deleted stager DaemonSet", "daemonSet", klog.KObj(ds), "revision", ds.Labels[slmopsv1alpha1.StageRevisionLabel])
	}
	for _, ds := range want {
		if err := controllerutil.SetControllerReference(ro, ds, r.Scheme()); err != nil {
			return err
		}
		if err := r.Create(ctx, ds); client.IgnoreAlreadyExists(err) != nil {
			return fmt.Errorf("create stager DaemonSet %s: %w", klog.KObj(ds), err)
		}
		log.Info("Created stager DaemonSet", "daemonSet", klog.KObj(ds), "revision", p.StageRevision)
	}
	return nil
}

// reconcilePeers writes the rollout's peer directory: for each artifact of
// the current revision, up to maxPeers nodes per site that hold its verified
// file (ready stagers first, then ready serving pods), by pod address.
func (r *Reconciler) reconcilePeers(ctx context.Context, s *scope) error {
	ro, arts, obs := s.ro, s.arts, s.obs
	name := slmopsv1alpha1.PeersConfigMapName(ro.Name)
	if ro.Spec.Distribution.PeerSharing == nil {
		var cm corev1.ConfigMap
		err := r.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: name}, &cm)
		if err == nil && metav1.IsControlledBy(&cm, ro) {
			return client.IgnoreNotFound(r.Delete(ctx, &cm))
		}
		return client.IgnoreNotFound(err)
	}
	data, err := json.Marshal(peerDirectory(ro, arts, obs))
	if err != nil {
		return err
	}
	return r.applyConfigMap(ctx, ro, name, slmopsv1alpha1.ComponentPeerDirectory, config.PeerDirectoryKey, string(data), "the peer directory")
}

// peerDirectory lists the holders of each artifact's file per site.
func peerDirectory(ro *slmopsv1alpha1.EdgeRollout, arts []plan.Artifact, obs *observation) *config.PeerDirectory {
	maxPeers := int(ro.Spec.Distribution.PeerSharing.MaxPeers)
	port := ro.Spec.Template.Port
	digestOf := map[string]string{}
	for _, a := range arts {
		digestOf[a.Name] = a.Digest
	}
	dir := &config.PeerDirectory{Nodes: map[string]string{}, Blobs: map[string]map[string][]config.PeerEntry{}}
	variantOf := map[string]string{}
	for _, n := range obs.in.Nodes {
		if n.Target && n.PeerSite != "" {
			dir.Nodes[n.Name], variantOf[n.Name] = n.PeerSite, n.Variant
		}
	}
	add := func(pods map[string]*corev1.Pod) {
		names := make([]string, 0, len(pods))
		for n := range pods {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, node := range names {
			pod := pods[node]
			site, digest := dir.Nodes[node], digestOf[variantOf[node]]
			if site == "" || digest == "" || pod.Status.PodIP == "" || !plan.PodReady(pod) {
				continue
			}
			if dir.Blobs[digest] == nil {
				dir.Blobs[digest] = map[string][]config.PeerEntry{}
			}
			list := dir.Blobs[digest][site]
			if len(list) >= maxPeers || slices.ContainsFunc(list, func(e config.PeerEntry) bool { return e.Node == node }) {
				continue
			}
			u := "http://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(port)))
			dir.Blobs[digest][site] = append(list, config.PeerEntry{Node: node, URL: u})
		}
	}
	add(obs.stagePods)
	add(obs.servingPods)
	return dir
}
