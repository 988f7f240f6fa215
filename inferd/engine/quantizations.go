package engine

import (
	"slices"
	"sort"

	"github.com/slmops/slmops/inferd/engine/kernels"
	"github.com/slmops/slmops/inferd/gguf"
)

// fileTypeTensors lists, for each llama.cpp file type (general.file_type, by
// the name that gguf gives it and SLMModel's spec.quantization uses), the
// tensor types that llama.cpp's quantizer (llama_tensor_get_type in
// llama-quant.cpp) writes into such a file of a dense model besides F32
// (norms and biases). A "mostly Q4_K" file is not only Q4_K: the mixtures
// keep some tensors (attn_v, ffn_down, output) at a higher precision, which is
// why Q4_K_M needs Q6_K and Q4_K_S needs Q5_K; a fused attn_qkv (phi3) goes
// to Q5_K in Q4_K_M and to Q4_K in Q3_K_L; with an importance matrix, the
// first ffn_down tensors of Q4_0 and Q5_0 go to Q4_1 and Q5_1. The lists are
// for rows that are a whole number of 256-value blocks; narrowFallback adds
// the types of the other rows.
var fileTypeTensors = map[string][]gguf.TensorType{
	"F32":    {gguf.F32},
	"F16":    {gguf.F16},
	"BF16":   {gguf.BF16},
	"Q8_0":   {gguf.Q8_0},
	"Q4_0":   {gguf.Q4_0, gguf.Q4_1, gguf.Q6_K},
	"Q4_1":   {gguf.Q4_1, gguf.Q6_K},
	"Q5_0":   {gguf.Q5_0, gguf.Q5_1, gguf.Q6_K},
	"Q5_1":   {gguf.Q5_1, gguf.Q6_K},
	"Q2_K":   {gguf.Q2_K, gguf.Q3_K, gguf.Q4_K, gguf.Q6_K},
	"Q2_K_S": {gguf.Q2_K, gguf.Q4_K, gguf.Q6_K},
	"Q3_K_S": {gguf.Q3_K, gguf.Q6_K},
	"Q3_K_M": {gguf.Q3_K, gguf.Q4_K, gguf.Q5_K, gguf.Q6_K},
	"Q3_K_L": {gguf.Q3_K, gguf.Q4_K, gguf.Q5_K, gguf.Q6_K},
	"Q4_K_S": {gguf.Q4_K, gguf.Q5_K, gguf.Q6_K},
	"Q4_K_M": {gguf.Q4_K, gguf.Q5_K, gguf.Q6_K},
	"Q5_K_S": {gguf.Q5_K, gguf.Q6_K},
	"Q5_K_M": {gguf.Q5_K, gguf.Q6_K},
	"Q6_K":   {gguf.Q6_K},
}

// narrowFallback is the type that llama.cpp's quantizer writes a tensor in
// instead of a K-quant when its rows are not a whole number of 256-value
// blocks (tensor_type_fallback in llama-quant.cpp): SmolLM2's 576-wide and
// Qwen2.5-0.5B's 896-wide layers. Such a file's output matrix goes to Q8_0,
// and rows that are not a whole number of 32 values to F16.
var narrowFallback = map[gguf.TensorType][]gguf.TensorType{
	gguf.Q2_K: {gguf.Q4_0, gguf.Q8_0, gguf.F16},
	gguf.Q3_K: {gguf.Q4_0, gguf.Q8_0, gguf.F16},
	gguf.Q4_K: {gguf.Q5_0, gguf.Q8_0, gguf.F16},
	gguf.Q5_K: {gguf.Q5_1, gguf.Q8_0, gguf.F16},
	gguf.Q6_K: {gguf.Q8_0, gguf.F16},
}

// fileTypeNeeds is every tensor type that a file of the named type can
// hold besides F32, whatever the model's width.
func fileTypeNeeds(name string) []gguf.TensorType {
	var out []gguf.TensorType
	for _, t := range fileTypeTensors[name] {
		out = append(out, t)
		out = append(out, narrowFallback[t]...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Quantizations lists the llama.cpp file types (general.file_type names) that
// this build can run: those whose every tensor type, for rows of any width,
// the kernels compute with.
// It follows the kernels: a new tensor type in kernels.Supported adds the file
// types that need it. SLMModel's spec.quantization accepts exactly this list
// (cmd/inferd's TestCRDAcceptsWhatThisBuildRuns checks it).
func Quantizations() []string {
	var out []string
	for name := range fileTypeTensors {
		if !slices.ContainsFunc(fileTypeNeeds(name), func(t gguf.TensorType) bool { return !kernels.Supported(t) }) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
