package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/slmops/slmops/inferd/gguf"
)

// TestBlocks32RoundsAsLlamaCpp: the 32-value copy is llama.cpp's Q8_0 on
// x86 (quantize_row_q8_0): the values times 127/amax, rounded to nearest
// even, and the scale amax/127 in fp16; Q8_1's s is fp16(d*sum).
func TestBlocks32RoundsAsLlamaCpp(t *testing.T) {
	// float32 arithmetic, as the kernel's (constants would be exact).
	d2, sum2 := float32(2), float32(-127+64+16)
	d2 /= 127
	tests := map[string]struct {
		x    []float32
		q    []int8
		d, s float32
	}{
		"amax 127 multiplies by 1, and halves go to the even neighbour": {
			x: []float32{127, 62.5, -0.5, 1.5, 2.5, -3.5, 0.49},
			q: []int8{127, 62, 0, 2, 2, -4, 0},
			d: 1, s: 127 + 62 + 2 + 2 - 4,
		},
		"a negative extreme gives -127, the scale stays positive": {
			x: []float32{-2, 1, 0.25},
			// 1 x 63.5 = 63.5 rounds to 64, 0.25 x 63.5 = 15.875 to 16.
			q: []int8{-127, 64, 16},
			d: F16ToF32(F32ToF16(d2)), s: F16ToF32(F32ToF16(d2 * sum2)),
		},
		"all zero": {x: []float32{0, 0}, q: []int8{0, 0}, d: 0, s: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			x := make([]float32, QA)
			copy(x, tc.x)
			var a Act
			a.SetFormats(x, Blocks32)
			if diff := cmp.Diff(tc.q, a.Q[:len(tc.q)]); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
			if a.D[0] != tc.d || a.S[0] != tc.s {
				t.Errorf("d %v, s %v; want %v, %v", a.D[0], a.S[0], tc.d, tc.s)
			}
			if len(a.KQ) != 0 || len(a.KD) != 0 {
				t.Errorf("Blocks32 alone made a Q8_K copy of %d values", len(a.KQ))
			}
		})
	}
}

// TestBlocks256RoundsAsLlamaCpp: the 256-value copy is llama.cpp's Q8_K
// (quantize_row_q8_K): iscale = -127/max of the value of largest magnitude
// (the first of equals), values nearest(iscale*v) capped at 127, scale
// 1/iscale, and the sums of each 16 values.
func TestBlocks256RoundsAsLlamaCpp(t *testing.T) {
	tests := map[string]struct {
		x []float32
		q []int8
		d float32
	}{
		"a negative extreme: iscale 1, halves to even": {
			x: []float32{-127, 62.5, -0.5, 1.5, 2.5, -3.5, 127},
			q: []int8{-127, 62, 0, 2, 2, -4, 127},
			d: 1,
		},
		"a positive extreme: iscale -1, the signs flip, the scale is negative": {
			x: []float32{127, 62.5, -0.5, 1.5, -127},
			q: []int8{-127, -62, 0, -2, 127},
			d: -1,
		},
		"all zero": {x: []float32{0}, q: []int8{0}, d: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			x := make([]float32, QK_K)
			copy(x, tc.x)
			var a Act
			a.SetFormats(x, Blocks256)
			if diff := cmp.Diff(tc.q, a.KQ[:len(tc.q)]); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
			if a.KD[0] != tc.d {
				t.Errorf("d %v; want %v", a.KD[0], tc.d)
			}
			if len(a.Q) != 0 || len(a.D) != 0 {
				t.Errorf("Blocks256 alone made a Q8_0 copy of %d values", len(a.Q))
			}
		})
	}

	t.Run("random", func(t *testing.T) {
		r := rand.New(rand.NewPCG(20, 21))
		x := randomVector(r, 4*QK_K, 1)
		var a Act
		a.SetFormats(x, Blocks256)
		for b := range 4 {
			blk := x[b*QK_K : (b+1)*QK_K]
			q := a.KQ[b*QK_K : (b+1)*QK_K]
			// The value of largest magnitude becomes -127 exactly.
			at := 0
			for i, v := range blk {
				if math.Abs(float64(v)) > math.Abs(float64(blk[at])) {
					at = i
				}
			}
			if q[at] != -127 {
				t.Errorf("block %d: the extreme %v became %d, want -127", b, blk[at], q[at])
			}
			d := float64(a.KD[b])
			for i, v := range blk {
				// Each value within half a step (and the float32
				// rounding of iscale*v) of its quantized value.
				if e := math.Abs(d*float64(q[i]) - float64(v)); e > 0.5001*math.Abs(d) {
					t.Fatalf("block %d value %d: %v quantized to %d x %v", b, i, v, q[i], d)
				}
			}
			for j := range QK_K / 16 {
				var s int
				for _, v := range q[16*j : 16*j+16] {
					s += int(v)
				}
				if int(a.KB[b*QK_K/16+j]) != s {
					t.Errorf("block %d: sum %d is %d, want %d", b, j, a.KB[b*QK_K/16+j], s)
				}
			}
		}
	})

	t.Run("left out where rows are not a whole number of 256", func(t *testing.T) {
		var a Act
		a.SetFormats(make([]float32, 96), AllFormats)
		if len(a.KQ) != 0 || len(a.Q) != 96 {
			t.Errorf("96 values: %d in Q8_K, %d in Q8_0; want 0, 96", len(a.KQ), len(a.Q))
		}
	})
}

// dequantizedAct is the activation as the products see it: the quantized
// copy that weights of type typ read, times its scales.
func dequantizedAct(typ gguf.TensorType, a *Act) []float64 {
	x := make([]float64, len(a.F))
	switch FormatOf(typ) {
	case Blocks32:
		for i, q := range a.Q {
			x[i] = float64(a.D[i/QA]) * float64(q)
		}
	case Blocks256:
		for i, q := range a.KQ {
			x[i] = float64(a.KD[i/QK_K]) * float64(q)
		}
	default:
		for i, v := range a.F {
			x[i] = float64(v)
		}
	}
	return x
}

// TestDotIsExactOnTheQuantizedActivation: every product (the Go kernels and
// the assembly ones where the CPU has them) equals, up to float32 rounding,
// the float64 dot product of the dequantized row with the dequantized
// activation copy its type reads: the integer parts are exact, as in
// llama.cpp, so both engines differ only in the order of a few float
// operations. Q4_1 and Q5_1 read Q8_1's s, d*sum rounded to fp16, for their
// minimums, which the tolerance allows for.
func TestDotIsExactOnTheQuantizedActivation(t *testing.T) {
	r := rand.New(rand.NewPCG(22, 23))
	for _, typ := range allTypes {
		if typ == gguf.F32 || typ == gguf.F16 || typ == gguf.BF16 {
			continue
		}
		for _, cols := range []int{256, 768, 2048} {
			t.Run(fmt.Sprintf("%s/%d", typ, cols), func(t *testing.T) {
				const rows = 23
				enc, err := Quantize(nil, typ, randomVector(r, rows*cols, 0.05))
				if err != nil {
					t.Fatal(err)
				}
				deq := make([]float32, rows*cols)
				if err := Dequantize(typ, enc, deq); err != nil {
					t.Fatal(err)
				}
				info, _ := RowInfo(typ, cols)
				x := randomVector(r, cols, 1)
				var a Act
				a.SetFormats(x, FormatOf(typ))
				xq := dequantizedAct(typ, &a)
				limit := 2e-6
				if typ == gguf.Q4_1 || typ == gguf.Q5_1 {
					limit = 5e-4
				}
				for _, fast := range []bool{false, true} {
					if fast && !hasFast() {
						continue
					}
					withPath(fast, func() {
						a.SetFormats(x, FormatOf(typ)) // the layout follows the kernels in use
						out := make([]float32, rows)
						MatRows(info, enc, []*Act{&a}, [][]float32{out}, 0, rows)
						for row := range rows {
							var want, norm float64
							for c, w := range deq[row*cols : (row+1)*cols] {
								want += float64(w) * xq[c]
								norm += math.Abs(float64(w) * xq[c])
							}
							if e := math.Abs(float64(out[row])-want) / norm; e > limit {
								t.Fatalf("fast %v, row %d: %v, reference %v (error %.2g of the sum of |terms|; want under %.2g)", fast, row, out[row], want, e, limit)
							}
						}
					})
				}
			})
		}
	}
}

// TestProductWithoutItsCopyPanics: an activation Set without the copy a
// weight type reads is a bug in the caller, not a zero.
func TestProductWithoutItsCopyPanics(t *testing.T) {
	r := rand.New(rand.NewPCG(24, 25))
	x := randomVector(r, QK_K, 1)
	for _, tc := range []struct {
		typ gguf.TensorType
		set Formats
	}{{gguf.Q4_K, Blocks32}, {gguf.Q6_K, 0}, {gguf.Q2_K, Blocks32}, {gguf.Q8_0, Blocks256}, {gguf.Q4_1, 0}} {
		t.Run(tc.typ.String(), func(t *testing.T) {
			enc, _ := Quantize(nil, tc.typ, x)
			for _, fast := range []bool{false, true} {
				withPath(fast, func() {
					var a Act
					a.SetFormats(x, tc.set)
					defer func() {
						if recover() == nil {
							t.Errorf("fast %v: Dot of %s without its copy did not panic", fast, tc.typ)
						}
					}()
					Dot(tc.typ, enc, &a)
				})
			}
		})
	}
}

func TestFormatOfCoversEveryQuantizedType(t *testing.T) {
	for _, typ := range allTypes {
		f := FormatOf(typ)
		float := slices.Contains([]gguf.TensorType{gguf.F32, gguf.F16, gguf.BF16}, typ)
		if want := map[bool]Formats{true: Blocks256, false: Blocks32}[isK(typ)]; !float && f != want {
			t.Errorf("%s: FormatOf %d, want %d", typ, f, want)
		}
		if float && f != 0 {
			t.Errorf("%s: FormatOf %d, want none", typ, f)
		}
	}
}
