package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// ModelFormat is the file format of a model artifact: GGUF, the only format
// inferd loads.
// +kubebuilder:validation:MaxLength=16
// +kubebuilder:validation:XValidation:rule="self == 'GGUF'",message="format must be GGUF, the only format inferd loads"
type ModelFormat string

// ModelFormatGGUF is llama.cpp's GGUF, the only format inferd loads.
const ModelFormatGGUF ModelFormat = "GGUF"

// Quantization is the quantization of a model file as llama.cpp names it
// (general.file_type): F32, F16, BF16, Q8_0, the K-quant mixtures from Q6_K
// down to Q2_K_S, or Q5_1, Q5_0, Q4_1 and Q4_0.
//
// The rule below is the one list of what SLMModel accepts, and it is exactly
// what the inferd engine runs (the file types whose tensor types its kernels
// compute with, engine.Quantizations): cmd/inferd's
// TestCRDAcceptsWhatThisBuildRuns fails when the two differ. To accept a new
// one once the engine runs it, add it to the rule and to the message, then run
// make manifests. SLMModelSpec.Architecture has the same kind of rule for the
// architectures, checked by the same test against engine.Architectures. It is
// a CEL rule rather than an OpenAPI enum so that a wrong value gets this
// message alone: an enum violation makes the API server skip every CEL rule of
// the object and say so ("some validation rules were not checked").
// +kubebuilder:validation:MaxLength=16
// +kubebuilder:validation:XValidation:rule="self in ['F32', 'F16', 'BF16', 'Q8_0', 'Q6_K', 'Q5_K_M', 'Q5_K_S', 'Q5_1', 'Q5_0', 'Q4_K_M', 'Q4_K_S', 'Q4_1', 'Q4_0', 'Q3_K_L', 'Q3_K_M', 'Q3_K_S', 'Q2_K', 'Q2_K_S']",message="quantization must be one that inferd runs: F32, F16, BF16, Q8_0, Q6_K, Q5_K_M, Q5_K_S, Q5_1, Q5_0, Q4_K_M, Q4_K_S, Q4_1, Q4_0, Q3_K_L, Q3_K_M, Q3_K_S, Q2_K or Q2_K_S (requantize other files, for example with llama.cpp's llama-quantize)"
type Quantization string

// The quantizations that SLMModel accepts.
const (
	QuantizationF32   Quantization = "F32"
	QuantizationF16   Quantization = "F16"
	QuantizationBF16  Quantization = "BF16"
	QuantizationQ8_0  Quantization = "Q8_0"
	QuantizationQ6_K  Quantization = "Q6_K"
	QuantizationQ5_KM Quantization = "Q5_K_M"
	QuantizationQ5_KS Quantization = "Q5_K_S"
	QuantizationQ5_1  Quantization = "Q5_1"
	QuantizationQ5_0  Quantization = "Q5_0"
	QuantizationQ4_KM Quantization = "Q4_K_M"
	QuantizationQ4_KS Quantization = "Q4_K_S"
	QuantizationQ4_1  Quantization = "Q4_1"
	QuantizationQ4_0  Quantization = "Q4_0"
	QuantizationQ3_KL Quantization = "Q3_K_L"
	QuantizationQ3_KM Quantization = "Q3_K_M"
	QuantizationQ3_KS Quantization = "Q3_K_S"
	QuantizationQ2_K  Quantization = "Q2_K"
	QuantizationQ2_KS Quantization = "Q2_K_S"
)

// ModelSource says where a model file is fetched from: exactly one of http or oci.
// +kubebuilder:validation:XValidation:rule="has(self.http) != has(self.oci)",message="set exactly one of source.http or source.oci"
type ModelSource struct {
	// http fetches the model file from an HTTP(S) URL.
	// +optional
	HTTP *HTTPSource `json:"http,omitempty"`

	// oci fetches the model file as the layer of an OCI artifact.
	// +optional
	OCI *OCISource `json:"oci,omitempty"`
}

// HTTPSource is a model file at an HTTP(S) URL.
// +kubebuilder:validation:XValidation:rule="self.url.startsWith('https://') || (self.url.startsWith('http://') && self.allowInsecureHTTP)",message="source.http.url must start with https:// (or with http:// when allowInsecureHTTP is true)"
// +kubebuilder:validation:XValidation:rule="!has(self.caBundle) || self.url.startsWith('https://')",message="source.http.caBundle only applies to an https:// url"
type HTTPSource struct {
	// url of the model file. It must be https:// unless allowInsecureHTTP is set.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getHostname() != ''",message="source.http.url must be an absolute URL with a host, such as https://models.example.com/tinyllama-q4_0.gguf"
	URL string `json:"url"`

	// secretRef names a Secret in the same namespace whose key "authorization"
	// is sent as the Authorization header (for example "Bearer <token>"). It is
	// never logged.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`

	// caBundle is a PEM bundle of the certificate authorities that may sign the
	// server's certificate, in addition to the system roots.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	CABundle string `json:"caBundle,omitempty"`

	// allowInsecureHTTP allows a plain http:// url. The download is still
	// verified against spec.digest, but its source is not authenticated.
	// +optional
	// +kubebuilder:default=false
	AllowInsecureHTTP bool `json:"allowInsecureHTTP"`
}

// OCISource is a model file stored as the layer of an OCI artifact.
type OCISource struct {
	// reference of the artifact: registry/repository:tag or
	// registry/repository@sha256:<digest>.
	// +required
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)+(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}|@sha256:[a-f0-9]{64})$')",message="source.oci.reference must be registry/repository:tag or registry/repository@sha256:<64 lowercase hex digits>, with a lowercase repository, such as registry.example.com/models/tinyllama:q4_0"
	Reference string `json:"reference"`

	// pullSecretRef names a Secret of type kubernetes.io/dockerconfigjson in the
	// same namespace with the registry's credentials.
	// +optional
	PullSecretRef *LocalObjectReference `json:"pullSecretRef,omitempty"`

	// allowInsecureHTTP talks plain HTTP to the registry. The layer is still
	// verified against spec.digest.
	// +optional
	// +kubebuilder:default=false
	AllowInsecureHTTP bool `json:"allowInsecureHTTP"`
}

// CPUPolicy is whether inferd's compute threads share their CPUs: Auto,
// Shared or Exclusive.
// +kubebuilder:validation:MaxLength=16
// +kubebuilder:validation:XValidation:rule="self in ['Auto', 'Shared', 'Exclusive']",message="cpuPolicy must be Auto, Shared or Exclusive"
type CPUPolicy string

const (
	// CPUPolicyAuto makes threads poll briefly while the CPUs are not
	// contended and sleep at once while they are.
	CPUPolicyAuto CPUPolicy = "Auto"
	// CPUPolicyShared makes threads sleep as soon as they wait.
	CPUPolicyShared CPUPolicy = "Shared"
	// CPUPolicyExclusive makes threads poll briefly before they sleep.
	CPUPolicyExclusive CPUPolicy = "Exclusive"
)

// ModelRuntime is how inferd runs the model on a node.
type ModelRuntime struct {
	// contextLength is the context window in tokens that inferd allocates the KV
	// cache for.
	// +optional
	// +kubebuilder:default=2048
	// +kubebuilder:validation:Minimum=128
	// +kubebuilder:validation:Maximum=131072
	ContextLength int32 `json:"contextLength,omitempty"`

	// threads is the number of compute threads; unset means one per CPU that the
	// container may use.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=256
	Threads *int32 `json:"threads,omitempty"`

	// cpuPolicy says how inferd's compute threads wait for one another. Auto
	// (the default): a thread that waits polls for up to 200 µs before it
	// sleeps, as long as that pays; when it finds it lost its core to another
	// process while polling, the threads sleep at once (for 10 ms to 1 s,
	// longer while contention lasts) and try again after. Shared: threads
	// sleep as soon as they wait, so another busy process on the node slows
	// generation only in proportion. Exclusive: the CPUs run nothing else (a
	// Guaranteed pod, integer CPU requests equal to limits, under the
	// kubelet's static CPU manager policy; or a node that runs only inferd),
	// and threads always poll first. On a small VM polling makes
	// multi-threaded generation 1.1-1.3x faster, and Exclusive much slower
	// when another process does take a CPU (see the README's benchmarks).
	// +optional
	// +kubebuilder:default=Auto
	CPUPolicy CPUPolicy `json:"cpuPolicy,omitempty"`

	// maxConcurrentRequests is how many requests inferd generates for at once;
	// more wait in a bounded queue, and past it get 429.
	// +optional
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=256
	MaxConcurrentRequests int32 `json:"maxConcurrentRequests,omitempty"`

	// resources that inferd needs to serve this model. The memory request should
	// cover the model file plus the KV cache: the fit check excludes nodes whose
	// allocatable memory is smaller.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
}

// SelfTest is the gate that inferd runs on each node after it loaded the model
// and before it reports ready. A canary step is promoted only on nodes that
// passed it.
type SelfTest struct {
	// prompts are golden prompts run in order; each must produce output.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	Prompts []GoldenPrompt `json:"prompts"`

	// minTokensPerSecond is the slowest generation speed, in tokens per second
	// measured on the node, that passes.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000
	MinTokensPerSecond int32 `json:"minTokensPerSecond,omitempty"`

	// maxTimeToFirstToken is the longest time from request to first generated
	// token that passes, as a duration such as "1500ms" or "2s".
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|([0-9]{1,5}([.][0-9]{1,9})?(ns|us|µs|ms|s|m|h)){1,4})$') && duration(self) > duration('0s')",message="selfTest.maxTimeToFirstToken must be a positive duration such as 1500ms or 2s (a number and a unit: ms, s, m or h)"
	MaxTimeToFirstToken *metav1.Duration `json:"maxTimeToFirstToken,omitempty"`

	// timeout bounds the whole self-test; a node that does not finish in time is
	// not ready.
	// +optional
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|([0-9]{1,5}([.][0-9]{1,9})?(ns|us|µs|ms|s|m|h)){1,4})$') && duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="selfTest.timeout must be a duration from 1s to 1h, such as 90s or 5m (a number and a unit: s, m or h)"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// GoldenPrompt is one prompt of a self-test. Prompt text is never logged.
type GoldenPrompt struct {
	// prompt is the text sent as a completion request.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Prompt string `json:"prompt"`

	// maxTokens is how many tokens to generate.
	// +optional
	// +kubebuilder:default=16
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=512
	MaxTokens int32 `json:"maxTokens,omitempty"`

	// expectContains, when set, must occur in the generated text (greedy
	// decoding, so the result is deterministic for a given model file).
	// +optional
	// +kubebuilder:validation:MaxLength=256
	ExpectContains string `json:"expectContains,omitempty"`

	// expectRegex, when set, is a regular expression (RE2 syntax, as Go's
	// regexp reads it) that the generated text must match somewhere.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	ExpectRegex string `json:"expectRegex,omitempty"`

	// expectJSONSchema, when set, is a JSON Schema that the generated text,
	// read as one JSON value, must satisfy. inferd checks a subset: type
	// (object, array, string, number, integer, boolean, null), required,
	// properties, items and enum; a schema with any other keyword is refused
	// before the model is rolled out (InvalidConfig).
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	ExpectJSONSchema *runtime.RawExtension `json:"expectJSONSchema,omitempty"`
}

// ModelVariant is a per-hardware alternative of the model: nodes whose labels
// match its nodeSelector get this artifact instead of the default one.
type ModelVariant struct {
	// name of the variant, unique in the model.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="a variant's name must be lowercase letters, digits and '-', starting and ending with a letter or digit, such as arm64-q4"
	Name string `json:"name"`

	// nodeSelector selects the nodes of this variant by label, for example
	// kubernetes.io/arch: arm64. The first variant that matches a node wins.
	// +required
	NodeSelector NodeSelector `json:"nodeSelector"`

	// source of this variant's file.
	// +required
	Source ModelSource `json:"source"`

	// digest is the sha256 of this variant's file.
	// +required
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^sha256:[a-f0-9]{64}$')",message="digest must be sha256: followed by 64 lowercase hex digits (0-9, a-f), as sha256sum prints them"
	Digest string `json:"digest"`

	// quantization of this variant's file, as llama.cpp names it
	// (general.file_type): one that inferd runs, such as Q4_0 or Q8_0.
	// +required
	Quantization Quantization `json:"quantization"`

	// sizeBytes is the size of this variant's file.
	// +optional
	// +kubebuilder:validation:Minimum=1
	SizeBytes *int64 `json:"sizeBytes,omitempty"`
}

// SLMModelSpec describes a quantized model artifact.
// +kubebuilder:validation:XValidation:rule="self.digest != oldSelf.digest || (self.quantization == oldSelf.quantization && has(self.architecture) == has(oldSelf.architecture) && (!has(self.architecture) || self.architecture == oldSelf.architecture) && has(self.sizeBytes) == has(oldSelf.sizeBytes) && (!has(self.sizeBytes) || self.sizeBytes == oldSelf.sizeBytes))",message="spec.quantization, spec.architecture and spec.sizeBytes describe the file that spec.digest names: change them only together with spec.digest"
// +kubebuilder:validation:XValidation:rule="!has(self.variants) || self.variants.all(v, v.digest != self.digest)",message="a variant's digest must differ from spec.digest: a variant with the same file is not a variant"
type SLMModelSpec struct {
	// source says where the model file is fetched from.
	// +required
	Source ModelSource `json:"source"`

	// digest is the sha256 of the model file, as sha256:<64 lowercase hex
	// digits>. inferd verifies every byte against it, and a changed digest is a
	// new model, so a new rollout revision.
	// +required
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^sha256:[a-f0-9]{64}$')",message="digest must be sha256: followed by 64 lowercase hex digits (0-9, a-f), as sha256sum prints them"
	Digest string `json:"digest"`

	// format of the model file.
	// +optional
	// +kubebuilder:default=GGUF
	Format ModelFormat `json:"format,omitempty"`

	// quantization of the model file, as llama.cpp names it
	// (general.file_type): one that inferd runs, such as Q4_0, Q4_K_M or Q8_0;
	// a refused value's message lists them all.
	// +required
	Quantization Quantization `json:"quantization"`

	// sizeBytes is the size of the model file, used to check before a download
	// that a node's disk and memory can hold it.
	// +optional
	// +kubebuilder:validation:Minimum=1
	SizeBytes *int64 `json:"sizeBytes,omitempty"`

	// architecture is the model architecture that the GGUF metadata must declare
	// (general.architecture): llama (Llama 2 and 3.x, SmolLM2, TinyLlama),
	// qwen2, qwen3, phi3 (Phi-3, Phi-3.5, Phi-4-mini), gemma3, granite,
	// smollm3, or slmops-bigram (the test architecture), the ones inferd
	// runs; inferd refuses to load a file that declares another.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self in ['llama', 'qwen2', 'qwen3', 'phi3', 'gemma3', 'granite', 'smollm3', 'slmops-bigram']",message="architecture must be one that inferd runs: llama, qwen2, qwen3, phi3, gemma3, granite, smollm3 or slmops-bigram"
	Architecture string `json:"architecture,omitempty"`

	// runtime is how inferd runs the model.
	// +optional
	// +kubebuilder:default={}
	Runtime ModelRuntime `json:"runtime,omitempty"`

	// selfTest is the on-node gate that inferd runs before it reports ready.
	// +optional
	SelfTest *SelfTest `json:"selfTest,omitempty"`

	// variants are per-hardware alternatives, so that one SLMModel serves a
	// mixed fleet. Nodes that match no variant get the default artifact above.
	// The first variant whose nodeSelector matches a node wins, so two
	// variants may not have the same nodeSelector.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(i, v, self.all(j, w, j >= i || w.nodeSelector != v.nodeSelector))",messageExpression="'variant ' + self.transformList(i, v, self.exists(j, w, j < i && w.nodeSelector == v.nodeSelector), v.name)[0] + ' has the nodeSelector of an earlier variant, so it can never match (the first variant that matches a node wins): give it its own nodeSelector or remove it'"
	// +listType=map
	// +listMapKey=name
	Variants []ModelVariant `json:"variants,omitempty"`
}

// ResolvedArtifact is an artifact of the model as the operator resolved it.
type ResolvedArtifact struct {
	// variant is the variant's name; empty for the default artifact.
	// +optional
	Variant string `json:"variant,omitempty"`
	// digest of the file.
	// +required
	Digest string `json:"digest"`
	// sizeBytes of the file, when known.
	// +optional
	SizeBytes *int64 `json:"sizeBytes,omitempty"`
}

// SLMModelStatus is the observed state of an SLMModel.
type SLMModelStatus struct {
	// observedGeneration is the generation of the spec that this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions describe the state of the model: Ready, Resolved.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// digest is the resolved digest of the default artifact.
	// +optional
	Digest string `json:"digest,omitempty"`

	// sizeBytes is the size of the default artifact, when known.
	// +optional
	SizeBytes *int64 `json:"sizeBytes,omitempty"`

	// artifacts lists every resolved artifact, the default one and each variant.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=17
	Artifacts []ResolvedArtifact `json:"artifacts,omitempty"`

	// rollouts is how many EdgeRollouts in the namespace use this model.
	// +optional
	Rollouts int32 `json:"rollouts,omitempty"`
}

// SLMModel is a quantized small language model artifact that EdgeRollouts ship
// to edge nodes.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=slm,categories=slmops
// +kubebuilder:printcolumn:name="Quant",type=string,JSONPath=`.spec.quantization`
// +kubebuilder:printcolumn:name="Arch",type=string,JSONPath=`.spec.architecture`
// +kubebuilder:printcolumn:name="Size",type=integer,JSONPath=`.spec.sizeBytes`,priority=1
// +kubebuilder:printcolumn:name="Digest",type=string,JSONPath=`.spec.digest`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Rollouts",type=integer,JSONPath=`.status.rollouts`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
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
