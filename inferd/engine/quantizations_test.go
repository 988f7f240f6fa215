package engine

import (
	"slices"
	"testing"

	"github.com/slmops/slmops/inferd/gguf"
)

// TestEveryFileTypeHasItsTensorTypes: fileTypeTensors names exactly the file
// types that gguf knows (general.file_type 0 to 255), so that no file type
// can be run or refused by accident of a missing or misspelled entry.
func TestEveryFileTypeHasItsTensorTypes(t *testing.T) {
	known := map[string]bool{}
	for ft := range uint32(256) {
		f := &gguf.File{Metadata: []gguf.KV{{Key: "general.file_type", Type: gguf.TypeUint32, Value: ft}}}
		if name := f.Quantization(); name != "" {
			known[name] = true
			if _, ok := fileTypeTensors[name]; !ok {
				t.Errorf("general.file_type %d (%s) has no entry in fileTypeTensors", ft, name)
			}
		}
	}
	for name := range fileTypeTensors {
		if !known[name] {
			t.Errorf("fileTypeTensors has %s, which is no general.file_type that gguf knows", name)
		}
	}
}

// TestQuantizationsFollowTheKernels: the file types of the models the engine
// is tested and benchmarked with are run, and a file type is run only with
// every tensor type in it.
func TestQuantizationsFollowTheKernels(t *testing.T) {
	got := Quantizations()
	for _, name := range []string{
		"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
		"Q2_K", "Q3_K_M", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",
	} {
		if !slices.Contains(got, name) {
			t.Errorf("Quantizations() = %v lacks %s, whose tensor types the kernels compute with", got, name)
		}
	}
	// Q4_K_S is mostly Q4_K too, but keeps some tensors in Q5_K.
	if slices.Contains(got, "Q4_K_S") && !slices.Contains(got, "Q5_K_S") {
		t.Errorf("Quantizations() = %v has Q4_K_S without Q5_K_S, whose tensors it contains", got)
	}
}

// TestFileTypesNeedTheirNarrowFallbacks: a file type that this build runs
// runs for narrow models too, whose rows llama.cpp writes in a 32-value
// block type where a K-quant cannot hold them.
func TestFileTypesNeedTheirNarrowFallbacks(t *testing.T) {
	for name, want := range map[string][]gguf.TensorType{
		"Q4_K_M": {gguf.Q5_0, gguf.Q8_0}, // Q4_K rows, and Q6_K ones
		"Q5_K_M": {gguf.Q5_1, gguf.Q8_0}, // Q5_K rows, and Q6_K ones
		"Q2_K":   {gguf.Q4_0},            // Q2_K and Q3_K rows
		"Q6_K":   {gguf.Q8_0, gguf.F16},  // rows of 256, of 32, of neither
		"Q4_0":   {gguf.Q8_0},            // its output: Q6_K, or Q8_0 in a narrow model
	} {
		needs := fileTypeNeeds(name)
		for _, typ := range want {
			if !slices.Contains(needs, typ) {
				t.Errorf("%s needs %v; want it to include %s", name, needs, typ)
			}
		}
	}
}
