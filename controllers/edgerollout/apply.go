package edgerollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// phase is one named step of the act step.
type phase struct {
	// name is CamelCase: the Applied condition's reason is name+"Failed".
	name string
	run  func(context.Context, *scope) error
}

// phases are the act step, in the order the nodes need: the cache pins
// before any DaemonSet (a new canary's pods find them); the DaemonSets
// before the labels that select their nodes (a node labelled with a
// revision finds its DaemonSet); the stagers and the peer directory before
// the stage labels (a node asked to stage finds its stager and its site's
// peers); and last, removing what no node uses any more. A crash between
// two writes is mended by the next reconcile, which recomputes the same
// plan from the status and the labels.
func (r *Reconciler) phases() []phase {
	return []phase{
		{"PinCache", r.pinCache},
		{"EnsureDaemonSets", r.ensureDaemonSets},
		{"ReconcileStagers", r.reconcileStagers},
		{"ReconcilePeers", r.reconcilePeers},
		{"PatchLabels", r.patchLabels},
		{"PruneDaemonSets", r.pruneDaemonSets},
	}
}

// applyResult is how the act step went.
type applyResult struct {
	// failed is the phase that failed (the later ones did not run); empty
	// when every phase ran.
	failed string
	// err is the failed phase's error, for a retry with back-off.
	err error
	// problems are what no retry mends and did not stop the later phases
	// (a stable DaemonSet that is gone and cannot be made again), and
	// problemPhase the first phase that reported one.
	problems     []error
	problemPhase string
}

// apply runs the phases in order. A phase that fails stops the ones after
// it, which rely on it; its error is returned for a retry.
func (r *Reconciler) apply(ctx context.Context, s *scope) applyResult {
	var res applyResult
	for _, ph := range r.phases() {
		began := time.Now()
		err := ph.run(ctx, s)
		timeStage(ph.name, &began)
		var p *problem
		if errors.As(err, &p) {
			if res.problemPhase == "" {
				res.problemPhase = ph.name
			}
			res.problems = append(res.problems, p.errs...)
			continue
		}
		if err != nil {
			res.failed, res.err = ph.name, fmt.Errorf("%s: %w", ph.name, err)
			break
		}
	}
	if len(res.problems) > 0 {
		ctrl.LoggerFrom(ctx).Error(errors.Join(res.problems...), "Rollout cannot be fully reconciled")
	}
	return res
}

// problem wraps errors that a phase reports without stopping the act step.
type problem struct{ errs []error }

func (p *problem) Error() string { return errors.Join(p.errs...).Error() }

// maxAppliedMessage bounds the Applied condition's message.
const maxAppliedMessage = 1024

// appliedCondition says how the act step went: True when every phase ran
// without a problem; False with the failed phase (or the first problem)
// otherwise.
func appliedCondition(generation int64, res applyResult, now metav1.Time) metav1.Condition {
	c := metav1.Condition{
		Type: slmopsv1alpha1.ConditionApplied, Status: metav1.ConditionTrue, ObservedGeneration: generation,
		Reason: slmopsv1alpha1.ReasonApplied, Message: "every DaemonSet, stager, ConfigMap and node label is as decided", LastTransitionTime: now,
	}
	errs := res.problems
	if res.err != nil {
		errs = append([]error{res.err}, errs...)
	}
	if len(errs) == 0 {
		return c
	}
	phase := res.failed
	if phase == "" {
		phase = res.problemPhase
	}
	c.Status, c.Reason = metav1.ConditionFalse, phase+slmopsv1alpha1.ReasonApplyFailed
	msg := errors.Join(errs...).Error()
	if len(msg) > maxAppliedMessage {
		msg = msg[:maxAppliedMessage-3] + "..."
	}
	c.Message = msg
	return c
}

// pinCache writes the rollout's cache pins from its status, as the plan
// just wrote it.
func (r *Reconciler) pinCache(ctx context.Context, s *scope) error {
	return r.reconcileCache(ctx, s.ro, s.arts, s.obs)
}

// ensureDaemonSets makes the serving DaemonSets of the revision the spec
// describes, one per artifact (the default, and each variant on its
// nodes). An older revision's DaemonSets can only be kept, not made again:
// its artifacts are those of the model as it was.
func (r *Reconciler) ensureDaemonSets(ctx context.Context, s *scope) error {
	log := ctrl.LoggerFrom(ctx)
	byName, haveRevision := map[string]bool{}, map[string]bool{}
	for _, ds := range s.obs.daemonSets {
		byName[ds.Name], haveRevision[ds.Labels[slmopsv1alpha1.RevisionLabel]] = true, true
	}
	var missing []error
	for _, rev := range s.plan.Revisions {
		if rev != s.obs.in.Revision {
			if !haveRevision[rev] {
				missing = append(missing, errStableMissing(rev))
			}
			continue
		}
		for _, a := range s.arts {
			if byName[artifactDaemonSetName(s.ro.Name, rev, a.Name)] {
				continue
			}
			d, err := r.reportDefaults(ctx, s.ro.Namespace)
			if err != nil {
				return err
			}
			ds, err := buildDaemonSet(s.ro, s.model, rev, a, d)
			if err != nil {
				return err
			}
			if err := controllerutil.SetControllerReference(s.ro, ds, r.Scheme()); err != nil {
				return err
			}
			if err := r.Create(ctx, ds); client.IgnoreAlreadyExists(err) != nil {
				return fmt.Errorf("create DaemonSet %s: %w", klog.KObj(ds), err)
			}
			log.Info("Created DaemonSet", "daemonSet", klog.KObj(ds), "revision", rev, "variant", a.Name)
		}
	}
	if len(missing) > 0 {
		return &problem{errs: missing}
	}
	return nil
}

// patchLabels sets the stage labels, then the cohort labels, that the plan
// changed. Both are recorded as expected even after a partial failure: a
// patch that failed is simply not seen, and forgotten after expectationTTL.
func (r *Reconciler) patchLabels(ctx context.Context, s *scope) error {
	key := client.ObjectKeyFromObject(s.ro)
	err := r.labelNodes(ctx, slmopsv1alpha1.StageLabel(s.ro.Namespace, s.ro.Name), s.plan.StageLabels)
	r.expectStage.record(key, s.plan.StageLabels, r.Now())
	if err != nil {
		return err
	}
	err = r.labelNodes(ctx, slmopsv1alpha1.CohortLabel(s.ro.Namespace, s.ro.Name), s.plan.Labels)
	r.expect.record(key, s.plan.Labels, r.Now())
	return err
}

// pruneDaemonSets deletes the serving DaemonSets of revisions that no node
// uses any more.
func (r *Reconciler) pruneDaemonSets(ctx context.Context, s *scope) error {
	keep := map[string]bool{}
	for _, rev := range s.plan.Revisions {
		keep[rev] = true
	}
	for _, ds := range s.obs.daemonSets {
		rev := ds.Labels[slmopsv1alpha1.RevisionLabel]
		if keep[rev] {
			continue
		}
		if err := r.Delete(ctx, ds, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete DaemonSet %s: %w", klog.KObj(ds), err)
		}
		ctrl.LoggerFrom(ctx).Info("Deleted DaemonSet of a revision no node runs", "daemonSet", klog.KObj(ds), "revision", rev)
	}
	return nil
}
