package edgerollout

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	ctrlevent "sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/controllers/edgerollout/plan"
	"github.com/slmops/slmops/controllers/index"
)

const (
	// nodePatchConcurrency bounds concurrent node label patches.
	nodePatchConcurrency = 16
	// DefaultResync is how often a moving rollout is re-read when nothing
	// happens, in case a watch event was missed; every decision is taken on
	// the watch events themselves (a pod that gets Ready, a node that
	// changes), or on plan.RequeueAfter when time alone changes it.
	DefaultResync = time.Minute
	// DefaultWorkers is how many rollouts are reconciled at once unless
	// the manager is told otherwise (--rollout-workers).
	DefaultWorkers = 4
	// conflictRetry is how soon a reconcile that lost a write race (it read
	// a stale rollout) looks again; the newer object's watch event usually
	// wakes it first.
	conflictRetry = 200 * time.Millisecond
	// countsInterval is how often a status whose only change is what it
	// counts (nodes ready, per-class figures) is written: as pods turn Ready
	// one by one, writing each count would cost a status write per node. A
	// decision (phase, step, a failure, a label change, an Event) is written
	// at once.
	countsInterval = 5 * time.Second
)

// Reconciler reconciles EdgeRollouts.
type Reconciler struct {
	client.Client
	Recorder events.EventRecorder
	// Now is the clock; time.Now when nil. Tests set it.
	Now func() time.Time
	// Defaults fill in what rollouts leave unset.
	Defaults Defaults
	// APIReader reads what the cache does not hold (the inferd
	// ServiceAccount); nil turns self-test reports off.
	APIReader client.Reader
	// Resync is the safety-net re-read of a moving rollout; DefaultResync
	// when 0.
	Resync time.Duration
	// Workers is how many rollouts are reconciled at once (DefaultWorkers
	// when 0).
	Workers int
	// Informers are the manager's cache, whose Nodes and Pods a reconcile
	// reads in place (see cached); nil lists them through Client.
	Informers cache.Informers

	// expect remembers the cohort labels this process wrote until the cache
	// shows them, so that a reconcile on a cache that lags behind (as it does
	// on a busy API server with thousands of nodes) does not spend the
	// maxUnavailable budget a second time. A restarted operator starts with
	// a freshly synced cache and needs none.
	expect labelExpectations
	// expectStage does the same for the stage labels, so that a lagging
	// cache does not start more stagers than the download budget allows.
	expectStage labelExpectations
	// statusWritten is when each rollout's status was last written by this
	// process (see countsInterval).
	statusWritten sync.Map
	// reports are the pods' reports parsed so far.
	reports reportCache
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
		WithOptions(controller.Options{MaxConcurrentReconciles: cmp.Or(r.Workers, DefaultWorkers)}).
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
	// Only their names are read: no copies of the rollouts on every node event.
	if err := r.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
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

// Reconcile moves one EdgeRollout one step closer to its plan: get,
// finalizer, observe, decide, record the decision, act, report.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	began := time.Now()
	defer func() { reconcileSeconds.Observe(time.Since(began).Seconds()) }()

	var ro slmopsv1alpha1.EdgeRollout
	if err := r.Get(ctx, req.NamespacedName, &ro); err != nil {
		if apierrors.IsNotFound(err) {
			forgetMetrics(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ro.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, &ro)
	}
	if err := r.ensureFinalizer(ctx, &ro); err != nil {
		return ctrl.Result{}, err
	}

	// Observe.
	stage := time.Now()
	var model slmopsv1alpha1.SLMModel
	if err := r.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: ro.Spec.ModelRef.Name}, &model); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		// Waits on the SLMModel watch, not on a retry.
		return ctrl.Result{}, r.writeStatus(ctx, &ro, func(st *slmopsv1alpha1.EdgeRolloutStatus) {
			plan.SetPhase(st, ro.Generation, slmopsv1alpha1.PhasePending, slmopsv1alpha1.ReasonModelNotFound,
				fmt.Sprintf("SLMModel %s/%s does not exist", ro.Namespace, ro.Spec.ModelRef.Name), metav1.NewTime(r.Now()))
		})
	}
	s, err := r.observe(ctx, &ro, &model)
	if err != nil {
		return ctrl.Result{}, err
	}
	timeStage("observe", &stage)

	// Decide.
	s.plan = plan.Compute(s.obs.in)
	timeStage("decide", &stage)

	// Record the decision first: the status write fails on a conflict when
	// this reconcile read a stale rollout from the cache, and then nothing
	// is done on a stale decision.
	if err := r.record(ctx, s); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		return ctrl.Result{}, err
	}
	timeStage("record", &stage)

	// Act, and report how it went in the Applied condition.
	applied := r.apply(ctx, s)
	stage = time.Now()
	err = r.writeStatus(ctx, &ro, func(st *slmopsv1alpha1.EdgeRolloutStatus) {
		meta.SetStatusCondition(&st.Conditions, appliedCondition(ro.Generation, applied, metav1.NewTime(r.Now())))
	})
	timeStage("report", &stage)
	if err != nil && applied.err == nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if applied.err != nil {
		return ctrl.Result{}, applied.err
	}
	observeRollout(&ro.ObjectMeta, &s.plan.Status)
	observeSites(&ro.ObjectMeta, s.plan.Sites)
	observeClasses(&ro.ObjectMeta, &s.plan.Status)
	res := requeue(s.plan, r.Resync)
	if s.deferred > 0 && (res.RequeueAfter == 0 || s.deferred < res.RequeueAfter) {
		res.RequeueAfter = s.deferred
	}
	return res, nil
}

// requeue is when to look at the rollout again: when time alone changes the
// decision, and at least every resync while it moves.
func requeue(p plan.Plan, resync time.Duration) ctrl.Result {
	if resync <= 0 {
		resync = DefaultResync
	}
	res := ctrl.Result{RequeueAfter: p.RequeueAfter}
	if plan.Active(p.Status.Phase) && (res.RequeueAfter == 0 || res.RequeueAfter > resync) {
		res.RequeueAfter = resync
	}
	return res
}

// record writes the decided status, then sends the Events of the decision:
// they go out before anything else can fail, since the next reconcile will
// not decide them again.
func (r *Reconciler) record(ctx context.Context, s *scope) error {
	key, now := client.ObjectKeyFromObject(s.ro), r.Now()
	if len(s.plan.Events) == 0 && len(s.plan.Labels) == 0 && len(s.plan.StageLabels) == 0 && plan.CountsOnly(&s.ro.Status, &s.plan.Status) {
		if last, ok := r.statusWritten.Load(key); ok && now.Sub(last.(time.Time)) < countsInterval {
			// Nothing decided, only counted: written with the next
			// decision, or once countsInterval has passed.
			s.deferred = countsInterval - now.Sub(last.(time.Time))
			return nil
		}
	}
	written := !apiequality.Semantic.DeepEqual(s.ro.Status, s.plan.Status)
	if err := r.writeStatus(ctx, s.ro, func(st *slmopsv1alpha1.EdgeRolloutStatus) { *st = s.plan.Status }); err != nil {
		return err
	}
	if written {
		r.statusWritten.Store(key, now)
	}
	for _, e := range s.plan.Events {
		r.Recorder.Eventf(s.ro, nil, e.Type, e.Reason, "Rollout", "%s", e.Message)
		countEvent(s.ro.Namespace, s.ro.Name, e.Reason)
	}
	return nil
}

// finalize removes the rollout's labels from every node, then its finalizer.
func (r *Reconciler) finalize(ctx context.Context, ro *slmopsv1alpha1.EdgeRollout) error {
	if err := r.removeNodeLabel(ctx, slmopsv1alpha1.CohortLabel(ro.Namespace, ro.Name)); err != nil {
		return err
	}
	if err := r.removeNodeLabel(ctx, slmopsv1alpha1.StageLabel(ro.Namespace, ro.Name)); err != nil {
		return err
	}
	base := ro.DeepCopy()
	if controllerutil.RemoveFinalizer(ro, slmopsv1alpha1.NodeLabelsFinalizer) {
		if err := r.Patch(ctx, ro, finalizerPatch(base)); err != nil {
			return client.IgnoreNotFound(err)
		}
	}
	key := client.ObjectKeyFromObject(ro)
	forgetMetrics(ro.Namespace, ro.Name)
	r.expect.forget(key)
	r.expectStage.forget(key)
	r.statusWritten.Delete(key)
	return nil
}

// ensureFinalizer adds the finalizer that lets finalize clean the nodes.
func (r *Reconciler) ensureFinalizer(ctx context.Context, ro *slmopsv1alpha1.EdgeRollout) error {
	base := ro.DeepCopy()
	if controllerutil.AddFinalizer(ro, slmopsv1alpha1.NodeLabelsFinalizer) {
		return r.Patch(ctx, ro, finalizerPatch(base))
	}
	return nil
}

// labelNodes sets or removes the label labelKey on nodes, a bounded number at a
// time. A merge patch of one label touches nothing else of the node.
func (r *Reconciler) labelNodes(ctx context.Context, labelKey string, changes map[string]string) error {
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

// removeNodeLabel removes labelKey from every node that has it.
func (r *Reconciler) removeNodeLabel(ctx context.Context, labelKey string) error {
	var nodes corev1.NodeList
	if err := r.List(ctx, &nodes, client.HasLabels{labelKey}); err != nil {
		return err
	}
	changes := map[string]string{}
	for _, n := range nodes.Items {
		changes[n.Name] = ""
	}
	return r.labelNodes(ctx, labelKey, changes)
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
