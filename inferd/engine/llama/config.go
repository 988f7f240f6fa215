// Package llama runs the llama family of transformer language models from
// GGUF files: llama (LLaMA, Llama 3.x with its rope_freqs, TinyLlama,
// SmolLM and SmolLM2), smollm3 (llama with every fourth layer unrotated),
// qwen2 (with attention biases), qwen3 (per-head RMSNorm of queries
// and keys), phi3 (fused QKV and gate/up matrices), gemma3 (scaled
// embeddings, norms after attention and feed-forward, GeGLU, interleaved
// sliding-window attention) and granite (its embedding, residual,
// attention and logit multipliers). The forward pass is RMSNorm, rotary
// position embeddings with the file's settings, grouped-query attention over
// a per-sequence KV cache, and a gated feed-forward block; weights stay in
// the file's memory map and are multiplied by the fused kernels of package
// kernels, in parallel over rows, a whole prompt at a time. Each
// architecture's graph follows llama.cpp's (src/models/<arch>.cpp), which
// the parity test checks logit by logit.
package llama

import (
	"fmt"
	"math"

	"github.com/slmops/slmops/inferd/engine"
)

// The architectures this package runs.
const (
	ArchLlama   = "llama"
	ArchQwen2   = "qwen2"
	ArchQwen3   = "qwen3"
	ArchPhi3    = "phi3"
	ArchGemma3  = "gemma3"
	ArchGranite = "granite"
	ArchSmolLM3 = "smollm3"
)

// Architectures lists the architectures this package runs.
var Architectures = []string{ArchLlama, ArchQwen2, ArchQwen3, ArchPhi3, ArchGemma3, ArchGranite, ArchSmolLM3}

// Config is the shape of a model, read from GGUF metadata.
type Config struct {
	Arch      string
	Embd      int // embedding length
	Layers    int
	Heads     int
	KVHeads   int
	HeadDim   int // per head; Heads x HeadDim need not be Embd (qwen3, gemma3)
	FF        int // feed-forward length
	Vocab     int
	Context   int
	RMSEps    float32
	RopeBase  float32
	RopeDim   int     // dimensions rotated per head
	RopeScale float32 // linear scaling: positions are divided by it
	RopeNeox  bool    // rotate (i, i+d/2) pairs instead of (2i, 2i+1)
	// RopeAttnFactor multiplies the rotated values (rope.scaling.attn_factor,
	// LongRoPE's magnitude correction); 1 when the file has none.
	RopeAttnFactor float32
	// RopeOrigContext is the context the model was trained at before
	// LongRoPE stretched it (rope.scaling.original_context_length): beyond
	// it the long factors apply, within it the short ones.
	RopeOrigContext int
	AttnBiases      bool
	// QKNorm: queries and keys are RMS-normalised per head (weights
	// attn_q_norm, attn_k_norm) before the rotation.
	QKNorm bool
	// PostNorms: the attention and feed-forward outputs are RMS-normalised
	// (post_attention_norm, post_ffw_norm) before they join the residual.
	PostNorms bool
	// GELU gates the feed-forward block with GELU (tanh form) instead of
	// SiLU.
	GELU bool
	// FusedGateUp: ffn_up holds the gate rows, then the up rows (phi3).
	FusedGateUp bool
	// EmbedScale multiplies the token embeddings, ResidualScale each
	// block's output before it joins the residual, LogitScale the logits; 1
	// when the architecture has none.
	EmbedScale, ResidualScale, LogitScale float32
	// AttnScale multiplies the query-key products: 1/sqrt(HeadDim) unless
	// the file says otherwise.
	AttnScale float32
	// SoftCap, when positive, caps the logits at ±SoftCap with tanh.
	SoftCap float32
	// SlidingWindow, when positive, is how many positions (the query's own
	// included) a sliding-window layer attends to; SWAPattern says which
	// layers: all but every SWAPattern-th. Those layers rotate with
	// RopeBaseSWA and no scaling.
	SlidingWindow, SWAPattern int
	RopeBaseSWA               float32
	// NoRopeEvery, when positive, leaves every NoRopeEvery-th layer
	// without rotary embeddings (SmolLM3's NoPE layers: 4).
	NoRopeEvery int
}

// RopeLayer reports whether layer li rotates its queries and keys.
func (c Config) RopeLayer(li int) bool { return c.NoRopeEvery <= 0 || (li+1)%c.NoRopeEvery != 0 }

// QDim is the width of the queries and of the attention output.
func (c Config) QDim() int { return c.Heads * c.HeadDim }

// SlidingWindowLayer reports whether layer li attends to a sliding window
// (llama.cpp's set_swa_pattern: the last layer of each period of
// SWAPattern layers sees everything).
func (c Config) SlidingWindowLayer(li int) bool {
	return c.SlidingWindow > 0 && (c.SWAPattern == 0 || li%c.SWAPattern < c.SWAPattern-1)
}

// meta reads typed GGUF metadata.
type meta interface{ Get(string) (any, bool) }

func getUint(m meta, key string) (int, bool) {
	v, ok := m.Get(key)
	if !ok {
		return 0, false
	}
	switch n := v.(type) {
	case uint32:
		return int(n), true
	case int32:
		return int(n), true
	case uint64:
		return int(n), true
	case int64:
		return int(n), true
	case uint16:
		return int(n), true
	}
	return 0, false
}

func getFloat(m meta, key string) (float32, bool) {
	v, ok := m.Get(key)
	if !ok {
		return 0, false
	}
	switch f := v.(type) {
	case float32:
		return f, true
	case float64:
		return float32(f), true
	}
	return 0, false
}

// ReadConfig reads the model's shape from its metadata.
func ReadConfig(m meta, arch string) (Config, error) {
	c := Config{
		Arch: arch, RopeScale: 1, EmbedScale: 1, ResidualScale: 1, LogitScale: 1,
		RopeNeox:    arch == ArchQwen2 || arch == ArchQwen3 || arch == ArchPhi3 || arch == ArchGemma3,
		AttnBiases:  arch == ArchQwen2,
		QKNorm:      arch == ArchQwen3 || arch == ArchGemma3,
		PostNorms:   arch == ArchGemma3,
		GELU:        arch == ArchGemma3,
		FusedGateUp: arch == ArchPhi3,
	}
	required := map[string]*int{
		".embedding_length": &c.Embd, ".block_count": &c.Layers, ".feed_forward_length": &c.FF,
		".attention.head_count": &c.Heads, ".context_length": &c.Context,
	}
	for k, dst := range required {
		n, ok := getUint(m, arch+k)
		if !ok || n <= 0 {
			return c, fmt.Errorf("%w: %s%s is missing or not a positive integer", engine.ErrUnsupported, arch, k)
		}
		*dst = n
	}
	c.KVHeads = c.Heads
	if n, ok := getUint(m, arch+".attention.head_count_kv"); ok && n > 0 {
		c.KVHeads = n
	}
	if c.Heads%c.KVHeads != 0 {
		return c, fmt.Errorf("%w: %d heads do not divide into %d KV heads", engine.ErrUnsupported, c.Heads, c.KVHeads)
	}
	// The head size is embedding/heads unless the file says otherwise
	// (Qwen3 and Gemma 3 have wider queries than their embedding).
	if n, ok := getUint(m, arch+".attention.key_length"); ok && n > 0 {
		c.HeadDim = n
	} else if c.Embd%c.Heads == 0 {
		c.HeadDim = c.Embd / c.Heads
	} else {
		return c, fmt.Errorf("%w: %d heads of a %d embedding with %d KV heads do not divide", engine.ErrUnsupported, c.Heads, c.Embd, c.KVHeads)
	}
	if n, ok := getUint(m, arch+".attention.value_length"); ok && n != c.HeadDim {
		return c, fmt.Errorf("%w: attention.value_length %d differs from key_length %d", engine.ErrUnsupported, n, c.HeadDim)
	}
	c.RMSEps = 1e-5
	if f, ok := getFloat(m, arch+".attention.layer_norm_rms_epsilon"); ok && f > 0 {
		c.RMSEps = f
	}
	c.RopeBase = 10000
	if f, ok := getFloat(m, arch+".rope.freq_base"); ok && f > 0 {
		c.RopeBase = f
	}
	c.RopeDim = c.HeadDim
	if n, ok := getUint(m, arch+".rope.dimension_count"); ok && n > 0 && n <= c.HeadDim && n%2 == 0 {
		c.RopeDim = n
	}
	c.RopeAttnFactor = 1
	if f, ok := getFloat(m, arch+".rope.scaling.attn_factor"); ok && f > 0 {
		c.RopeAttnFactor = f
	}
	c.RopeOrigContext = c.Context
	if n, ok := getUint(m, arch+".rope.scaling.original_context_length"); ok && n > 0 {
		c.RopeOrigContext = n
	}
	if v, ok := m.Get(arch + ".rope.scaling.type"); ok {
		switch v {
		case "none":
		case "linear":
			if f, ok := getFloat(m, arch+".rope.scaling.factor"); ok && f > 0 {
				c.RopeScale = f
			}
		default:
			return c, fmt.Errorf("%w: rope scaling %v (none and linear are supported)", engine.ErrUnsupported, v)
		}
	}
	c.AttnScale = float32(1 / math.Sqrt(float64(c.HeadDim)))
	if f, ok := getFloat(m, arch+".final_logit_softcapping"); ok && f > 0 {
		c.SoftCap = f
	}
	switch arch {
	case ArchGemma3:
		c.EmbedScale = float32(math.Sqrt(float64(c.Embd)))
		if c.Layers == 62 { // 27B: llama.cpp and gemma_pytorch scale by embedding/heads
			c.AttnScale = float32(1 / math.Sqrt(float64(c.Embd/c.Heads)))
		}
		if n, ok := getUint(m, arch+".attention.sliding_window"); ok && n > 0 {
			c.SlidingWindow, c.SWAPattern, c.RopeBaseSWA = n, 6, 10000
			if p, ok := getUint(m, arch+".attention.sliding_window_pattern"); ok {
				c.SWAPattern = p
			}
			if f, ok := getFloat(m, arch+".rope.freq_base_swa"); ok && f > 0 {
				c.RopeBaseSWA = f
			}
		}
	case ArchSmolLM3:
		c.NoRopeEvery = 4 // llama.cpp's n_no_rope_layer_step; not in the file
	case ArchGranite:
		f, ok := getFloat(m, arch+".logit_scale")
		if !ok || f == 0 {
			return c, fmt.Errorf("%w: %s.logit_scale is missing or zero", engine.ErrUnsupported, arch)
		}
		c.LogitScale = 1 / f
		if f, ok := getFloat(m, arch+".embedding_scale"); ok && f != 0 {
			c.EmbedScale = f
		}
		if f, ok := getFloat(m, arch+".residual_scale"); ok && f != 0 {
			c.ResidualScale = f
		}
		if f, ok := getFloat(m, arch+".attention.scale"); ok && f != 0 {
			c.AttnScale = f
		}
		if v, ok := m.Get(arch + ".rope.scaling.finetuned"); ok && v == false {
			return c, fmt.Errorf("%w: granite without rotary embeddings (rope.scaling.finetuned false)", engine.ErrUnsupported)
		}
	}
	return c, nil
}

// Parameters is the number of weights a model of this shape has.
func (c Config) Parameters(tiedOutput bool) uint64 {
	kv := c.KVHeads * c.HeadDim
	perLayer := uint64(c.Embd)*uint64(c.QDim())*2 + uint64(c.Embd)*uint64(kv)*2 + uint64(c.Embd)*uint64(c.FF)*3 + uint64(2*c.Embd)
	n := uint64(c.Layers)*perLayer + uint64(c.Vocab)*uint64(c.Embd) + uint64(c.Embd)
	if !tiedOutput {
		n += uint64(c.Vocab) * uint64(c.Embd)
	}
	return n
}
