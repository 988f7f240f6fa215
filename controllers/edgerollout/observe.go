package edgerollout

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/controllers/edgerollout/plan"
)

// scope is one reconcile's rollout and model (their specs defaulted), what
// it observed and what it decided: everything the act phases share.
type scope struct {
	ro    *slmopsv1alpha1.EdgeRollout
	model *slmopsv1alpha1.SLMModel
	arts  []plan.Artifact
	obs   *observation
	plan  plan.Plan
	// deferred is how soon a status that record did not write (it only
	// counted) is due.
	deferred time.Duration
}

// observation is what a reconcile read from the cache.
type observation struct {
	// in is the plan's input.
	in plan.Input
	// daemonSets serve; stagers stage.
	daemonSets, stagers []*appsv1.DaemonSet
	// stagePods and servingPods of the current revision, by node, for the
	// peer directory.
	stagePods, servingPods map[string]*corev1.Pod
}

// observe reads what the plan needs from the cache.
func (r *Reconciler) observe(ctx context.Context, ro *slmopsv1alpha1.EdgeRollout, model *slmopsv1alpha1.SLMModel) (*scope, error) {
	// The specs as the schema defaults them, so that an object that did not
	// pass through the schema is read as one that did, and no code after
	// this point needs a fallback of its own. In memory only: the operator
	// never writes a spec (the finalizer patch was taken before, and a
	// status update ignores the spec).
	slmopsv1alpha1.DefaultEdgeRolloutSpec(&ro.Spec)
	slmopsv1alpha1.DefaultSLMModelSpec(&model.Spec)
	arts, err := plan.Artifacts(model)
	if err != nil {
		return nil, fmt.Errorf("SLMModel %s: %w", model.Name, err)
	}
	in := plan.Input{
		Generation: ro.Generation, ModelGeneration: model.Generation, Spec: ro.Spec, Annotations: ro.Annotations, Status: ro.Status,
		Revision: computeRevision(ro, model, r.Defaults), Digest: model.Spec.Digest, Artifacts: arts, Now: r.Now(),
	}
	in.ConfigError = configError(ro, model, arts, r.Defaults)
	obs := &observation{stagePods: map[string]*corev1.Pod{}, servingPods: map[string]*corev1.Pod{}}
	selector, err := ro.Spec.NodeSelector.Selector()
	if err != nil {
		return nil, fmt.Errorf("spec.nodeSelector: %w", err)
	}

	var dsList appsv1.DaemonSetList
	if err := r.List(ctx, &dsList, client.InNamespace(ro.Namespace), client.MatchingLabels{slmopsv1alpha1.RolloutLabel: ro.Name}); err != nil {
		return nil, err
	}
	for i := range dsList.Items {
		ds := &dsList.Items[i]
		switch {
		case !metav1.IsControlledBy(ds, ro):
		case ds.Labels[slmopsv1alpha1.StageRevisionLabel] != "":
			obs.stagers = append(obs.stagers, ds)
		default:
			obs.daemonSets = append(obs.daemonSets, ds)
		}
	}

	// The pods and nodes are the cache's own objects, not copies: at fleet
	// size, copying thousands of them on every reconcile was most of the
	// operator's CPU and garbage. Nothing here or in the plan writes them.
	pods, err := cached[corev1.Pod](ctx, r, &corev1.PodList{}, ro.Namespace)
	if err != nil {
		return nil, err
	}
	type key struct{ rev, node string }
	podOf := make(map[key]*corev1.Pod, len(pods))
	stagerOf := make(map[key]*corev1.Pod)
	for _, p := range pods {
		if p.Labels[slmopsv1alpha1.RolloutLabel] != ro.Name || p.Spec.NodeName == "" || !p.DeletionTimestamp.IsZero() {
			continue
		}
		if rev := p.Labels[slmopsv1alpha1.StageRevisionLabel]; rev != "" {
			stagerOf[key{rev, p.Spec.NodeName}] = p
			continue
		}
		podOf[key{p.Labels[slmopsv1alpha1.RevisionLabel], p.Spec.NodeName}] = p
	}

	nodes, err := cached[corev1.Node](ctx, r, &corev1.NodeList{}, "")
	if err != nil {
		return nil, err
	}
	slices.SortFunc(nodes, func(a, b *corev1.Node) int { return strings.Compare(a.Name, b.Name) })
	topologyKey := ro.Spec.Strategy.Canary.TopologyKey
	peerKey := topologyKey
	if ps := ro.Spec.Distribution.PeerSharing; ps != nil && ps.TopologyKey != "" {
		peerKey = ps.TopologyKey
	}
	stageKey := slmopsv1alpha1.StageLabel(ro.Namespace, ro.Name)
	labelKey := slmopsv1alpha1.CohortLabel(ro.Namespace, ro.Name)
	variantOf := plan.VariantMatcher(model)
	in.Nodes = make([]plan.Node, 0, len(nodes))
	key0 := client.ObjectKeyFromObject(ro)
	for _, n := range nodes {
		target := selector.Matches(labels.Set(n.Labels)) && n.DeletionTimestamp.IsZero()
		rev, pending := r.expect.adjust(key0, n.Name, n.Labels[labelKey], in.Now)
		stageRev, stagePending := r.expectStage.adjust(key0, n.Name, n.Labels[stageKey], in.Now)
		if !target && rev == "" && stageRev == "" {
			continue
		}
		ns := plan.Node{Name: n.Name, Target: target, Reachable: nodeReady(n), Revision: rev, Variant: variantOf(n.Labels),
			StageRevision: stageRev, Allocatable: n.Status.Allocatable, Class: plan.ClassOf(n.Labels, ro.Spec.Analysis.HardwareClassLabels)}
		if peerKey != "" {
			ns.PeerSite = n.Labels[peerKey]
		}
		if p := stagerOf[key{stageRev, n.Name}]; p != nil && stageRev != "" && !stagePending {
			ns.Stage = plan.ObservePodWith(p, r.reports.parse)
			if stageRev == in.Revision {
				obs.stagePods[n.Name] = p
			}
		}
		if p := podOf[key{in.Revision, n.Name}]; p != nil {
			obs.servingPods[n.Name] = p
		}
		if topologyKey != "" {
			// Before the pending case: a node's place in the cohort order
			// must not move while its label change is in flight.
			ns.Site = n.Labels[topologyKey]
		}
		if pending {
			// Labelled by this process a moment ago: its old pod is going, the
			// new one is not there yet.
			in.Nodes = append(in.Nodes, ns)
			continue
		}
		if p := podOf[key{rev, n.Name}]; p != nil && rev != "" {
			ns.Pod = plan.ObservePodWith(p, r.reports.parse)
		}
		in.Nodes = append(in.Nodes, ns)
	}
	obs.in = in
	return &scope{ro: ro, model: model, arts: arts, obs: obs}, nil
}

// cached is the cache's own objects of a kind (in namespace, or all of
// them when it is empty), not copies, read from its informer's store: a
// List copies every object into the list, which at thousands of nodes and
// pods, on every reconcile, was most of the manager's garbage. Nothing may
// write them. Without an informer store to read (a client that is not
// the manager's cache) it lists them, with the same result.
func cached[T any, PT interface {
	*T
	client.Object
}](ctx context.Context, r *Reconciler, list client.ObjectList, namespace string) ([]PT, error) {
	if r.Informers != nil {
		inf, err := r.Informers.GetInformer(ctx, PT(new(T)))
		if err != nil {
			return nil, err
		}
		if si, ok := inf.(toolscache.SharedIndexInformer); ok {
			var items []any
			if namespace == "" {
				items = si.GetStore().List()
			} else if items, err = si.GetIndexer().ByIndex(toolscache.NamespaceIndex, namespace); err != nil {
				return nil, err
			}
			return typed[PT](items), nil
		}
	}
	opts := []client.ListOption{client.UnsafeDisableDeepCopy}
	if namespace != "" {
		opts = append(opts, client.InNamespace(namespace))
	}
	if err := r.List(ctx, list, opts...); err != nil {
		return nil, err
	}
	items, err := apimeta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	objs := make([]any, len(items))
	for i, it := range items {
		objs[i] = it
	}
	return typed[PT](objs), nil
}

// typed is the items of type PT.
func typed[PT any](items []any) []PT {
	out := make([]PT, 0, len(items))
	for _, it := range items {
		if o, ok := it.(PT); ok {
			out = append(out, o)
		}
	}
	return out
}
