package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SLMModelSpec describes a quantized model artifact.
type SLMModelSpec struct {
	// digest is the sha256 of the model file, as sha256:<64 lowercase hex digits>.
	// A changed digest is a new model and so a new rollout revision.
	// +required
	// +kubebuilder:validation:Pattern=`^sha256:[a-f0-9]{64}$`
	Digest string `json:"digest"`
}

// SLMModelStatus is the observed state of an SLMModel.
type SLMModelStatus struct {
	// observedGeneration is the generation of the spec that this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions describe the state of the model.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// SLMModel is a quantized small language model artifact that EdgeRollouts ship
// to edge nodes.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=slm,categories=slmops
type SLMModel struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the model artifact.
	// +required
	Spec SLMModelSpec `json:"spec"`
	// status is the observed state of the model.
	// +optional
	Status SLMModelStatus `json:"status,omitempty"`
}

// SLMModelList is a list of SLMModels.
//
// +kubebuilder:object:root=true
type SLMModelList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SLMModel `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SLMModel{}, &SLMModelList{})
}
