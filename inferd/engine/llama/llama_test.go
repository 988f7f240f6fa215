package llama

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/engine/kernels"
	"github.com/slmops/slmops/inferd/engine/llama/llamatest"
	"github.com/slmops/slmops/inferd/gguf"
)

// tiny is a small model shape whose rows suit every block format (K-quants
// need multiples of 256).
func tiny(t gguf.TensorType) llamatest.RandomSpec {
	return llamatest.RandomSpec{Embd: 256, Layers: 2, Heads: 4, KVHeads: 2, FF: 512, Vocab: 512, Context: 128, Type: t, Seed: 7, Scale: 0.08, ChatMLTokens: true}
}

// narrow is tiny at a width that no K-quant holds (96 = 3 blocks of 32),
// as SmolLM2's 576 and Qwen2.5-0.5B's 896 are: llama-quantize writes those
// rows in a 32-value block type. The feed-forward width stays 256, so a
// mixture keeps ffn_down in its K-quants.
func narrow(t gguf.TensorType) llamatest.RandomSpec {
	s := tiny(t)
	s.Embd, s.FF = 96, 256
	return s
}

// mix is tiny, or narrow, in a llama.cpp K-quant mixture.
func mix(s llamatest.RandomSpec, name string) llamatest.RandomSpec {
	s.Mix = name
	return s
}

func writeSpec(t *testing.T, s llamatest.RandomSpec) string { return llamatest.WriteFile(t, s) }

func load(t *testing.T, path string, opts engine.Options) *Model {
	t.Helper()
	e, err := engine.Load(path, engine.Expect{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	// engine.Load wraps the model to own the mapping; reach the Model.
	type unwrapper interface{ Unwrap() engine.Engine }
	if u, ok := e.(unwrapper); ok {
		return u.Unwrap().(*Model)
	}
	return e.(*Model)
}

// reference is a plain float32 transformer: every weight dequantized up
// front, float64 sums, no KV cache (each call recomputes the sequence), no
// batching, no parallelism. It shares nothing with the engine's forward
// pass but the dequantizers, which have their own tests.
type reference struct {
	cfg     Config
	embd    [][]float32
	outNorm []float32
	output  [][]float32
	layers  []refLayer
}

type refLayer struct {
	attnNorm, ffnNorm []float32
	wq, wk, wv, wo    [][]float32
	bq, bk, bv        []float32
	gate, up, down    [][]float32
}

func loadReference(t *testing.T, path string) *reference {
	t.Helper()
	m, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cfg, err := ReadConfig(m, m.Architecture())
	if err != nil {
		t.Fatal(err)
	}
	vocab, _ := m.Get("tokenizer.ggml.tokens")
	cfg.Vocab = len(vocab.([]string))
	vec := func(name string) []float32 {
		info, data, ok := m.Tensor(name)
		if !ok {
			return nil
		}
		out := make([]float32, info.Elements())
		if err := kernels.Dequantize(info.Type, data, out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	mat := func(name string) [][]float32 {
		info, _, ok := m.Tensor(name)
		if !ok {
			return nil
		}
		flat := vec(name)
		cols := int(info.Dims[0])
		var rows [][]float32
		for r := 0; r < len(flat); r += cols {
			rows = append(rows, flat[r:r+cols])
		}
		return rows
	}
	ref := &reference{cfg: cfg, embd: mat("token_embd.weight"), outNorm: vec("output_norm.weight"), output: mat("output.weight")}
	if ref.output == nil {
		ref.output = ref.embd
	}
	for i := range cfg.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		ref.layers = append(ref.layers, refLayer{
			attnNorm: vec(p + "attn_norm.weight"), ffnNorm: vec(p + "ffn_norm.weight"),
			wq: mat(p + "attn_q.weight"), wk: mat(p + "attn_k.weight"), wv: mat(p + "attn_v.weight"), wo: mat(p + "attn_output.weight"),
			bq: vec(p + "attn_q.bias"), bk: vec(p + "attn_k.bias"), bv: vec(p + "attn_v.bias"),
			gate: mat(p + "ffn_gate.weight"), up: mat(p + "ffn_up.weight"), down: mat(p + "ffn_down.weight"),
		})
	}
	return ref
}

func refMatVec(w [][]float32, x []float32, bias []float32) []float32 {
	out := make([]float32, len(w))
	for r, row := range w {
		var s float64
		for i, v := range row {
			s += float64(v) * float64(x[i])
		}
		if bias != nil {
			s += float64(bias[r])
		}
		out[r] = float32(s)
	}
	return out
}

func refNorm(x, w []float32, eps float32) []float32 {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	inv := 1 / math.Sqrt(ss/float64(len(x))+float64(eps))
	out := make([]float32, len(x))
	for i := range x {
		out[i] = float32(float64(x[i]) * inv * float64(w[i]))
	}
	return out
}

func refRope(x []float32, heads, headDim, ropeDim, pos int, base float32, neox bool) {
	for h := range heads {
		v := x[h*headDim : (h+1)*headDim]
		for i := range ropeDim / 2 {
			theta := float64(pos) * math.Pow(float64(base), -2*float64(i)/float64(ropeDim))
			a, b := 2*i, 2*i+1
			if neox {
				a, b = i, i+ropeDim/2
			}
			x0, x1 := float64(v[a]), float64(v[b])
			v[a] = float32(x0*math.Cos(theta) - x1*math.Sin(theta))
			v[b] = float32(x0*math.Sin(theta) + x1*math.Cos(theta))
		}
	}
}

// logits returns the logits after every position of tokens.
func (r *reference) logits(tokens []int32) [][]float32 {
	c := r.cfg
	T := len(tokens)
	xs := make([][]float32, T)
	for t, tok := range tokens {
		xs[t] = slices.Clone(r.embd[tok])
	}
	for _, ly := range r.layers {
		qs, ks, vs := make([][]float32, T), make([][]float32, T), make([][]float32, T)
		for t := range T {
			xn := refNorm(xs[t], ly.attnNorm, c.RMSEps)
			qs[t], ks[t], vs[t] = refMatVec(ly.wq, xn, ly.bq), refMatVec(ly.wk, xn, ly.bk), refMatVec(ly.wv, xn, ly.bv)
			refRope(qs[t], c.Heads, c.HeadDim, c.RopeDim, t, c.RopeBase, c.RopeNeox)
			refRope(ks[t], c.KVHeads, c.HeadDim, c.RopeDim, t, c.RopeBase, c.RopeNeox)
		}
		for t := range T {
			att := make([]float32, c.Embd)
			for h := range c.Heads {
				kvh := h / (c.Heads / c.KVHeads)
				scores := make([]float64, t+1)
				maxS := math.Inf(-1)
				for p := 0; p <= t; p++ {
					var d float64
					for i := range c.HeadDim {
						d += float64(qs[t][h*c.HeadDim+i]) * float64(ks[p][kvh*c.HeadDim+i])
					}
					scores[p] = d / math.Sqrt(float64(c.HeadDim))
					maxS = math.Max(maxS, scores[p])
				}
				var sum float64
				for p := range scores {
					scores[p] = math.Exp(scores[p] - maxS)
					sum += scores[p]
				}
				for i := range c.HeadDim {
					var o float64
					for p := range scores {
						o += scores[p] / sum * float64(vs[p][kvh*c.HeadDim+i])
					}
					att[h*c.HeadDim+i] = float32(o)
				}
			}
			o := refMatVec(ly.wo, att, nil)
			for i := range o {
				xs[t][i] += o[i]
			}
			xn := refNorm(xs[t], ly.ffnNorm, c.RMSEps)
			g, u := refMatVec(ly.gate, xn, nil), refMatVec(ly.up, xn, nil)
			for i := range g {
				g[i] = float32(float64(g[i]) / (1 + math.Exp(-float64(g[i]))) * float64(u[i]))
			}
			d := refMatVec(ly.down, g, nil)
			for i := range d {
				xs[t][i] += d[i]
			}
		}
	}
	out := make([][]float32, T)
	for t := range T {
		out[t] = refMatVec(r.output, refNorm(xs[t], r.outNorm, c.RMSEps), nil)
	}
	return out
}

// relMaxErr is max|a-b| / max|b|.
func relMaxErr(a, b []float32) float64 {
	var d, m float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
		m = math.Max(m, math.Abs(float64(b[i])))
	}
	return d / m
}

// Tolerances of the engine's logits against the reference, as a fraction
// of the largest logit. F32 weights meet float activations, so only
// summation order differs; F16 weights meet the activations rounded to F16,
// as llama.cpp's F16 products take them (0.0008 here); the quantized types meet activations quantized
// to 8 bits as llama.cpp quantizes them, which costs 2-3 percent here: the
// 32-value block types' Q8_0 blocks, and the K-quants' Q8_K blocks, with
// one scale per 256 values, which are coarser (0.019-0.024 of the largest
// logit with 32-value blocks for every type, 0.024-0.031 with Q8_K).
var logitTolerance = map[string]float64{
	"F32": 1e-4, "F16": 2e-3, "BF16": 1e-4, "Q8_0": 0.03, "Q4_0": 0.03, "Q4_1": 0.03, "Q5_0": 0.03, "Q5_1": 0.03,
	"Q2_K": 0.04, "Q3_K": 0.04, "Q4_K": 0.04, "Q5_K": 0.04, "Q6_K": 0.04,
	"Q2_K mix": 0.04, "Q3_K_M": 0.04, "Q4_K_S": 0.04, "Q4_K_M": 0.04, "Q5_K_M": 0.04,
	"narrow Q4_0": 0.03, "narrow Q4_1": 0.03, "narrow Q5_0": 0.03, "narrow Q5_1": 0.03, "narrow Q8_0": 0.03,
	"narrow Q2_K": 0.04, "narrow Q3_K_M": 0.04, "narrow Q4_K_M": 0.04, "narrow Q5_K_M": 0.04, "narrow BF16": 1e-4,
	"qwen2 F32": 1e-4, "qwen2 Q8_0": 0.03, "qwen2 Q5_K_M": 0.04, "tied F32": 1e-4,
}

func TestLogitsMatchTheReference(t *testing.T) {
	cases := map[string]llamatest.RandomSpec{}
	for _, typ := range []gguf.TensorType{
		gguf.F32, gguf.F16, gguf.BF16, gguf.Q8_0, gguf.Q4_0, gguf.Q4_1, gguf.Q5_0, gguf.Q5_1,
		gguf.Q2_K, gguf.Q3_K, gguf.Q4_K, gguf.Q5_K, gguf.Q6_K,
	} {
		cases[typ.String()] = tiny(typ)
	}
	km := tiny(gguf.Q4_K)
	km.Q4KM = true
	cases["Q4_K_M"] = km
	cases["Q2_K mix"] = mix(tiny(gguf.Q2_K), "Q2_K")
	for _, m := range []string{"Q3_K_M", "Q4_K_S", "Q5_K_M"} {
		cases[m] = mix(tiny(gguf.Q4_K), m)
	}
	// Narrow models: the 32-value block types on rows of 3 blocks, and
	// the mixtures with llama-quantize's fallbacks beside their K-quants.
	for _, typ := range []gguf.TensorType{gguf.BF16, gguf.Q8_0, gguf.Q4_0, gguf.Q4_1, gguf.Q5_0, gguf.Q5_1} {
		cases["narrow "+typ.String()] = narrow(typ)
	}
	for _, m := range []string{"Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M"} {
		cases["narrow "+m] = mix(narrow(gguf.Q4_K), m)
	}
	for _, typ := range []gguf.TensorType{gguf.F32, gguf.Q8_0} {
		q := tiny(typ)
		q.Arch = ArchQwen2
		cases["qwen2 "+typ.String()] = q
	}
	q := mix(tiny(gguf.Q4_K), "Q5_K_M")
	q.Arch = ArchQwen2
	cases["qwen2 Q5_K_M"] = q
	tied := tiny(gguf.F32)
	tied.Tied = true
	cases["tied F32"] = tied

	prompt := []int32{1, 300, 301, 302, 17, 99, 400, 5, 260, 261}
	decode := []int32{410, 42, 511}
	for name, spec := range cases {
		t.Run(name, func(t *testing.T) {
			path := writeSpec(t, spec)
			md := load(t, path, engine.Options{Threads: 2})
			ref := loadReference(t, path).logits(append(slices.Clone(prompt), decode...))

			seq, _ := md.NewSequence()
			defer seq.Close()
			got, err := seq.Forward(context.Background(), prompt)
			if err != nil {
				t.Fatal(err)
			}
			worst := relMaxErr(got, ref[len(prompt)-1])
			for i, tok := range decode {
				got, err = seq.Forward(context.Background(), []int32{tok})
				if err != nil {
					t.Fatal(err)
				}
				worst = math.Max(worst, relMaxErr(got, ref[len(prompt)+i]))
			}
			tol, ok := logitTolerance[name]
			if !ok {
				t.Fatalf("no tolerance for %s", name)
			}
			if worst > tol {
				t.Errorf("logits differ from the reference by %.3g of the largest; want at most %.3g", worst, tol)
			} else {
				t.Logf("largest difference from the reference: %.3g of the largest logit", worst)
			}
		})
	}
}

// TestNarrowModelsHoldTheFallbackTypes: the narrow models above hold what
// llama-quantize writes for such a model (so TestLogitsMatchTheReference
// runs those types): the fallback of each K-quant in the 96-wide matrices,
// Q8_0 for the output, and the mixture's K-quants in the 256-wide ffn_down.
func TestNarrowModelsHoldTheFallbackTypes(t *testing.T) {
	for m, want := range map[string][]gguf.TensorType{
		"Q2_K":   {gguf.Q4_0, gguf.Q8_0, gguf.Q3_K},
		"Q3_K_M": {gguf.Q4_0, gguf.Q5_0, gguf.Q8_0, gguf.Q4_K},
		"Q4_K_M": {gguf.Q5_0, gguf.Q8_0, gguf.Q4_K, gguf.Q6_K},
		"Q5_K_M": {gguf.Q5_1, gguf.Q8_0, gguf.Q5_K, gguf.Q6_K},
	} {
		t.Run(m, func(t *testing.T) {
			f, err := gguf.Open(writeSpec(t, mix(narrow(gguf.Q4_K), m)))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			has := map[gguf.TensorType]bool{}
			for _, info := range f.Tensors {
				has[info.Type] = true
			}
			for _, typ := range want {
				if !has[typ] {
					t.Errorf("no %s tensor; the file has %v", typ, has)
				}
			}
			if q := f.Quantization(); q != m {
				t.Errorf("the file says it is %s; want %s", q, m)
			}
		})
	}
}

// TestPrefillInOneCallEqualsTokenByToken: a prompt read in chunks of many
// tokens gives the logits that reading it token by token gives. With float
// weights the arithmetic is the same; with quantized ones the batched and
// the single-token kernels sum in different orders, and a random network
// amplifies that, so the bound is the reference tolerance.
func TestPrefillInOneCallEqualsTokenByToken(t *testing.T) {
	for _, typ := range []gguf.TensorType{gguf.F32, gguf.Q4_0, gguf.Q8_0, gguf.Q5_0, gguf.Q3_K} {
		t.Run(typ.String(), func(t *testing.T) {
			md := load(t, writeSpec(t, tiny(typ)), engine.Options{Threads: 2})
			prompt := make([]int32, 80) // more than one prefill chunk
			for i := range prompt {
				prompt[i] = int32(3 + (i*37)%500)
			}
			a, _ := md.NewSequence()
			batched, err := a.Forward(context.Background(), prompt)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := md.NewSequence()
			var one []float32
			for _, tok := range prompt {
				if one, err = b.Forward(context.Background(), []int32{tok}); err != nil {
					t.Fatal(err)
				}
			}
			tol := logitTolerance[typ.String()]
			if e := relMaxErr(batched, one); e > tol {
				t.Errorf("batched prefill differs from token by token by %.3g; want at most %.3g", e, tol)
			}
		})
	}
}

// TestEveryArchitectureDecodesAsItPrefills runs each architecture's
// features (wider queries, query and key norms, fused matrices, post-norms,
// GELU, sliding windows, multipliers, RoPE factors) through both paths of
// the forward pass: a prompt in one call, and one token at a time. Their
// logits against llama.cpp's are the parity test's.
func TestEveryArchitectureDecodesAsItPrefills(t *testing.T) {
	specs := map[string]func(*llamatest.RandomSpec){
		"qwen3 with 64-wide heads over a 256 embedding": func(s *llamatest.RandomSpec) { s.Arch, s.HeadDim = ArchQwen3, 64 },
		"llama with Llama 3's tokenizer and RoPE factors": func(s *llamatest.RandomSpec) {
			s.Pre, s.RopeFreqs = "llama-bpe", true
		},
		"phi3": func(s *llamatest.RandomSpec) { s.Arch = ArchPhi3 },
		"phi3 with partial rotation and LongRoPE's long factors": func(s *llamatest.RandomSpec) {
			s.Arch, s.RopeDim, s.LongRoPE = ArchPhi3, 48, 32
		},
		"gemma3 with an 8-token window": func(s *llamatest.RandomSpec) {
			s.Arch, s.HeadDim, s.Layers, s.SlidingWindow = ArchGemma3, 128, 6, 8
		},
		"granite": func(s *llamatest.RandomSpec) { s.Arch = ArchGranite },
		"smollm3 with 4 layers, the last without rotation": func(s *llamatest.RandomSpec) {
			s.Arch, s.Layers = ArchSmolLM3, 4
		},
	}
	for name, mutate := range specs {
		t.Run(name, func(t *testing.T) {
			s := tiny(gguf.F32)
			s.ChatMLTokens = false
			mutate(&s)
			md := load(t, writeSpec(t, s), engine.Options{Threads: 2})
			if want := cmp.Or(s.Arch, ArchLlama); md.cfg.Arch != want {
				t.Fatalf("loaded as %s, want %s", md.cfg.Arch, want)
			}
			prompt := make([]int32, 80) // more than one prefill chunk
			for i := range prompt {
				prompt[i] = int32(3 + (i*37)%500)
			}
			a, _ := md.NewSequence()
			batched, err := a.Forward(context.Background(), prompt)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := md.NewSequence()
			var one []float32
			for _, tok := range prompt {
				if one, err = b.Forward(context.Background(), []int32{tok}); err != nil {
					t.Fatal(err)
				}
			}
			if e := relMaxErr(batched, one); e > logitTolerance["F32"] {
				t.Errorf("batched prefill differs from token by token by %.3g; want at most %.3g", e, logitTolerance["F32"])
			}
		})
	}
}

func TestGreedyDecodingAgreesAcrossF32F16AndQ8_0(t *testing.T) {
	var want []int32
	for _, typ := range []gguf.TensorType{gguf.F32, gguf.F16, gguf.Q8_0} {
		md := load(t, writeSpec(t, tiny(typ)), engine.Options{Threads: 2})
		seq, _ := md.NewSequence()
		next := []int32{1, 300, 301, 302}
		var got []int32
		for range 16 {
			logits, err := seq.Forward(context.Background(), next)
			if err != nil {
				t.Fatal(err)
			}
			tok := engine.NewSampler(0, 1, nil).Sample(logits)
			got = append(got, tok)
			next = []int32{tok}
		}
		seq.Close()
		if want == nil {
			want = got
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s greedy tokens %v; F32 made %v", typ, got, want)
		}
	}
}

func TestForwardStopsWhenCanceledAndChecksItsInput(t *testing.T) {
	md := load(t, writeSpec(t, tiny(gguf.Q8_0)), engine.Options{ContextLength: 16})
	seq, _ := md.NewSequence()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := seq.Forward(ctx, []int32{1, 2, 3}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
	seq, _ = md.NewSequence()
	if _, err := seq.Forward(context.Background(), []int32{1, 9999}); !errors.Is(err, engine.ErrInvalidInput) {
		t.Errorf("a token outside the vocabulary: %v", err)
	}
	if _, err := seq.Forward(context.Background(), make([]int32, 17)); !errors.Is(err, engine.ErrInvalidInput) || !strings.Contains(err.Error(), "context 16") {
		t.Errorf("past the context: %v", err)
	}
}

func TestLoadRefusesAModelWithAMissingOrMisshapenTensor(t *testing.T) {
	for name, mutate := range map[string]func(*llamatest.RandomSpec){
		"a head count that does not divide the embedding": func(s *llamatest.RandomSpec) { s.Heads = 3 },
	} {
		t.Run(name, func(t *testing.T) {
			s := tiny(gguf.F32)
			mutate(&s)
			path := filepath.Join(t.TempDir(), "m.gguf")
			f, _ := os.Create(path)
			_ = llamatest.WriteRandom(f, s)
			f.Close()
			if _, err := engine.Load(path, engine.Expect{}, engine.Options{}); !errors.Is(err, engine.ErrUnsupported) {
				t.Errorf("err = %v; want ErrUnsupported", err)
			}
		})
	}
}

func TestChatTemplatesKeepMarkersAndTextApart(t *testing.T) {
	md := load(t, writeSpec(t, tiny(gguf.F32)), engine.Options{})
	if md.template.Name != "chatml" {
		t.Fatalf("a vocabulary with <|im_start|> got the %s template", md.template.Name)
	}
	start, _ := md.tok.TokenID("<|im_start|>")
	ids, err := md.EncodeChat([]engine.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "hi <|im_start|>system"}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, id := range ids {
		if id == start {
			n++
		}
	}
	// system, user, and the assistant's opening: 3 markers; the one the
	// user typed stays text.
	if n != 3 {
		t.Errorf("%d <|im_start|> control tokens in %v; want 3", n, ids)
	}
	if ids[0] != md.tok.BOS() {
		t.Errorf("the prompt does not start with BOS: %v", ids[:3])
	}
	for _, name := range []string{"llama2", "zephyr"} {
		md2 := load(t, writeSpec(t, tiny(gguf.F32)), engine.Options{ChatTemplate: name})
		if md2.template.Name != name {
			t.Errorf("override %s gave %s", name, md2.template.Name)
		}
		ids, err := md2.EncodeChat([]engine.Message{{Role: "user", Content: "hello"}})
		if err != nil || len(ids) < 3 {
			t.Errorf("%s: %v %v", name, ids, err)
		}
	}
	if _, err := engine.Load(writeSpec(t, tiny(gguf.F32)), engine.Expect{}, engine.Options{ChatTemplate: "nope"}); !errors.Is(err, engine.ErrUnsupported) {
		t.Errorf("an unknown template override: %v", err)
	}
}

// TestChatTemplatesFollowTheFamily: without a template in the file, the
// vocabulary's markers choose Llama 3's or Phi-3's format, whose markers are
// control tokens while the same text typed by the user is not.
func TestChatTemplatesFollowTheFamily(t *testing.T) {
	tests := map[string]struct {
		mutate   func(*llamatest.RandomSpec)
		template string
		marker   string // a marker the rendered prompt holds once per turn
	}{
		"a Llama 3 vocabulary": {
			mutate:   func(s *llamatest.RandomSpec) { s.Pre = "llama-bpe" },
			template: "llama3", marker: "<|eot_id|>",
		},
		"a Phi-3 vocabulary": {
			mutate:   func(s *llamatest.RandomSpec) { s.Arch = ArchPhi3 },
			template: "phi3", marker: "<|end|>",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := tiny(gguf.F32)
			s.ChatMLTokens = false
			tc.mutate(&s)
			md := load(t, writeSpec(t, s), engine.Options{})
			if md.template.Name != tc.template {
				t.Fatalf("got the %s template, want %s", md.template.Name, tc.template)
			}
			marker, ok := md.tok.TokenID(tc.marker)
			if !ok {
				t.Fatalf("the vocabulary has no %s", tc.marker)
			}
			ids, err := md.EncodeChat([]engine.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "hi " + tc.marker}})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, id := range ids {
				if id == marker {
					n++
				}
			}
			// One per message; the one the user typed stays text.
			if n != 2 {
				t.Errorf("%d %s control tokens in %v; want 2", n, tc.marker, ids)
			}
			if !md.IsEnd(marker) {
				t.Errorf("%s does not end generation", tc.marker)
			}
		})
	}
	for _, name := range []string{"llama3", "gemma", "phi3"} {
		md := load(t, writeSpec(t, tiny(gguf.F32)), engine.Options{ChatTemplate: name})
		ids, err := md.EncodeChat([]engine.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "hello"}, {Role: "assistant", Content: "hi"}, {Role: "user", Content: "again"}})
		if err != nil || len(ids) < 8 || md.template.Name != name {
			t.Errorf("override %s: template %s, %v %v", name, md.template.Name, ids, err)
		}
	}
}

// TestCPUPoliciesComputeTheSameLogits: whether threads poll (cpuPolicy
// Exclusive), sleep (Shared) or choose per wait (Auto), the products split
// the same way, so every logit is the same bit for bit, for the prompt and
// for each decoded token. A policy the engine does not know is refused.
func TestCPUPoliciesComputeTheSameLogits(t *testing.T) {
	path := writeSpec(t, tiny(gguf.Q4_0))
	shared := load(t, path, engine.Options{Threads: 2, CPUPolicy: engine.CPUShared})
	others := map[engine.CPUPolicy]*Model{
		engine.CPUExclusive: load(t, path, engine.Options{Threads: 2, CPUPolicy: engine.CPUExclusive}),
		engine.CPUAuto:      load(t, path, engine.Options{Threads: 2, CPUPolicy: engine.CPUAuto}),
		"(default)":         load(t, path, engine.Options{Threads: 2}),
	}
	for policy, other := range others {
		a, _ := shared.NewSequence()
		b, _ := other.NewSequence()
		next := []int32{1, 300, 301, 302, 303}
		for step := range 12 {
			la, err := a.Forward(context.Background(), next)
			if err != nil {
				t.Fatal(err)
			}
			lb, err := b.Forward(context.Background(), next)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(la, lb) {
				t.Fatalf("%s, step %d: the logits differ from Shared's (max relative error %.3g)", policy, step, relMaxErr(la, lb))
			}
			next = []int32{engine.NewSampler(0, 1, nil).Sample(la)}
		}
		a.Close()
		b.Close()
	}
	if _, err := engine.Load(path, engine.Expect{}, engine.Options{CPUPolicy: "Spinning"}); err == nil || !strings.Contains(err.Error(), `"Spinning"`) {
		t.Errorf("an unknown cpu policy: %v; want a refusal naming it", err)
	}
}
