package kernels

import (
	"golang.org/x/sys/cpu"

	"github.com/slmops/slmops/inferd/gguf"
)

// useNEON selects the NEON dot-product kernels (ARMv8.2 DOTPROD); tests
// turn it off to compare with the pure-Go kernels.
var useNEON = cpu.ARM64.HasASIMDDP

// The amd64 paths do not exist here.
var useAVX2, useVNNI, usePairs, useQuads = false, false, false, false

//go:noescape
func dotQ8_0NEON(row *byte, xq *int8, xd *float32, nb int, table *float32) float32

//go:noescape
func dotQ4_0NEON(row *byte, xq *int8, xd *float32, nb int, table *float32) float32

// dotFast is one row's dot product with the NEON kernels, when the CPU
// and the type allow.
func dotFast(t gguf.TensorType, row []byte, a *Act) (float32, bool) {
	if !useNEON || len(a.D) == 0 {
		return 0, false
	}
	switch t {
	case gguf.Q8_0:
		_ = row[len(a.D)*BytesQ8_0-1]
		return dotQ8_0NEON(&row[0], &a.Q[0], &a.D[0], len(a.D), &f16table[0]), true
	case gguf.Q4_0:
		_ = row[len(a.D)*BytesQ4_0-1]
		return dotQ4_0NEON(&row[0], &a.Q[0], &a.D[0], len(a.D), &f16table[0]), true
	}
	return 0, false
}

// dot4Func is a four-activation kernel bound to a batch's layout.
type dot4Func func(row []byte, a []*Act, out *[4]float32) bool

func dot4Kernel(gguf.TensorType, []*Act) dot4Func                 { return nil }
func rowsFast(gguf.TensorType, []byte, int, *Act, []float32) bool { return false }
func dotF32Fast(a, b []float32) float32                           { panic("unreachable") }
func dotF32Row([]float32, []float32) (float32, bool)              { return 0, false }
func dotF16Row([]byte, []float32) (float32, bool)                 { return 0, false }
func axpyF32Fast(alpha float32, x, y []float32)                   { panic("unreachable") }

// Accelerated names the fast paths in use, for logs and benchmarks.
func Accelerated() string {
	if useNEON {
		return "neon-dotprod"
	}
	return "go"
}

// setFast turns the assembly kernels on (as the CPU allows) or off, and
// returns what restores them; for tests that compare paths.
func setFast(on bool) func() {
	n := useNEON
	useNEON = on && n
	return func() { useNEON = n }
}

// hasFast reports whether this CPU runs any assembly kernels.
func hasFast() bool { return useNEON }

func expShiftedFast([]float32, float32)                                { panic("unreachable") }
func siluMulFast([]float32, []float32)                                 { panic("unreachable") }
func scaledDotsFast([]float32, []float32, int, float32, []float32)     { panic("unreachable") }
func axpyLanesFast([]float32, float32, []float32, int, []float32, int) { panic("unreachable") }
func quantQ8Fast([]float32, int, []int8, []float32, []int32) bool      { return false }
