// Package v1alpha1 contains the slmops.dev/v1alpha1 API: SLMModel, a quantized
// model artifact, and EdgeRollout, which ships a model to a fleet of edge nodes
// progressively.
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
