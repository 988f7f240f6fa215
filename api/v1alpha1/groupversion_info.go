// Package v1alpha1 contains the slmops.dev/v1alpha1 API: SLMModel, a quantized
// model artifact, and EdgeRollout, which ships a model to a fleet of edge nodes
// progressively.
//
// It owns everything a client of the API needs and nothing of how the
// operator acts:
//   - slmmodel_types.go, edgerollout_types.go: the types, with their
//     validation (OpenAPI markers and CEL rules) and their defaults
//     (+kubebuilder:default markers), from which the CRDs are generated.
//   - labels.go: the names on the wire. Every label, annotation, finalizer
//     and object name the operator writes, and every condition type,
//     condition reason, Event reason and exclusion reason, as constants, and
//     the pure functions that build per-rollout names (CohortLabel,
//     StageLabel, PeersConfigMapName, CacheConfigMapName). kubectl-slm, the
//     tests and the controllers read them from here.
//   - defaults.go: DefaultEdgeRolloutSpec and DefaultSLMModelSpec, the CRD
//     defaults in Go for objects that did not pass through the schema; a test
//     holds them equal to the generated CRDs.
//
// It may import only the Kubernetes API machinery: no controller-runtime
// client, no controller package, no inferd package, so that any program can
// read the API without linking the operator.
//
// +kubebuilder:object:generate=true
// +groupName=slmops.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "slmops.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
