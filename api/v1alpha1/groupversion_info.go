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
// (its scheme builder included), no controller package, no inferd package, so that any program can
// read the API without linking the operator.
//
// +kubebuilder:object:generate=true
// +groupName=slmops.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "slmops.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a
	// runtime.Scheme. It is API machinery's, not controller-runtime's, so
	// that reading the API links no controller library.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers the kinds of this package and the meta types of
// its group version.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &SLMModel{}, &SLMModelList{}, &EdgeRollout{}, &EdgeRolloutList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
