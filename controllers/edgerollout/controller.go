package edgerollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	ctrlevent "sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/controllers/index"
)

const (
	// nodePatchConcurrency bounds concurrent node label patches.
	nodePatchConcurrency = 16
	// resync re-reads a moving rollout at least this often, in case a watch
	// event was missed.
	resync = time.Minute
)

// Reconciler reconciles EdgeRollouts.
type Reconciler struct {
	client.Client
	Recorder events.EventRecorder
	// Now is the clock; time.Now when nil. Tests set it.
	Now func() time.Time
	// Defaults fill in what rollouts leave unset.
	Defaults Defaults

	// expect remembers the cohort labels this process wrote until the cache
	// shows them, so that a reconcile on a cache that lags behind (as it does
	// on a busy API server with thousands of nodes) does not spend the
	// maxUnavailable budget a second time. A restarted operator starts with
	// a freshly synced cache and needs none.
	expect labelExpectations
	// expectStage does the same for the stage labels, so that a lagging
	// cache does not start more stagers than the download budget allows.
	expectStage labelExpectations
}

// labelExpectations are label values written but not yet seen in the cache,
// per rollout and node.
type labelExpectations struct {
	mu sync.Mutex
	m  map[types.NamespacedName]map[string]expectedLabel
}

type expectedLabel struct {
	revision string
	at       time.Time
}

// expectationTTL bounds how long an unseen write is trusted over the cache; a
// write that never shows (the node was relabelled by someone else, or deleted)
// is forgotten then.
const expectationTTL = time.Minute

func (e *labelExpectations) record(key types.NamespacedName, changes map[string]string, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[types.NamespacedName]map[string]expectedLabel{}
	}
	if e.m[key] == nil {
		e.m[key] = map[string]expectedLabel{}
	}
	for node, rev := range changes {
		e.m[key][node] = expectedLabel{revision: rev, at: now}
	}
}

// adjust returns the revision to believe for node: what this process last
// wrote, while the cache does not show it yet.
func (e *labelExpectations) adjust(key types.NamespacedName, node, cached string, now time.Time) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	want, ok := e.m[key][node]
	if !ok {
		return cached, false
	}
	if want.revision == cached || now.Sub(want.at) > expectationTTL {
		delete(e.m[key], node)
		return cached, false
	}
	return want.revision, true
}

func (e *labelExpectations) forget(key types.NamespacedName) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}

// +kubebuilder:rbac:groups=slmops.dev,resources=edgerollouts,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=slmops.dev,resources=edgerollouts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=slmops.dev,resources=edgerollouts/finalizers,verbs=update
// +kubebuilder:rbac:groups=slmops.dev,resources=slmmodels,verbs=get;list;watch
// +kubebuilder:rbac:groups=slmops.dev,resources=slmmodels/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps,resources=daemonsets,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;delete

// SetupWithManager registers the controller and its watches.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&slmopsv1alpha1.EdgeRollout{}).
		Owns(&appsv1.DaemonSet{}).
		// Pods of the rollout's DaemonSets, by label: the cache holds only
		// Pods that the operator manages (see cmd/manager).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(rolloutOfLabels)).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.rolloutsOfNode),
			builder.WithPredicates(nodeChanged{})).
		Watches(&slmopsv1alpha1.SLMModel{}, handler.EnqueueRequestsFromMapFunc(r.rolloutsOfModel)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Named("edgerollout").
		Complete(r)
}

func rolloutOfLabels(_ context.Context, o client.Object) []reconcile.Request {
	name := o.GetLabels()[slmopsv1alpha1.RolloutLabel]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}

// rolloutsOfNode wakes every rollout: a node's labels or readiness can matter
// to any of them, and there are few rollouts.
func (r *Reconciler) rolloutsOfNode(ctx context.Context, _ client.Object) []reconcile.Request {
	var list slmopsv1alpha1.EdgeRolloutList
	if err := r.List(ctx, &list); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, ro := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&ro)})
	}
	return out
}

func (r *Reconciler) rolloutsOfModel(ctx context.Context, o client.Object) []reconcile.Request {
	var list slmopsv1alpha1.EdgeRolloutList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{index.ModelRef: o.GetName()}); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, ro := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&ro)})
	}
	return out
}

// nodeChanged passes node events that can change a decision: creation,
// deletion, labels, and readiness; not the heartbeats.
type nodeChanged struct{ predicate.Funcs }

func (nodeChanged) Update(e ctrlevent.UpdateEvent) bool {
	o, n := e.ObjectOld.(*corev1.Node), e.ObjectNew.(*corev1.Node)
	return !labels.Equals(o.Labels, n.Labels) || nodeReady(o) != nodeReady(n)
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Reconcile moves one EdgeRollout one step closer to its plan.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	began := time.Now()
	defer func() { reconcileSeconds.Observe(time.Since(began).Seconds()) }()

	var ro slmopsv1alpha1.EdgeRollout
	if err := r.Get(ctx, req.NamespacedName, &ro); err != nil {
		if apierrors.IsNotFound(err) {
			forgetMetrics(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	labelKey := slmopsv1alpha1.CohortLabel(ro.Namespace, ro.Name)

	if !ro.DeletionTimestamp.IsZero() {
		if err := r.removeCohortLabel(ctx, labelKey); err != nil {
			return ctrl.Result{}, err
		}
		if err := r.removeCohortLabel(ctx, slmopsv1alpha1.StageLabel(ro.Namespace, ro.Name)); err != nil {
			return ctrl.Result{}, err
		}
		base := ro.DeepCopy()
		if controllerutil.RemoveFinalizer(&ro, slmopsv1alpha1.NodeLabelsFinalizer) {
			if err := r.Patch(ctx, &ro, finalizerPatch(base)); err != nil {
				return ctrl.Result{}, client.IgnoreNotFound(err)
			}
		}
		forgetMetrics(ro.Namespace, ro.Name)
		r.expect.forget(req.NamespacedName)
		r.expectStage.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	base := ro.DeepCopy()
	if controllerutil.AddFinalizer(&ro, slmopsv1alpha1.NodeLabelsFinalizer) {
		if err := r.Patch(ctx, &ro, finalizerPatch(base)); err != nil {
			return ctrl.Result{}, err
		}
	}

	// Observe.
	var model slmopsv1alpha1.SLMModel
	if err := r.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: ro.Spec.ModelRef.Name}, &model); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		// Waits on the SLMModel watch, not on a retry.
		return ctrl.Result{}, r.writeStatus(ctx, &ro, func(st *slmopsv1alpha1.EdgeRolloutStatus) {
			setPhase(st, ro.Generation, slmopsv1alpha1.PhasePending, slmopsv1alpha1.ReasonModelNotFound,
				fmt.Sprintf("SLMModel %s/%s does not exist", ro.Namespace, ro.Spec.ModelRef.Name), metav1.NewTime(r.Now()))
		})
	}
	arts, err := artifacts(&model)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("SLMModel %s: %w", model.Name, err)
	}
	obs, err := r.observe(ctx, &ro, &model, arts, labelKey)
	if err != nil {
		return ctrl.Result{}, err
	}
	in, daemonSets := obs.in, obs.daemonSets

	// Decide.
	p := computePlan(in)
	p.Status.Variants = variantCounts(&model, arts, in.Nodes)

	// Act. The status goes first: its write fails on a conflict when this
	// reconcile read a stale rollout from the cache, and then nothing else is
	// done on a stale decision. Then the DaemonSets, so that a node labelled
	// with a revision finds its DaemonSet; then the labels; then remove what no
	// node uses. A crash between two writes is mended by the next reconcile,
	// which recomputes the same plan from the status and the labels.
	if err := r.writeStatus(ctx, &ro, func(st *slmopsv1alpha1.EdgeRolloutStatus) { *st = p.Status }); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{Requeue: true}, nil
		}
		return ctrl.Result{}, err
	}
	// The Events of the decision the status just recorded go out before
	// anything else can fail: the next reconcile will not decide them again.
	for _, e := range p.Events {
		r.Recorder.Eventf(&ro, nil, e.Type, e.Reason, "Rollout", "%s", e.Message)
		countEvent(ro.Namespace, ro.Name, e.Reason)
	}
	// The pins go before the DaemonSets, so that a new canary's pods find them.
	if err := r.reconcileCache(ctx, &ro, arts, obs); err != nil {
		return ctrl.Result{}, err
	}
	var problems []error
	byName, haveRevision := map[string]bool{}, map[string]bool{}
	for _, ds := range daemonSets {
		byName[ds.Name], haveRevision[ds.Labels[slmopsv1alpha1.RevisionLabel]] = true, true
	}
	for _, rev := range p.Revisions {
		if rev != in.Revision {
			// An older revision's artifacts are those of the model as it
			// was; its DaemonSets can only be kept, not made again.
			if !haveRevision[rev] {
				problems = append(problems, errStableMissing(rev))
			}
			continue
		}
		// One DaemonSet per artifact: the default, and each variant on
		// the nodes it is for.
		for _, a := range arts {
			if byName[artifactDaemonSetName(ro.Name, rev, a.Name)] {
				continue
			}
			ds, err := buildDaemonSet(&ro, &model, rev, a, r.Defaults)
			if err != nil {
				return ctrl.Result{}, err
			}
			if err := controllerutil.SetControllerReference(&ro, ds, r.Scheme()); err != nil {
				return ctrl.Result{}, err
			}
			if err := r.Create(ctx, ds); err != nil && !apierrors.IsAlreadyExists(err) {
				return ctrl.Result{}, fmt.Errorf("create DaemonSet %s: %w", klog.KObj(ds), err)
			}
			log.Info("Created DaemonSet", "daemonSet", klog.KObj(ds), "revision", rev, "variant", a.Name)
		}
	}
	if err := r.reconcileStagers(ctx, &ro, &model, arts, obs, p); err != nil {
		return ctrl.Result{}, err
	}
	err = r.patchLabels(ctx, labelKey, p.Labels)
	// Recorded even after a partial failure: a patch that failed is simply
	// not seen, and forgotten after expectationTTL.
	r.expect.record(req.NamespacedName, p.Labels, r.Now())
	if err != nil {
		return ctrl.Result{}, err
	}
	keep := map[string]bool{}
	for _, rev := range p.Revisions {
		keep[rev] = true
	}
	for _, ds := range daemonSets {
		rev := ds.Labels[slmopsv1alpha1.RevisionLabel]
		if keep[rev] {
			continue
		}
		if err := r.Delete(ctx, ds, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, fmt.Errorf("delete DaemonSet %s: %w", klog.KObj(ds), err)
		}
		log.Info("Deleted DaemonSet of a revision no node runs", "daemonSet", klog.KObj(ds), "revision", rev)
	}
	observeRollout(&ro.ObjectMeta, &p.Status)
	observeSites(&ro.ObjectMeta, in.Nodes, p.Status.CanaryRevision)
	if len(problems) > 0 {
		log.Error(errors.Join(problems...), "Rollout cannot be fully reconciled")
	}

	res := ctrl.Result{RequeueAfter: p.RequeueAfter}
	if active(p.Status.Phase) && (res.RequeueAfter == 0 || res.RequeueAfter > resync) {
		res.RequeueAfter = resync
	}
	return res, nil
}

// observation is what a reconcile read from the cache.
type observation struct {
	in planInput
	// daemonSets serve; stagers stage.
	daemonSets, stagers []*appsv1.DaemonSet
	// stagePods and servingPods of the current revision, by node, for the
	// peer directory.
	stagePods, servingPods map[string]*corev1.Pod
}

// observe reads what the plan needs from the cache.
func (r *Reconciler) observe(ctx context.Context, ro *slmopsv1alpha1.EdgeRollout, model *slmopsv1alpha1.SLMModel, arts []artifact, labelKey string) (*observation, error) {
	// The specs as the schema defaults them, so that an object that did not
	// pass through the schema is read as one that did, and no code after
	// this point needs a fallback of its own. In memory only: the operator
	// never writes a spec (the finalizer patch was taken before, and a
	// status update ignores the spec).
	slmopsv1alpha1.DefaultEdgeRolloutSpec(&ro.Spec)
	slmopsv1alpha1.DefaultSLMModelSpec(&model.Spec)
	in := planInput{
		Generation: ro.Generation, Spec: ro.Spec, Annotations: ro.Annotations, Status: ro.Status,
		Revision: computeRevision(ro, model, r.Defaults), Digest: model.Spec.Digest, Now: r.Now(),
	}
	in.ConfigError = configError(ro, model, in.Revision, arts, r.Defaults)
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

	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(ro.Namespace), client.MatchingLabels{slmopsv1alpha1.RolloutLabel: ro.Name}); err != nil {
		return nil, err
	}
	type key struct{ rev, node string }
	podOf := make(map[key]*corev1.Pod, len(pods.Items))
	stagerOf := make(map[key]*corev1.Pod)
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName == "" || !p.DeletionTimestamp.IsZero() {
			continue
		}
		if rev := p.Labels[slmopsv1alpha1.StageRevisionLabel]; rev != "" {
			stagerOf[key{rev, p.Spec.NodeName}] = p
			continue
		}
		podOf[key{p.Labels[slmopsv1alpha1.RevisionLabel], p.Spec.NodeName}] = p
	}

	var nodes corev1.NodeList
	if err := r.List(ctx, &nodes); err != nil {
		return nil, err
	}
	topologyKey := ro.Spec.Strategy.Canary.TopologyKey
	peerKey := topologyKey
	if ps := ro.Spec.Distribution.PeerSharing; ps != nil && ps.TopologyKey != "" {
		peerKey = ps.TopologyKey
	}
	stageKey := slmopsv1alpha1.StageLabel(ro.Namespace, ro.Name)
	variantOf := variantMatcher(model)
	sizeOf := map[string]int64{}
	for _, a := range arts {
		sizeOf[a.Name] = ptr.Deref(a.SizeBytes, 0)
	}
	fit := ro.Spec.Distribution.Fit
	memHeadroom, diskHeadroom := bytesOf(fit.MemoryHeadroom), bytesOf(fit.DiskHeadroom)
	key0 := client.ObjectKeyFromObject(ro)
	for i := range nodes.Items {
		n := &nodes.Items[i]
		target := selector.Matches(labels.Set(n.Labels)) && n.DeletionTimestamp.IsZero()
		rev, pending := r.expect.adjust(key0, n.Name, n.Labels[labelKey], in.Now)
		stageRev, stagePending := r.expectStage.adjust(key0, n.Name, n.Labels[stageKey], in.Now)
		if !target && rev == "" && stageRev == "" {
			continue
		}
		ns := nodeState{Name: n.Name, Target: target, Reachable: nodeReady(n), Revision: rev, Variant: variantOf(n.Labels), StageRevision: stageRev}
		if peerKey != "" {
			ns.PeerSite = n.Labels[peerKey]
		}
		if target && rev != in.Revision {
			ns.Unfit, ns.UnfitMessage = fitProblem(n, sizeOf[ns.Variant], memHeadroom, diskHeadroom)
		}
		if p := stagerOf[key{stageRev, n.Name}]; p != nil && stageRev != "" && !stagePending {
			ns.Stage = observePod(p)
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
			ns.Pod = observePod(p)
		}
		in.Nodes = append(in.Nodes, ns)
	}
	obs.in = in
	return obs, nil
}

// waitingFailures are container states that waiting will not fix.
var waitingFailures = map[string]bool{
	"CrashLoopBackOff": true, "ImagePullBackOff": true, "ErrImagePull": true, "InvalidImageName": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
}

func observePod(p *corev1.Pod) podState {
	ps := podState{Exists: true, Since: p.CreationTimestamp.Time}
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
	if ps.Failure == "" && p.Status.Phase == corev1.PodFailed {
		ps.Failure, ps.Message = slmopsv1alpha1.FailingPodFailed, p.Status.Message
	}
	return ps
}

// patchLabels sets or removes the cohort label on nodes, a bounded number at a
// time. A merge patch of one label touches nothing else of the node.
func (r *Reconciler) patchLabels(ctx context.Context, labelKey string, changes map[string]string) error {
	if len(changes) == 0 {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(nodePatchConcurrency)
	for node, rev := range changes {
		g.Go(func() error {
			var value any = rev
			if rev == "" {
				value = nil
			}
			patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{labelKey: value}}})
			n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}
			if err := r.Patch(gctx, n, client.RawPatch(types.MergePatchType, patch)); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("label node %s: %w", node, err)
			}
			nodeWrites.Inc()
			return nil
		})
	}
	return g.Wait()
}

// removeCohortLabel removes labelKey from every node that has it.
func (r *Reconciler) removeCohortLabel(ctx context.Context, labelKey string) error {
	var nodes corev1.NodeList
	if err := r.List(ctx, &nodes, client.HasLabels{labelKey}); err != nil {
		return err
	}
	changes := map[string]string{}
	for _, n := range nodes.Items {
		changes[n.Name] = ""
	}
	return r.patchLabels(ctx, labelKey, changes)
}

// writeStatus applies mutate to the status and writes it when it changed.
func (r *Reconciler) writeStatus(ctx context.Context, ro *slmopsv1alpha1.EdgeRollout, mutate func(*slmopsv1alpha1.EdgeRolloutStatus)) error {
	next := ro.DeepCopy()
	mutate(&next.Status)
	if apiequality.Semantic.DeepEqual(ro.Status, next.Status) {
		return nil
	}
	if err := r.Status().Update(ctx, next); err != nil {
		return fmt.Errorf("update status of %s: %w", klog.KObj(ro), err)
	}
	*ro = *next
	return nil
}

// finalizerPatch is a merge patch of the finalizers alone (guarded by the
// resourceVersion), never an update: an update sends the whole object as this
// binary's types serialize it, and a field they write that the stored object
// lacks (a false bool, say) would change the spec that Git owns and bump its
// generation.
func finalizerPatch(base *slmopsv1alpha1.EdgeRollout) client.Patch {
	return client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})
}
