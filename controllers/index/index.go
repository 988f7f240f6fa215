// Package index owns the field indexes of the manager's cache that more than
// one controller reads. Each controller package imports this one and never
// another controller package, so that the EdgeRollout and SLMModel
// controllers can change without each other. It holds index names and pure
// index functions only: no reconciler, no watch, no client writes.
package index

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// ModelRef indexes EdgeRollouts by spec.modelRef.name: the SLMModel
// controller counts a model's rollouts with it, and the EdgeRollout
// controller finds the rollouts to wake when a model changes.
const ModelRef = "spec.modelRef.name"

// ModelRefOf is the index function of ModelRef.
func ModelRefOf(o client.Object) []string {
	ro, ok := o.(*slmopsv1alpha1.EdgeRollout)
	if !ok {
		return nil
	}
	return []string{ro.Spec.ModelRef.Name}
}

// Register adds every index of this package to indexer, once per manager.
func Register(ctx context.Context, indexer client.FieldIndexer) error {
	return indexer.IndexField(ctx, &slmopsv1alpha1.EdgeRollout{}, ModelRef, ModelRefOf)
}
