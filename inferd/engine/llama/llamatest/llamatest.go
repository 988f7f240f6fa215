// Package llamatest writes llama-family models with random weights in
// llama.cpp's layout, for the engine's tests, the parity test against
// llama.cpp and the benchmark programs under hack/. It depends only on the
// GGUF writer and the kernels' quantizers, not on package llama, so that
// package's own tests can use it too.
package llamatest

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/slmops/slmops/inferd/engine/kernels"
	"github.com/slmops/slmops/inferd/engine/tokenizer"
	"github.com/slmops/slmops/inferd/gguf"
)

// RandomSpec describes a llama-family model with random weights, for tests
// and benchmarks: the shape of a real one, the speed of a real one, none of
// its knowledge. The tensors and metadata are laid out as llama.cpp's
// converter writes each architecture.
type RandomSpec struct {
	Name string
	// Arch is general.architecture: llama (default), qwen2, qwen3 (query
	// and key norms), phi3 (fused attn_qkv and gate/up in ffn_up), gemma3
	// (query and key norms, post-norms, tied embeddings, sliding windows)
	// granite (its four multipliers) or smollm3 (llama's tensors; llama.cpp
	// leaves every fourth layer unrotated).
	Arch    string
	Embd    int
	Layers  int
	Heads   int
	KVHeads int
	// HeadDim, when set, is the size of a head (attention.key_length),
	// which then need not be Embd/Heads.
	HeadDim int
	FF      int
	Vocab   int
	Context int
	// Type of the weight matrices: any type that kernels.Quantize writes.
	// A K-quant matrix whose rows are not a whole number of 256 values is
	// written in the type llama-quantize falls back to (see fallbackType).
	Type gguf.TensorType
	// Mix, when set, is a llama.cpp K-quant mixture (Q2_K, Q3_K_M, Q4_K_S,
	// Q4_K_M or Q5_K_M) in place of Type: its main type, and the tensors it
	// keeps in other types, roughly as llama-quantize chooses them for a
	// dense model (see mixType).
	Mix string
	// Q4KM is Mix "Q4_K_M".
	Q4KM bool
	// Tied shares the output matrix with the token embeddings.
	Tied bool
	// Scale is the weights' amplitude (uniform in [-Scale, Scale]); 0.05
	// when 0.
	Scale float32
	Seed  uint64
	// ChatMLTokens adds <|im_start|> and <|im_end|> control tokens.
	ChatMLTokens bool
	// ChatTemplate, when set, is the file's tokenizer.chat_template.
	ChatTemplate string
	// Pre, when set, makes the vocabulary byte-level BPE (tokenizer.ggml.model
	// gpt2) with this tokenizer.ggml.pre, Llama 3's special tokens and
	// merges, in place of the SentencePiece one.
	Pre string
	// RopeFreqs adds Llama 3.1's rope_freqs.weight: its long-context
	// factors (8, 1, 4, 8192), as the converter computes them.
	RopeFreqs bool
	// SlidingWindow, for gemma3, is attention.sliding_window; the layers
	// follow llama.cpp's default pattern (five sliding, one global).
	SlidingWindow int
	// RopeDim, when set, rotates only that many values of each head
	// (rope.dimension_count), as Phi-4-mini does with 96 of 128.
	RopeDim int
	// LongRoPE, when set, is the original context of a LongRoPE model
	// (Phi-3.5, Phi-4-mini): the converter's rope_factors_long and
	// rope_factors_short, rope.scaling.original_context_length and the
	// attn_factor it derives from the two contexts.
	LongRoPE int
}

// Edge is a small llama model of the given layers (more layers, slower
// decoding, the rest alike) with ChatML's control tokens: what the demo's
// model store serves and the e2e tests run as real serving pods.
func Edge(name string, layers int, t gguf.TensorType, seed uint64) RandomSpec {
	return RandomSpec{Name: name, Embd: 256, Layers: layers, Heads: 4, KVHeads: 2, FF: 512, Vocab: 512, Context: 256,
		Type: t, Seed: seed, ChatMLTokens: true}
}

// TinyLlama is the shape of TinyLlama 1.1B, for benchmarks.
func TinyLlama(t gguf.TensorType) RandomSpec {
	return RandomSpec{Name: "tinyllama-1.1b-random", Embd: 2048, Layers: 22, Heads: 32, KVHeads: 4, FF: 5632, Vocab: 32000, Context: 2048, Type: t, Scale: 0.035, Seed: 1}
}

// Qwen3_06B is the shape of Qwen3-0.6B, for benchmarks: heads of 128 over a
// 1,024-wide embedding, query and key norms, tied embeddings, a 151,936-token
// vocabulary.
func Qwen3_06B(t gguf.TensorType) RandomSpec {
	return RandomSpec{Name: "qwen3-0.6b-random", Arch: "qwen3", Embd: 1024, Layers: 28, Heads: 16, KVHeads: 8, HeadDim: 128, FF: 3072,
		Vocab: 151936, Context: 2048, Type: t, Tied: true, Scale: 0.035, Seed: 1}
}

// SmolLM2_135M is the shape of SmolLM2-135M, for benchmarks: 30 layers of a
// 576-wide embedding (not a whole number of 256-value blocks, so a K-quant
// mix falls back in most tensors), tied embeddings, a 49,152-token
// vocabulary.
func SmolLM2_135M(t gguf.TensorType) RandomSpec {
	return RandomSpec{Name: "smollm2-135m-random", Embd: 576, Layers: 30, Heads: 9, KVHeads: 3, FF: 1536,
		Vocab: 49152, Context: 2048, Type: t, Tied: true, Scale: 0.035, Seed: 1}
}

// WriteRandom writes a GGUF file of the spec; tensors are made one at a
// time while writing, so a 1B model never sits in memory whole.
func WriteRandom(w io.Writer, s RandomSpec) error {
	if s.Arch == "" {
		s.Arch = "llama"
	}
	if s.Scale == 0 {
		s.Scale = 0.05
	}
	if s.Name == "" {
		s.Name = "random-" + s.Arch
	}
	a := s.Arch
	var tokens, scores, types, merges []any
	if s.Pre != "" {
		tokens, types, merges = randomBPEVocab(s.Vocab)
	} else {
		var specials []string
		if s.ChatMLTokens {
			specials = append(specials, "<|im_start|>", "<|im_end|>")
		}
		if a == "phi3" {
			// llama.cpp looks these up in a Phi-3 vocabulary by name.
			specials = append(specials, "<|endoftext|>", "<|assistant|>", "<|end|>", "<|system|>", "<|user|>")
		}
		tokens, scores, types = randomVocab(s.Vocab, specials)
	}
	if s.Q4KM {
		s.Mix = "Q4_K_M"
	}
	fileType := s.Type.String()
	switch s.Type {
	case gguf.Q3_K, gguf.Q4_K, gguf.Q5_K: // llama.cpp's names for all-Q3_K, -Q4_K, -Q5_K
		fileType += "_S"
	}
	if s.Mix != "" {
		if !slices.Contains(mixes, s.Mix) {
			return fmt.Errorf("no mixture %s: use one of %v", s.Mix, mixes)
		}
		fileType = s.Mix
	}
	ft, ok := gguf.FileTypeOf(fileType)
	if !ok {
		return fmt.Errorf("no general.file_type for %s", fileType)
	}
	meta := []gguf.KV{
		{Key: "general.architecture", Type: gguf.TypeString, Value: a},
		{Key: "general.name", Type: gguf.TypeString, Value: s.Name},
		{Key: "general.file_type", Type: gguf.TypeUint32, Value: ft},
		{Key: a + ".context_length", Type: gguf.TypeUint32, Value: uint32(s.Context)},
		{Key: a + ".embedding_length", Type: gguf.TypeUint32, Value: uint32(s.Embd)},
		{Key: a + ".block_count", Type: gguf.TypeUint32, Value: uint32(s.Layers)},
		{Key: a + ".feed_forward_length", Type: gguf.TypeUint32, Value: uint32(s.FF)},
		{Key: a + ".attention.head_count", Type: gguf.TypeUint32, Value: uint32(s.Heads)},
		{Key: a + ".attention.head_count_kv", Type: gguf.TypeUint32, Value: uint32(s.KVHeads)},
		{Key: a + ".attention.layer_norm_rms_epsilon", Type: gguf.TypeFloat32, Value: float32(1e-5)},
		{Key: a + ".rope.freq_base", Type: gguf.TypeFloat32, Value: float32(10000)},
	}
	if s.Pre != "" {
		meta = append(meta,
			gguf.KV{Key: "tokenizer.ggml.model", Type: gguf.TypeString, Value: "gpt2"},
			gguf.KV{Key: "tokenizer.ggml.pre", Type: gguf.TypeString, Value: s.Pre},
			gguf.KV{Key: "tokenizer.ggml.tokens", Type: gguf.TypeArray, Value: gguf.Array{Type: gguf.TypeString, Values: tokens}},
			gguf.KV{Key: "tokenizer.ggml.token_type", Type: gguf.TypeArray, Value: gguf.Array{Type: gguf.TypeInt32, Values: types}},
			gguf.KV{Key: "tokenizer.ggml.merges", Type: gguf.TypeArray, Value: gguf.Array{Type: gguf.TypeString, Values: merges}},
			gguf.KV{Key: "tokenizer.ggml.bos_token_id", Type: gguf.TypeUint32, Value: uint32(256)},
			gguf.KV{Key: "tokenizer.ggml.eos_token_id", Type: gguf.TypeUint32, Value: uint32(257)},
		)
	} else {
		meta = append(meta,
			gguf.KV{Key: "tokenizer.ggml.model", Type: gguf.TypeString, Value: "llama"},
			gguf.KV{Key: "tokenizer.ggml.tokens", Type: gguf.TypeArray, Value: gguf.Array{Type: gguf.TypeString, Values: tokens}},
			gguf.KV{Key: "tokenizer.ggml.scores", Type: gguf.TypeArray, Value: gguf.Array{Type: gguf.TypeFloat32, Values: scores}},
			gguf.KV{Key: "tokenizer.ggml.token_type", Type: gguf.TypeArray, Value: gguf.Array{Type: gguf.TypeInt32, Values: types}},
			gguf.KV{Key: "tokenizer.ggml.bos_token_id", Type: gguf.TypeUint32, Value: uint32(1)},
			gguf.KV{Key: "tokenizer.ggml.eos_token_id", Type: gguf.TypeUint32, Value: uint32(2)},
			gguf.KV{Key: "tokenizer.ggml.unknown_token_id", Type: gguf.TypeUint32, Value: uint32(0)},
		)
	}
	headDim := s.Embd / s.Heads
	if s.ChatTemplate != "" {
		meta = append(meta, gguf.KV{Key: "tokenizer.chat_template", Type: gguf.TypeString, Value: s.ChatTemplate})
	}
	if s.HeadDim != 0 {
		headDim = s.HeadDim
		meta = append(meta,
			gguf.KV{Key: a + ".attention.key_length", Type: gguf.TypeUint32, Value: uint32(headDim)},
			gguf.KV{Key: a + ".attention.value_length", Type: gguf.TypeUint32, Value: uint32(headDim)})
	}
	switch a {
	case "gemma3":
		// The converter's SentencePiece Gemma vocabulary has no space prefix.
		meta = append(meta, gguf.KV{Key: "tokenizer.ggml.add_space_prefix", Type: gguf.TypeBool, Value: false})
		if s.SlidingWindow > 0 {
			meta = append(meta, gguf.KV{Key: a + ".attention.sliding_window", Type: gguf.TypeUint32, Value: uint32(s.SlidingWindow)})
		}
	case "phi3":
		if s.LongRoPE > 0 {
			attnFactor := 1.0
			if scale := float64(s.Context) / float64(s.LongRoPE); scale > 1 {
				attnFactor = math.Sqrt(1 + math.Log(scale)/math.Log(float64(s.LongRoPE)))
			}
			meta = append(meta,
				gguf.KV{Key: a + ".rope.scaling.original_context_length", Type: gguf.TypeUint32, Value: uint32(s.LongRoPE)},
				gguf.KV{Key: a + ".rope.scaling.attn_factor", Type: gguf.TypeFloat32, Value: float32(attnFactor)})
		}
	case "granite":
		// Granite 3.x's multipliers.
		meta = append(meta,
			gguf.KV{Key: a + ".embedding_scale", Type: gguf.TypeFloat32, Value: float32(12)},
			gguf.KV{Key: a + ".residual_scale", Type: gguf.TypeFloat32, Value: float32(0.22)},
			gguf.KV{Key: a + ".attention.scale", Type: gguf.TypeFloat32, Value: float32(0.015625)},
			gguf.KV{Key: a + ".logit_scale", Type: gguf.TypeFloat32, Value: float32(8)})
	}
	seed := s.Seed
	matrix := func(name string, rows, cols int, t gguf.TensorType) gguf.Tensor {
		t = fallbackType(t, cols, name == "output.weight")
		seed++
		mySeed := seed
		return gguf.Tensor{Name: name, Dims: []uint64{uint64(cols), uint64(rows)}, Type: t, Fill: func() ([]byte, error) {
			return randomTensor(rows*cols, t, s.Scale, mySeed, 0)
		}}
	}
	vector := func(name string, n int, center float32) gguf.Tensor {
		seed++
		mySeed := seed
		return gguf.Tensor{Name: name, Dims: []uint64{uint64(n)}, Type: gguf.F32, Fill: func() ([]byte, error) {
			return randomTensor(n, gguf.F32, 0.1, mySeed, center)
		}}
	}
	typeFor := func(kind string, layer int) gguf.TensorType {
		if s.Mix == "" {
			return s.Type
		}
		return mixType(s.Mix, kind, layer, s.Layers, s.Heads/s.KVHeads)
	}
	kv := s.KVHeads * headDim
	qdim := s.Heads * headDim
	tensors := []gguf.Tensor{
		matrix("token_embd.weight", s.Vocab, s.Embd, typeFor("embd", 0)),
		vector("output_norm.weight", s.Embd, 1),
	}
	if !s.Tied && a != "gemma3" { // Gemma ties its output to the embeddings
		tensors = append(tensors, matrix("output.weight", s.Vocab, s.Embd, typeFor("output", 0)))
	}
	ropeDim := headDim
	if s.RopeDim != 0 {
		ropeDim = s.RopeDim
		meta = append(meta, gguf.KV{Key: a + ".rope.dimension_count", Type: gguf.TypeUint32, Value: uint32(ropeDim)})
	}
	if s.RopeFreqs {
		tensors = append(tensors, gguf.Tensor{Name: "rope_freqs.weight", Dims: []uint64{uint64(ropeDim / 2)}, Type: gguf.F32, Fill: func() ([]byte, error) {
			return kernels.Quantize(nil, gguf.F32, llama3RopeFactors(10000, ropeDim))
		}})
	}
	if s.LongRoPE > 0 {
		// Factors of the shape Phi-3.5's have: 1 to about 1.5 for the
		// short context, 1 to about 40 for the long one, growing with
		// the wavelength.
		for _, f := range []struct {
			name string
			top  float64
		}{{"rope_factors_long.weight", 40}, {"rope_factors_short.weight", 1.5}} {
			factors := make([]float32, ropeDim/2)
			for i := range factors {
				factors[i] = float32(1 + (f.top-1)*float64(i)/float64(len(factors)-1))
			}
			tensors = append(tensors, gguf.Tensor{Name: f.name, Dims: []uint64{uint64(len(factors))}, Type: gguf.F32, Fill: func() ([]byte, error) {
				return kernels.Quantize(nil, gguf.F32, factors)
			}})
		}
	}
	for i := range s.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		tensors = append(tensors, vector(p+"attn_norm.weight", s.Embd, 1))
		if a == "phi3" {
			tensors = append(tensors, matrix(p+"attn_qkv.weight", qdim+2*kv, s.Embd, typeFor("attn_qkv", i)))
		} else {
			tensors = append(tensors,
				matrix(p+"attn_q.weight", qdim, s.Embd, typeFor("attn_q", i)),
				matrix(p+"attn_k.weight", kv, s.Embd, typeFor("attn_k", i)),
				matrix(p+"attn_v.weight", kv, s.Embd, typeFor("attn_v", i)))
		}
		tensors = append(tensors,
			matrix(p+"attn_output.weight", s.Embd, qdim, typeFor("attn_output", i)),
			vector(p+"ffn_norm.weight", s.Embd, 1))
		if a == "phi3" {
			tensors = append(tensors, matrix(p+"ffn_up.weight", 2*s.FF, s.Embd, typeFor("ffn_up", i)))
		} else {
			tensors = append(tensors,
				matrix(p+"ffn_gate.weight", s.FF, s.Embd, typeFor("ffn_gate", i)),
				matrix(p+"ffn_up.weight", s.FF, s.Embd, typeFor("ffn_up", i)))
		}
		tensors = append(tensors, matrix(p+"ffn_down.weight", s.Embd, s.FF, typeFor("ffn_down", i)))
		switch a {
		case "qwen2":
			tensors = append(tensors,
				vector(p+"attn_q.bias", qdim, 0), vector(p+"attn_k.bias", kv, 0), vector(p+"attn_v.bias", kv, 0))
		case "qwen3":
			tensors = append(tensors, vector(p+"attn_q_norm.weight", headDim, 1), vector(p+"attn_k_norm.weight", headDim, 1))
		case "gemma3":
			// Gemma's norms are 1 + w; the converter stores them so.
			tensors = append(tensors,
				vector(p+"attn_q_norm.weight", headDim, 1), vector(p+"attn_k_norm.weight", headDim, 1),
				vector(p+"post_attention_norm.weight", s.Embd, 1), vector(p+"post_ffw_norm.weight", s.Embd, 1))
		}
	}
	return gguf.Write(w, meta, tensors)
}

// llama3RopeFactors are the rope_freqs.weight values llama.cpp's converter
// writes for Llama 3.1's "llama3" RoPE scaling (factor 8, low and high
// frequency factors 1 and 4, original context 8192): 1 for short
// wavelengths, 8 for long ones, a smooth blend between.
func llama3RopeFactors(base float64, dim int) []float32 {
	const factor, low, high, context = 8.0, 1.0, 4.0, 8192.0
	out := make([]float32, dim/2)
	for i := range out {
		freq := 1 / math.Pow(base, float64(2*i)/float64(dim))
		wavelen := 2 * math.Pi / freq
		switch {
		case wavelen < context/high:
			out[i] = 1
		case wavelen > context/low:
			out[i] = factor
		default:
			smooth := (context/wavelen - low) / (high - low)
			out[i] = float32(1 / ((1-smooth)/factor + smooth))
		}
	}
	return out
}

// randomBPEVocab is a byte-level BPE vocabulary in Llama 3's manner: the
// 256 byte characters of GPT-2's alphabet in byte order, Llama 3's
// begin/end-of-text and chat markers as control tokens, then tokens made
// by merges (a space or a letter followed by letters, and numbers of up
// to three digits), until n tokens; a merge's rank is the order it was
// made in.
func randomBPEVocab(n int) (tokens, types, merges []any) {
	enc := tokenizer.ByteAlphabet()
	seen := map[string]bool{}
	add := func(tok string, typ int32) {
		seen[tok] = true
		tokens = append(tokens, tok)
		types = append(types, typ)
	}
	for b := range 256 {
		add(string(enc[b]), 1)
	}
	for _, special := range []string{"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"} {
		add(special, 3)
	}
	merge := func(left, right string) {
		if len(tokens) < n && !seen[left+right] {
			add(left+right, 1)
			merges = append(merges, left+" "+right)
		}
	}
	space := string(enc[' '])
	letters := "etaoinshrdlucmfwypvbgkjqxz"
	digits := "0123456789"
	var words []string
	for _, c := range letters {
		merge(space, string(c))
		words = append(words, space+string(c))
	}
	for _, a := range letters {
		for _, b := range letters {
			merge(string(a), string(b))
			words = append(words, string(a)+string(b))
		}
	}
	for _, a := range digits {
		for _, b := range digits {
			merge(string(a), string(b))
		}
	}
	for _, a := range digits {
		for _, b := range digits[:5] {
			for _, c := range digits[:5] {
				merge(string(a)+string(b), string(c))
			}
		}
	}
	for len(tokens) < n {
		var next []string
		for _, w := range words {
			for _, c := range letters {
				merge(w, string(c))
				next = append(next, w+string(c))
				if len(tokens) >= n {
					break
				}
			}
		}
		words = next
	}
	return tokens, types, merges
}

// mixes are the mixtures that mixType knows.
var mixes = []string{"Q2_K", "Q3_K_M", "Q4_K_S", "Q4_K_M", "Q5_K_M"}

// mixType is the type of a kind of matrix (embd, output, attn_q, attn_v,
// ffn_down...) in layer of n in a llama.cpp mixture, after
// llama_tensor_get_type in llama-quant.cpp for a dense model without an
// importance matrix; "half of the layers" stands for its use_more_bits.
func mixType(mix, kind string, layer, n, gqa int) gguf.TensorType {
	more := layer%2 == 0
	if kind == "output" {
		return gguf.Q6_K
	}
	switch mix {
	case "Q2_K":
		switch {
		case kind == "attn_v" && gqa >= 4:
			return gguf.Q4_K
		case kind == "attn_v" || kind == "ffn_down" || kind == "attn_output":
			return gguf.Q3_K
		}
		return gguf.Q2_K
	case "Q3_K_M":
		switch {
		case kind == "attn_v" && layer < 2, kind == "ffn_down" && layer < n/16:
			return gguf.Q5_K
		case kind == "attn_v" || kind == "ffn_down" || kind == "attn_output":
			return gguf.Q4_K
		}
		return gguf.Q3_K
	case "Q4_K_S":
		if kind == "attn_v" && layer < 4 || kind == "ffn_down" && layer < max(1, n/8) {
			return gguf.Q5_K
		}
		return gguf.Q4_K
	case "Q4_K_M", "Q5_K_M":
		if (kind == "attn_v" || kind == "ffn_down") && more {
			return gguf.Q6_K
		}
		if mix == "Q5_K_M" {
			return gguf.Q5_K
		}
		return gguf.Q4_K
	}
	panic("llamatest: no mixture " + mix)
}

// fallbackType is the type llama-quantize writes a matrix of rows of cols
// values in when t cannot hold them (tensor_type_fallback in
// llama-quant.cpp): a 32-value block type for the K-quants, Q8_0 for the
// output matrix, F16 when not even 32-value blocks fit.
func fallbackType(t gguf.TensorType, cols int, output bool) gguf.TensorType {
	if _, err := t.Bytes(uint64(cols)); err == nil {
		return t
	}
	switch {
	case cols%kernels.QK8_0 != 0:
		return gguf.F16
	case output:
		return gguf.Q8_0
	}
	switch t {
	case gguf.Q2_K, gguf.Q3_K:
		return gguf.Q4_0
	case gguf.Q4_K:
		return gguf.Q5_0
	case gguf.Q5_K:
		return gguf.Q5_1
	}
	return gguf.Q8_0
}

// randomTensor makes n uniform values in center ± scale, encoded as t.
func randomTensor(n int, t gguf.TensorType, scale float32, seed uint64, center float32) ([]byte, error) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	x := make([]float32, n)
	for i := range x {
		x[i] = center + scale*(2*float32(r.Uint32()>>8)/(1<<24)-1)
	}
	size, err := t.Bytes(uint64(n))
	if err != nil {
		return nil, err
	}
	return kernels.Quantize(make([]byte, 0, size), t, x)
}

// randomVocab is a SentencePiece-style vocabulary: <unk>, <s>, </s>, the
// 256 byte tokens, the specials as control tokens, then pieces (printable ASCII
// characters and lowercase strings, each bare and with the "▁" word
// prefix) until n tokens, longer pieces scoring higher so that merges
// prefer them.
func randomVocab(n int, specials []string) (tokens, scores, types []any) {
	add := func(tok string, score float32, typ int32) {
		tokens = append(tokens, tok)
		scores = append(scores, score)
		types = append(types, typ)
	}
	add("<unk>", 0, 2)
	add("<s>", 0, 3)
	add("</s>", 0, 3)
	for b := range 256 {
		add(fmt.Sprintf("<0x%02X>", b), 0, 6)
	}
	for _, special := range specials {
		add(special, 0, 3)
	}
	seen := map[string]bool{}
	piece := func(p string) {
		if len(tokens) < n && !seen[p] {
			seen[p] = true
			add(p, float32(-len(tokens))/float32(n)+float32(len(p)), 1)
		}
	}
	piece("▁")
	for c := byte(33); c < 127; c++ {
		piece(string(c))
		piece("▁" + string(c))
	}
	letters := "etaoinshrdlucmfwypvbgkjqxz"
	var words []string
	for _, c := range letters {
		words = append(words, string(c))
	}
	for len(tokens) < n {
		var next []string
		for _, w := range words {
			for _, c := range letters {
				next = append(next, w+string(c))
			}
		}
		for _, w := range next {
			piece(w)
			piece("▁" + w)
			if len(tokens) >= n {
				break
			}
		}
		words = next
	}
	return tokens, scores, types
}
