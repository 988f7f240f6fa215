package slmmodel

import (
	"context"
	"fmt"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/controllers/index"
)

// conflictRetry is how soon a reconcile that lost a write race (it read a
// stale model) looks again; the newer object's watch event usually wakes it
// first.
const conflictRetry = 200 * time.Millisecond

// Reconciler writes the status of SLMModels.
type Reconciler struct {
	client.Client
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// SetupWithManager registers the controller: an SLMModel is reconciled when it
// changes and when an EdgeRollout that names it comes, goes or changes model.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&slmopsv1alpha1.SLMModel{}).
		Watches(&slmopsv1alpha1.EdgeRollout{}, handler.EnqueueRequestsFromMapFunc(modelOfRollout)).
		Named("slmmodel").
		Complete(r)
}

func modelOfRollout(_ context.Context, o client.Object) []reconcile.Request {
	ro, ok := o.(*slmopsv1alpha1.EdgeRollout)
	if !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ro.Namespace, Name: ro.Spec.ModelRef.Name}}}
}

// Reconcile writes one SLMModel's status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var m slmopsv1alpha1.SLMModel
	if err := r.Get(ctx, req.NamespacedName, &m); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var rollouts slmopsv1alpha1.EdgeRolloutList
	if err := r.List(ctx, &rollouts, client.InNamespace(m.Namespace), client.MatchingFields{index.ModelRef: m.Name}); err != nil {
		return ctrl.Result{}, err
	}
	st := computeStatus(&m, rollouts.Items, metav1.NewTime(r.Now()))
	if apiequality.Semantic.DeepEqual(m.Status, st) {
		return ctrl.Result{}, nil
	}
	m.Status = st
	if err := r.Status().Update(ctx, &m); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		return ctrl.Result{}, fmt.Errorf("update status of %s: %w", klog.KObj(&m), err)
	}
	return ctrl.Result{}, nil
}
