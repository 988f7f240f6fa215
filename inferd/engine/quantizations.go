package engine

import (
	"slices"
	"sort"

	"github.com/slmops/slmops/inferd/engine/kernels"
	"github.com/slmops/slmops/inferd/gguf"
)

// fileTypeTensors lists, for each llama.cpp file type (general.file_type, by
// the name that gguf gives it and SLMModel's spec.quantization uses), the
// tensor types that llama.cpp's quantizer writes into such a file besides F32
// (norms and biases). A "mostly Q4_K" file is not only Q4_K: the mixtures
// keep some tensors (attn_v, ffn_down, output) at a higher precision, which is
// why Q4_K_M needs Q6_K and Q4_K_S needs Q5_K. The lists are for a model whose
// rows are a whole number of 256-value blocks; llama.cpp writes the rows of
// other shapes in a fallback type (Q5_0, Q8_0), which the loaders check per
// tensor.
var fileTypeTensors = map[string][]gguf.TensorType{
	"F32":    {gguf.F32},
	"F16":    {gguf.F16},
	"BF16":   {gguf.BF16},
	"Q8_0":   {gguf.Q8_0},
	"Q4_0":   {gguf.Q4_0, gguf.Q6_K},
	"Q4_1":   {gguf.Q4_1, gguf.Q6_K},
	"Q5_0":   {gguf.Q5_0, gguf.Q6_K},
	"Q5_1":   {gguf.Q5_1, gguf.Q6_K},
	"Q2_K":   {gguf.Q2_K, gguf.Q3_K, gguf.Q4_K, gguf.Q6_K},
	"Q3_K_S": {gguf.Q3_K, gguf.Q6_K},
	"Q3_K_M": {gguf.Q3_K, gguf.Q4_K, gguf.Q5_K, gguf.Q6_K},
	"Q3_K_L": {gguf.Q3_K, gguf.Q5_K, gguf.Q6_K},
	"Q4_K_S": {gguf.Q4_K, gguf.Q5_K, gguf.Q6_K},
	"Q4_K_M": {gguf.Q4_K, gguf.Q6_K},
	"Q5_K_S": {gguf.Q5_K, gguf.Q6_K},
	"Q5_K_M": {gguf.Q5_K, gguf.Q6_K},
	"Q6_K":   {gguf.Q6_K},
}

// Quantizations lists the llama.cpp file types (general.file_type names) that
// this build can run: those whose every tensor type the kernels compute with.
// It follows the kernels: a new tensor type in kernels.Supported adds the file
// types that need it. SLMModel's spec.quantization accepts exactly this list
// (cmd/inferd's TestCRDAcceptsWhatThisBuildRuns checks it).
func Quantizations() []string {
	var out []string
	for name, types := range fileTypeTensors {
		if !slices.ContainsFunc(types, func(t gguf.TensorType) bool { return !kernels.Supported(t) }) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
