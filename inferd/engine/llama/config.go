// Package llama runs the llama family of transformer language models from
// GGUF files: llama (LLaMA, TinyLlama, SmolLM) and qwen2 (with attention
// biases). The forward pass is RMSNorm, rotary position embeddings with the
// file's settings, grouped-query attention over a per-sequence KV cache, and
// a SwiGLU feed-forward block; weights stay in the file's memory map and
// are multiplied by the fused kernels of package kernels, in parallel over
// rows, a whole prompt at a time.
package llama

import (
	"fmt"

	"github.com/slmops/slmops/inferd/engine"
)

// The architectures this package runs.
const (
	ArchLlama = "llama"
	ArchQwen2 = "qwen2"
)

// Config is the shape of a model, read from GGUF metadata.
type Config struct {
	Arch       string
	Embd       int // embedding length
	Layers     int
	Heads      int
	KVHeads    int
	HeadDim    int
	FF         int // feed-forward length
	Vocab      int
	Context    int
	RMSEps     float32
	RopeBase   float32
	RopeDim    int     // dimensions rotated per head
	RopeScale  float32 // linear scaling: positions are divided by it
	RopeNeox   bool    // rotate (i, i+d/2) pairs instead of (2i, 2i+1)
	AttnBiases bool
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
	c := Config{Arch: arch, RopeScale: 1, RopeNeox: arch == ArchQwen2, AttnBiases: arch == ArchQwen2}
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
	if c.Embd%c.Heads != 0 || c.Heads%c.KVHeads != 0 {
		return c, fmt.Errorf("%w: %d heads of a %d embedding with %d KV heads do not divide", engine.ErrUnsupported, c.Heads, c.Embd, c.KVHeads)
	}
	c.HeadDim = c.Embd / c.Heads
	if n, ok := getUint(m, arch+".attention.key_length"); ok && n != c.HeadDim {
		return c, fmt.Errorf("%w: attention.key_length %d differs from embedding/heads %d", engine.ErrUnsupported, n, c.HeadDim)
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
	return c, nil
}

// Parameters is the number of weights a model of this shape has.
func (c Config) Parameters(tiedOutput bool) uint64 {
	kv := c.KVHeads * c.HeadDim
	perLayer := uint64(c.Embd)*uint64(c.Embd)*2 + uint64(c.Embd)*uint64(kv)*2 + uint64(c.Embd)*uint64(c.FF)*3 + uint64(2*c.Embd)
	n := uint64(c.Layers)*perLayer + uint64(c.Vocab)*uint64(c.Embd) + uint64(c.Embd)
	if !tiedOutput {
		n += uint64(c.Vocab) * uint64(c.Embd)
	}
	return n
}
