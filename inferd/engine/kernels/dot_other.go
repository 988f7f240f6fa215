//go:build !amd64 && !arm64

package kernels

import "github.com/slmops/slmops/inferd/gguf"

var useAVX2, useVNNI, usePairs, useQuads = false, false, false, false

func dotFast(gguf.TensorType, []byte, *Act) (float32, bool) { return 0, false }

// Accelerated names the fast paths in use, for logs and benchmarks.
func Accelerated() string { return "go" }

// dot4Func is a four-activation kernel bound to a batch's layout.
type dot4Func func(row []byte, a []*Act, out *[4]float32) bool

func dot4Kernel(gguf.TensorType, []*Act) dot4Func { return nil }

func rowsFast(gguf.TensorType, []byte, int, *Act, []float32) bool { return false }

func dotF32Fast(a, b []float32) float32              { panic("unreachable") }
func dotF32Row([]float32, []float32) (float32, bool) { return 0, false }
func dotF16Row([]byte, []float32) (float32, bool)    { return 0, false }
func axpyF32Fast(alpha float32, x, y []float32)      { panic("unreachable") }

func setFast(bool) func() { return func() {} }
func hasFast() bool       { return false }

func expShiftedFast([]float32, float32)                                { panic("unreachable") }
func siluMulFast([]float32, []float32)                                 { panic("unreachable") }
func scaledDotsFast([]float32, []float32, int, float32, []float32)     { panic("unreachable") }
func axpyLanesFast([]float32, float32, []float32, int, []float32, int) { panic("unreachable") }
func quantQ8Fast([]float32, int, []int8, []float32, []int32) bool      { return false }
