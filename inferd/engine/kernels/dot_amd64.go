package kernels

import (
	"golang.org/x/sys/cpu"
)

// useAVX2 selects the assembly kernels; tests turn it off to compare.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func dotQ8_0AVX2(row *byte, xq *int8, xd *float32, nb int, table *float32) float32

//go:noescape
func dotQ4_0AVX2(row *byte, xq *int8, xd *float32, nb int, table *float32) float32

func dotQ8_0Fast(row []byte, a *Act) (float32, bool) {
	if !useAVX2 || len(a.D) == 0 {
		return 0, false
	}
	_ = row[len(a.D)*BytesQ8_0-1]
	return dotQ8_0AVX2(&row[0], &a.Q[0], &a.D[0], len(a.D), &f16table[0]), true
}

func dotQ4_0Fast(row []byte, a *Act) (float32, bool) {
	if !useAVX2 || len(a.D) == 0 {
		return 0, false
	}
	_ = row[len(a.D)*BytesQ4_0-1]
	return dotQ4_0AVX2(&row[0], &a.Q[0], &a.D[0], len(a.D), &f16table[0]), true
}

// Accelerated names the fast paths in use, for logs and benchmarks.
func Accelerated() string {
	if useAVX2 {
		return "avx2"
	}
	return "go"
}
