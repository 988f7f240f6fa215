package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestAttentionBatchesEqualOneCallPerPosition: ScaledDotsF32 and
// AxpyLanesF32 over a head's cached positions give, to the bit, what
// DotF32 and AxpyF32 give one position at a time, for head sizes the fast
// path takes (64, 128) and one it does not (80), from every starting lane.
func TestAttentionBatchesEqualOneCallPerPosition(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, hd := range []int{64, 128, 80} {
		for _, positions := range []int{1, 7, 8, 33} {
			for _, lane := range []int{0, 3, 7} {
				t.Run(fmt.Sprintf("hd=%d/positions=%d/lane=%d", hd, positions, lane), func(t *testing.T) {
					stride := 3*hd + 16 // kv heads side by side
					rows := make([]float32, positions*stride)
					for i := range rows {
						rows[i] = float32(r.NormFloat64())
					}
					q := make([]float32, hd)
					for i := range q {
						q[i] = float32(r.NormFloat64())
					}
					const scale = 0.125
					got := make([]float32, positions)
					ScaledDotsF32(q, rows[hd:], stride, scale, got)
					for i := range got {
						want := DotF32(q, rows[hd+i*stride:hd+i*stride+hd]) * scale
						if got[i] != want {
							t.Fatalf("position %d: ScaledDotsF32 %v, DotF32 %v", i, got[i], want)
						}
					}

					acc := make([]float32, AttnLanes*hd)
					want := make([]float32, AttnLanes*hd)
					for i := range acc {
						acc[i] = float32(r.NormFloat64())
						want[i] = acc[i]
					}
					const alpha = 0.3
					AxpyLanesF32(got, alpha, rows[2*hd:], stride, acc, lane)
					for i, w := range got {
						l := (lane + i) % AttnLanes
						AxpyF32(w*alpha, rows[2*hd+i*stride:2*hd+i*stride+hd], want[l*hd:(l+1)*hd])
					}
					for i := range acc {
						if acc[i] != want[i] {
							t.Fatalf("acc[%d] (lane %d): AxpyLanesF32 %v, AxpyF32 %v", i, i/hd, acc[i], want[i])
						}
					}
				})
			}
		}
	}
}
