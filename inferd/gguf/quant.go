package gguf

// fileTypes names llama.cpp's general.file_type values (enum llama_ftype)
// the way quantization is spelled in SLMModel.spec.quantization.
var fileTypes = map[uint32]string{
	0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
	10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
	16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 21: "Q2_K_S", 32: "BF16",
}

// FileTypeOf returns the general.file_type value of a quantization name,
// for writers.
func FileTypeOf(quantization string) (uint32, bool) {
	for k, v := range fileTypes {
		if v == quantization {
			return k, true
		}
	}
	return 0, false
}

// Quantization is the file's quantization as llama.cpp names it: from
// general.file_type when the file says, else the type holding most bytes
// among its two-dimensional (weight) tensors.
func (f *File) Quantization() string {
	if v, ok := f.Get("general.file_type"); ok {
		if ft, ok := v.(uint32); ok {
			if name, ok := fileTypes[ft]; ok {
				return name
			}
		}
	}
	bytesBy := map[TensorType]uint64{}
	for _, t := range f.Tensors {
		if len(t.Dims) >= 2 {
			bytesBy[t.Type] += t.Size
		}
	}
	best, most := "", uint64(0)
	for typ, n := range bytesBy {
		if n > most || (n == most && typ.String() < best) {
			best, most = typ.String(), n
		}
	}
	return best
}
