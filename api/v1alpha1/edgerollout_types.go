package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EdgeRolloutSpec says which model goes to which edge nodes, and how.
type EdgeRolloutSpec struct {
	// modelRef names the SLMModel, in the same namespace, to roll out.
	// +required
	ModelRef LocalObjectReference `json:"modelRef"`

	// nodeSelector selects the target nodes by label. An empty selector selects
	// every node.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// EdgeRolloutStatus is the observed state of an EdgeRollout.
type EdgeRolloutStatus struct {
	// observedGeneration is the generation of the spec that this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions describe the state of the rollout.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// EdgeRollout ships an SLMModel to a set of edge nodes progressively: a canary
// cohort that grows step by step while it stays healthy, or rolls back.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=er,categories=slmops
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.spec.modelRef.name`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type EdgeRollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says which model goes to which nodes, and how.
	// +required
	Spec EdgeRolloutSpec `json:"spec"`
	// status is the observed state of the rollout.
	// +optional
	Status EdgeRolloutStatus `json:"status,omitempty"`
}

// EdgeRolloutList is a list of EdgeRollouts.
//
// +kubebuilder:object:root=true
type EdgeRolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EdgeRollout `json:"items"`
}

func init() {
	SchemeBuilder.Register(&EdgeRollout{}, &EdgeRolloutList{})
}
