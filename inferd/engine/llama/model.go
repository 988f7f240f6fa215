package llama

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/engine/kernels"
	"github.com/slmops/slmops/inferd/engine/tokenizer"
	"github.com/slmops/slmops/inferd/gguf"
)

func init() {
	for _, arch := range Architectures {
		engine.Register(arch, Load)
	}
}

// prefillChunk bounds how many prompt tokens go through the layers at once:
// enough to read each weight row once for many tokens, few enough that the
// activations stay small.
const prefillChunk = 64

// weight is a matrix in the mapping: rows of cols values.
type weight struct {
	kernels.TypeInfo
	data       []byte
	rows, cols int
}

// slice is the rows [lo, hi) of w: one part of a fused matrix (phi3's
// attn_qkv and ffn_up), which the kernels then treat as a matrix of its own.
func (w weight) slice(lo, hi int) weight {
	w.data = w.data[lo*w.RowBytes : hi*w.RowBytes]
	w.rows = hi - lo
	return w
}

// formats is what the activation of a product with a, b and c must hold:
// each weight type reads its own quantized copy (llama.cpp's Q8_0 for the
// 32-value block types, Q8_K for the K-quants), and making only those
// saves a pass over the activation per copy.
func formats(a, b, c weight) kernels.Formats {
	return kernels.FormatOf(a.Type) | kernels.FormatOf(b.Type) | kernels.FormatOf(c.Type)
}

// job is a product of w with acts into out.
func (w weight) job(acts []*kernels.Act, out [][]float32) kernels.Job {
	return kernels.Job{Type: w.TypeInfo, W: w.data, Rows: w.rows, Acts: acts, Out: out}
}

type layer struct {
	attnNorm, ffnNorm []float32
	wq, wk, wv, wo    weight
	bq, bk, bv        []float32
	qNorm, kNorm      []float32 // per head (Config.QKNorm)
	attnPost, ffnPost []float32 // Config.PostNorms
	gate, up, down    weight
}

// Model is a loaded llama-family model.
type Model struct {
	cfg      Config
	embd     weight
	outNorm  []float32
	output   weight
	layers   []layer
	tok      *tokenizer.Tokenizer
	template Template
	pool     *kernels.Pool
	info     engine.Info
	// ropeFreq are the rotation angles' progression (with the file's
	// rope_freqs factors, Llama 3's long-context scaling), ropeSWA
	// those of sliding-window layers (Config.RopeBaseSWA).
	ropeFreq, ropeSWA *ropeTheta
}

// ropeTheta is how the rotation angles of a position follow from each
// other, as ggml computes them (ggml_rope_cache_init): pair 0's angle is
// the position, each next pair's the previous one's times scale =
// base^(-2/dim) in float32, divided by the pair's factor where there are
// factors, times freqScale (1/the linear scaling).
type ropeTheta struct {
	scale, freqScale float32
	factors          []float32 // nil: all 1
	pairs            int
}

// Load builds a Model over a mapped GGUF file.
func Load(m *gguf.Mapped, opts engine.Options) (engine.Engine, error) {
	arch := m.Architecture()
	cfg, err := ReadConfig(m, arch)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.FromGGUF(m)
	if err != nil {
		return nil, fmt.Errorf("%w: tokenizer: %w", engine.ErrUnsupported, err)
	}
	cfg.Vocab = tok.VocabSize()
	if opts.ContextLength > 0 {
		cfg.Context = min(cfg.Context, opts.ContextLength)
	}
	md := &Model{cfg: cfg, tok: tok}
	l := loader{m: m}
	kv := cfg.KVHeads * cfg.HeadDim
	qdim := cfg.QDim()
	md.embd = l.matrix("token_embd.weight", cfg.Vocab, cfg.Embd)
	md.outNorm = l.vector("output_norm.weight", cfg.Embd)
	tied := true
	if _, _, ok := m.Tensor("output.weight"); ok {
		md.output, tied = l.matrix("output.weight", cfg.Vocab, cfg.Embd), false
	} else {
		md.output = md.embd // tied embeddings (SmolLM, some qwen2)
	}
	// block_count is a header number: stop at the first layer whose
	// tensors are not there, so that a huge count costs nothing.
	for i := 0; i < cfg.Layers && l.err == nil; i++ {
		p := fmt.Sprintf("blk.%d.", i)
		ly := layer{
			attnNorm: l.vector(p+"attn_norm.weight", cfg.Embd),
			wo:       l.matrix(p+"attn_output.weight", cfg.Embd, qdim),
			ffnNorm:  l.vector(p+"ffn_norm.weight", cfg.Embd),
			down:     l.matrix(p+"ffn_down.weight", cfg.Embd, cfg.FF),
		}
		// Any architecture may fuse Q, K and V into one matrix, as
		// llama.cpp's loader allows; phi3 files always do.
		if _, _, ok := m.Tensor(p + "attn_qkv.weight"); ok {
			qkv := l.matrix(p+"attn_qkv.weight", qdim+2*kv, cfg.Embd)
			if l.err == nil {
				ly.wq, ly.wk, ly.wv = qkv.slice(0, qdim), qkv.slice(qdim, qdim+kv), qkv.slice(qdim+kv, qdim+2*kv)
			}
		} else {
			ly.wq = l.matrix(p+"attn_q.weight", qdim, cfg.Embd)
			ly.wk = l.matrix(p+"attn_k.weight", kv, cfg.Embd)
			ly.wv = l.matrix(p+"attn_v.weight", kv, cfg.Embd)
		}
		if cfg.FusedGateUp {
			gateUp := l.matrix(p+"ffn_up.weight", 2*cfg.FF, cfg.Embd)
			if l.err == nil {
				ly.gate, ly.up = gateUp.slice(0, cfg.FF), gateUp.slice(cfg.FF, 2*cfg.FF)
			}
		} else {
			ly.gate = l.matrix(p+"ffn_gate.weight", cfg.FF, cfg.Embd)
			ly.up = l.matrix(p+"ffn_up.weight", cfg.FF, cfg.Embd)
		}
		if cfg.AttnBiases {
			ly.bq = l.vector(p+"attn_q.bias", qdim)
			ly.bk = l.vector(p+"attn_k.bias", kv)
			ly.bv = l.vector(p+"attn_v.bias", kv)
		}
		if cfg.QKNorm {
			ly.qNorm = l.vector(p+"attn_q_norm.weight", cfg.HeadDim)
			ly.kNorm = l.vector(p+"attn_k_norm.weight", cfg.HeadDim)
		}
		if cfg.PostNorms {
			ly.attnPost = l.vector(p+"post_attention_norm.weight", cfg.Embd)
			ly.ffnPost = l.vector(p+"post_ffw_norm.weight", cfg.Embd)
		}
		md.layers = append(md.layers, ly)
	}
	if l.err != nil {
		return nil, l.err
	}
	md.template, err = chooseTemplate(m, tok, opts.ChatTemplate)
	if err != nil {
		return nil, err
	}
	md.ropeFreq = newRopeTheta(cfg.RopeBase, cfg.RopeDim, 1/cfg.RopeScale)
	// Frequency factors divide the frequencies: Llama 3's rope_freqs, or
	// LongRoPE's (Phi-3.5, Phi-4-mini) long or short ones, chosen as
	// llama.cpp's get_rope_factors does, by whether the context in use
	// goes beyond the one the model was first trained at.
	factors := "rope_freqs.weight"
	if _, _, ok := m.Tensor(factors); !ok {
		factors = "rope_factors_short.weight"
		if cfg.Context > cfg.RopeOrigContext {
			factors = "rope_factors_long.weight"
		}
	}
	if _, _, ok := m.Tensor(factors); ok {
		f := l.vector(factors, cfg.RopeDim/2)
		if l.err != nil {
			return nil, l.err
		}
		md.ropeFreq.factors = f
	}
	if cfg.SlidingWindow > 0 {
		md.ropeSWA = newRopeTheta(cfg.RopeBaseSWA, cfg.RopeDim, 1)
	}
	switch opts.CPUPolicy {
	case engine.CPUExclusive:
		md.pool = kernels.NewSpinningPool(opts.Threads)
	case engine.CPUShared:
		md.pool = kernels.NewPool(opts.Threads)
	case engine.CPUAuto, "":
		md.pool = kernels.NewAdaptivePool(opts.Threads)
	default:
		return nil, fmt.Errorf("cpu policy %q is not %s, %s or %s", opts.CPUPolicy, engine.CPUAuto, engine.CPUShared, engine.CPUExclusive)
	}
	md.info = engine.Info{
		Architecture: arch, Engine: fmt.Sprintf("slmops llama (%d threads, %s kernels)", md.pool.Workers(), kernels.Accelerated()), Quantization: m.Quantization(),
		VocabSize: cfg.Vocab, ContextLength: cfg.Context, Parameters: cfg.Parameters(tied),
		ChatTemplate: md.template.Name, ChatTemplateFallback: md.template.Fallback,
	}
	return md, nil
}

// newRopeTheta is the angles' progression for base and the rotated width
// dim: scale is powf(base, -2/dim) as ggml computes it (the exponent
// rounded to float32 first).
func newRopeTheta(base float32, dim int, freqScale float32) *ropeTheta {
	e := float32(-2) / float32(dim)
	return &ropeTheta{scale: float32(math.Pow(float64(base), float64(e))), freqScale: freqScale, pairs: dim / 2}
}

// loader reads tensors, remembering the first problem.
type loader struct {
	m   *gguf.Mapped
	err error
}

func (l *loader) matrix(name string, rows, cols int) weight {
	if l.err != nil {
		return weight{}
	}
	info, data, ok := l.m.Tensor(name)
	if !ok {
		l.err = fmt.Errorf("%w: tensor %s is missing", engine.ErrUnsupported, name)
		return weight{}
	}
	if len(info.Dims) != 2 || info.Dims[0] != uint64(cols) || info.Dims[1] != uint64(rows) {
		l.err = fmt.Errorf("%w: tensor %s has shape %v, want [%d %d]", engine.ErrUnsupported, name, info.Dims, cols, rows)
		return weight{}
	}
	ti, err := kernels.RowInfo(info.Type, cols)
	if err != nil {
		l.err = fmt.Errorf("%w: tensor %s: %w", engine.ErrUnsupported, name, err)
		return weight{}
	}
	return weight{TypeInfo: ti, data: data, rows: rows, cols: cols}
}

func (l *loader) vector(name string, n int) []float32 {
	if l.err != nil {
		return nil
	}
	info, data, ok := l.m.Tensor(name)
	if !ok {
		l.err = fmt.Errorf("%w: tensor %s is missing", engine.ErrUnsupported, name)
		return nil
	}
	if info.Elements() != uint64(n) {
		l.err = fmt.Errorf("%w: tensor %s has %d values, want %d", engine.ErrUnsupported, name, info.Elements(), n)
		return nil
	}
	out := make([]float32, n)
	if err := kernels.Dequantize(info.Type, data, out); err != nil {
		l.err = fmt.Errorf("%w: tensor %s: %w", engine.ErrUnsupported, name, err)
	}
	return out
}

// Config is the model's shape.
func (md *Model) Config() Config { return md.cfg }

// Info describes the model.
func (md *Model) Info() engine.Info { return md.info }

// Tokenize encodes text with the beginning-of-sequence token; text that
// looks like a control token stays text.
func (md *Model) Tokenize(text string) ([]int32, error) { return md.tok.Encode(text, true), nil }

// Piece is the bytes of a token.
func (md *Model) Piece(t int32) []byte { return md.tok.Piece(t) }

// IsEnd reports end-of-sequence and end-of-turn tokens.
func (md *Model) IsEnd(t int32) bool { return md.tok.IsEnd(t) }

// EncodeChat renders messages in the model's chat template.
func (md *Model) EncodeChat(messages []engine.Message) ([]int32, error) {
	return md.template.Encode(md.tok, messages)
}

// Close stops the worker pool; the mapping belongs to the caller.
func (md *Model) Close() error {
	md.pool.Close()
	return nil
}

// NewSequence starts a sequence with an empty KV cache.
func (md *Model) NewSequence() (engine.Sequence, error) {
	return &sequence{md: md, k: make([][]float32, md.cfg.Layers), v: make([][]float32, md.cfg.Layers)}, nil
}

// sequence is one generation: its KV cache and scratch buffers.
type sequence struct {
	md   *Model
	n    int // positions in the cache
	k, v [][]float32
	s    scratch
}

// scratch holds the buffers of a forward pass, reused across calls.
type scratch struct {
	x, xn, q, kk, vv, att, gate, up, ff [][]float32
	acts, ffActs                        []*kernels.Act
	logits                              [][]float32
	scores                              [][]float32
	rope                                []float32 // cos, sin per pair per position
	ropeSWA                             []float32 // the same for sliding-window layers
}

func grow(buf [][]float32, t, n int) [][]float32 {
	for len(buf) < t {
		buf = append(buf, nil)
	}
	for i := range t {
		if cap(buf[i]) < n {
			buf[i] = make([]float32, n)
		}
		buf[i] = buf[i][:n]
	}
	return buf[:t]
}

// Forward runs tokens through the model and returns the next token's logits.
func (s *sequence) Forward(ctx context.Context, tokens []int32) ([]float32, error) {
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%w: no tokens", engine.ErrInvalidInput)
	}
	cfg := s.md.cfg
	if s.n+len(tokens) > cfg.Context {
		return nil, fmt.Errorf("%w: the sequence would hold %d tokens, the context %d", engine.ErrInvalidInput, s.n+len(tokens), cfg.Context)
	}
	for _, t := range tokens {
		if t < 0 || int(t) >= cfg.Vocab {
			return nil, fmt.Errorf("%w: token %d is not in the vocabulary", engine.ErrInvalidInput, t)
		}
	}
	var last []float32
	for start := 0; start < len(tokens); start += prefillChunk {
		chunk := tokens[start:min(len(tokens), start+prefillChunk)]
		var err error
		if last, err = s.forward(ctx, chunk); err != nil {
			return nil, err
		}
	}
	return last, nil
}

func (s *sequence) forward(ctx context.Context, tokens []int32) ([]float32, error) {
	md, cfg := s.md, s.md.cfg
	T := len(tokens)
	kvDim := cfg.KVHeads * cfg.HeadDim
	sc := &s.s
	sc.x = grow(sc.x, T, cfg.Embd)
	sc.xn = grow(sc.xn, T, cfg.Embd)
	sc.q = grow(sc.q, T, cfg.QDim())
	sc.kk = grow(sc.kk, T, kvDim)
	sc.vv = grow(sc.vv, T, kvDim)
	sc.att = grow(sc.att, T, cfg.QDim())
	sc.gate = grow(sc.gate, T, cfg.FF)
	sc.up = grow(sc.up, T, cfg.FF)
	sc.ff = grow(sc.ff, T, cfg.Embd)
	if sc.acts == nil {
		// Laid out evenly, so the kernels take four tokens at a time.
		sc.acts = kernels.NewActs(prefillChunk, max(cfg.Embd, cfg.QDim()))
		sc.ffActs = kernels.NewActs(prefillChunk, cfg.FF)
	}

	for t, tok := range tokens {
		row := md.embd.data[int(tok)*md.embd.RowBytes : (int(tok)+1)*md.embd.RowBytes]
		if err := kernels.Dequantize(md.embd.Type, row, sc.x[t]); err != nil {
			return nil, err
		}
		scale(sc.x[t], cfg.EmbedScale)
	}
	if len(sc.rope) < T*cfg.RopeDim {
		sc.rope = make([]float32, prefillChunk*cfg.RopeDim)
		if md.ropeSWA != nil {
			sc.ropeSWA = make([]float32, prefillChunk*cfg.RopeDim)
		}
	}
	for t := range T {
		ropeAngles(sc.rope[t*cfg.RopeDim:(t+1)*cfg.RopeDim], md.ropeFreq, s.n+t, cfg.RopeAttnFactor)
		if md.ropeSWA != nil {
			ropeAngles(sc.ropeSWA[t*cfg.RopeDim:(t+1)*cfg.RopeDim], md.ropeSWA, s.n+t, cfg.RopeAttnFactor)
		}
	}
	for li := range md.layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ly := &md.layers[li]
		rope := sc.rope
		if cfg.SlidingWindowLayer(li) {
			rope = sc.ropeSWA
		}
		// Attention.
		for t := range T {
			rmsNorm(sc.xn[t], sc.x[t], ly.attnNorm, cfg.RMSEps)
			sc.acts[t].SetFormats(sc.xn[t], formats(ly.wq, ly.wk, ly.wv))
		}
		if !cfg.RopeLayer(li) {
			rope = nil
		}
		if T == 1 && cfg.KVHeads%md.pool.Workers() == 0 {
			// The KV groups split evenly over the threads. Otherwise (3
			// groups on 2 threads) the path below, whose products split by
			// rows and whose attention by head, keeps every thread busy.
			s.attendOne(li, ly, rope[:min(len(rope), cfg.RopeDim)])
		} else {
			kernels.MatMuls(md.pool, ly.wq.job(sc.acts[:T], sc.q), ly.wk.job(sc.acts[:T], sc.kk), ly.wv.job(sc.acts[:T], sc.vv))
			for t := range T {
				if ly.bq != nil {
					addTo(sc.q[t], ly.bq)
					addTo(sc.kk[t], ly.bk)
					addTo(sc.vv[t], ly.bv)
				}
				if ly.qNorm != nil {
					md.headNorm(sc.q[t], ly.qNorm)
					md.headNorm(sc.kk[t], ly.kNorm)
				}
				if rope != nil {
					cs := rope[t*cfg.RopeDim : (t+1)*cfg.RopeDim]
					md.rope(sc.q[t], cfg.Heads, cs)
					md.rope(sc.kk[t], cfg.KVHeads, cs)
				}
				s.k[li] = append(s.k[li], sc.kk[t]...)
				s.v[li] = append(s.v[li], sc.vv[t]...)
			}
			s.attention(li, T)
		}
		for t := range T {
			sc.acts[t].SetFormats(sc.att[t], formats(ly.wo, ly.wo, ly.wo))
		}
		kernels.MatMul(md.pool, ly.wo.TypeInfo, ly.wo.data, ly.wo.rows, sc.acts[:T], sc.ff)
		for t := range T {
			md.joinResidual(sc.x[t], sc.ff[t], ly.attnPost)
		}
		// Feed-forward (SwiGLU).
		for t := range T {
			rmsNorm(sc.xn[t], sc.x[t], ly.ffnNorm, cfg.RMSEps)
			sc.acts[t].SetFormats(sc.xn[t], formats(ly.gate, ly.up, ly.up))
		}
		// The gate and up rows of a range, then SwiGLU over it, in one
		// parallel pass: the exponentials run on every thread, beside
		// the memory-bound products, instead of on one between passes.
		acts := sc.acts[:T]
		kernels.Prepare(ly.gate.TypeInfo, acts)
		kernels.Prepare(ly.up.TypeInfo, acts)
		md.pool.Run(cfg.FF, 32, func(lo, hi int) {
			kernels.MatRows(ly.gate.TypeInfo, ly.gate.data, acts, sc.gate, lo, hi)
			kernels.MatRows(ly.up.TypeInfo, ly.up.data, acts, sc.up, lo, hi)
			for t := range T {
				g, u := sc.gate[t][lo:hi], sc.up[t][lo:hi]
				if cfg.GELU {
					for i := range g {
						g[i] = gelu(g[i]) * u[i]
					}
					continue
				}
				kernels.SiLUMul(g, u)
			}
		})
		for t := range T {
			sc.ffActs[t].SetFormats(sc.gate[t], formats(ly.down, ly.down, ly.down))
		}
		kernels.MatMul(md.pool, ly.down.TypeInfo, ly.down.data, ly.down.rows, sc.ffActs[:T], sc.ff)
		for t := range T {
			md.joinResidual(sc.x[t], sc.ff[t], ly.ffnPost)
		}
	}
	s.n += T
	// Only the last position's logits are needed.
	rmsNorm(sc.xn[T-1], sc.x[T-1], md.outNorm, cfg.RMSEps)
	sc.acts[0].SetFormats(sc.xn[T-1], formats(md.output, md.output, md.output))
	sc.logits = grow(sc.logits, 1, cfg.Vocab)
	kernels.MatMul(md.pool, md.output.TypeInfo, md.output.data, md.output.rows, sc.acts[:1], sc.logits)
	logits := sc.logits[0]
	scale(logits, cfg.LogitScale)
	if c := cfg.SoftCap; c > 0 {
		for i, v := range logits {
			logits[i] = c * float32(math.Tanh(float64(v/c)))
		}
	}
	return logits, nil
}

// joinResidual adds a block's output y to the residual stream x, after the
// architecture's post-norm (norm, when not nil) and residual multiplier.
func (md *Model) joinResidual(x, y, norm []float32) {
	if norm != nil {
		rmsNorm(y, y, norm, md.cfg.RMSEps)
	}
	if r := md.cfg.ResidualScale; r != 1 {
		for i, v := range y {
			x[i] += r * v
		}
		return
	}
	addTo(x, y)
}

// headNorm RMS-normalises each head of x (Config.QKNorm).
func (md *Model) headNorm(x, w []float32) {
	d := md.cfg.HeadDim
	for h := 0; h+d <= len(x); h += d {
		rmsNorm(x[h:h+d], x[h:h+d], w, md.cfg.RMSEps)
	}
}

// window is the first cached position a query at position n-1 of layer li
// attends to.
func (md *Model) window(li, n int) int {
	if md.cfg.SlidingWindowLayer(li) {
		return max(0, n-md.cfg.SlidingWindow)
	}
	return 0
}

// attention computes causal grouped-query attention for the T newest
// positions of layer li into s.s.att, in parallel over (position, head).
func (s *sequence) attention(li, T int) {
	md, cfg := s.md, s.md.cfg
	sc := &s.s
	total := s.n + T // positions in the cache after this chunk
	if len(sc.scores) < T*cfg.Heads {
		sc.scores = make([][]float32, T*cfg.Heads)
	}
	md.pool.Run(T*cfg.Heads, 1, func(start, end int) {
		for job := start; job < end; job++ {
			t, h := job/cfg.Heads, job%cfg.Heads
			if need := total + attnLanes*cfg.HeadDim; cap(sc.scores[job]) < need {
				sc.scores[job] = make([]float32, need)
			}
			out := sc.att[t][h*cfg.HeadDim : (h+1)*cfg.HeadDim]
			n := s.n + t + 1
			md.attendHead(s.k[li], s.v[li], sc.q[t][h*cfg.HeadDim:(h+1)*cfg.HeadDim], h, md.window(li, n), n, sc.scores[job], out)
		}
	})
}

// attendOne is the attention block of one decoded token in a single
// parallel pass: each piece is a KV group (the query heads that share a
// key/value head), whose query, key and value rows (whole rows, read in
// place), rotary embedding, cache write and attention depend on nothing
// outside the group. The threads meet once here instead of twice.
func (s *sequence) attendOne(li int, ly *layer, cs []float32) {
	md, cfg := s.md, s.md.cfg
	sc := &s.s
	kvDim := cfg.KVHeads * cfg.HeadDim
	group := cfg.Heads / cfg.KVHeads
	groupRows := group * cfg.HeadDim
	pos := s.n
	s.k[li] = slices.Grow(s.k[li], kvDim)[:len(s.k[li])+kvDim]
	s.v[li] = slices.Grow(s.v[li], kvDim)[:len(s.v[li])+kvDim]
	keys, values := s.k[li], s.v[li]
	if len(sc.scores) < cfg.KVHeads {
		sc.scores = append(sc.scores, make([][]float32, cfg.KVHeads-len(sc.scores))...)
	}
	acts := sc.acts[:1]
	q, k, v := sc.q[:1], sc.kk[:1], sc.vv[:1]
	lo := md.window(li, pos+1)
	md.pool.Run(cfg.KVHeads, 1, func(g0, g1 int) {
		for g := g0; g < g1; g++ {
			qlo, qhi := g*groupRows, (g+1)*groupRows
			klo, khi := g*cfg.HeadDim, (g+1)*cfg.HeadDim
			kernels.MatRows(ly.wq.TypeInfo, ly.wq.data, acts, q, qlo, qhi)
			kernels.MatRows(ly.wk.TypeInfo, ly.wk.data, acts, k, klo, khi)
			kernels.MatRows(ly.wv.TypeInfo, ly.wv.data, acts, v, klo, khi)
			if ly.bq != nil {
				addTo(q[0][qlo:qhi], ly.bq[qlo:qhi])
				addTo(k[0][klo:khi], ly.bk[klo:khi])
				addTo(v[0][klo:khi], ly.bv[klo:khi])
			}
			if ly.qNorm != nil {
				md.headNorm(q[0][qlo:qhi], ly.qNorm)
				md.headNorm(k[0][klo:khi], ly.kNorm)
			}
			if len(cs) > 0 { // not a NoPE layer
				md.rope(q[0][qlo:qhi], group, cs)
				md.rope(k[0][klo:khi], 1, cs)
			}
			copy(keys[pos*kvDim+klo:pos*kvDim+khi], k[0][klo:khi])
			copy(values[pos*kvDim+klo:pos*kvDim+khi], v[0][klo:khi])
			if need := pos + 1 + attnLanes*cfg.HeadDim; cap(sc.scores[g]) < need {
				sc.scores[g] = make([]float32, need, 2*need)
			}
			for h := g * group; h < (g+1)*group; h++ {
				md.attendHead(keys, values, q[0][h*cfg.HeadDim:(h+1)*cfg.HeadDim], h, lo, pos+1, sc.scores[g], sc.att[0][h*cfg.HeadDim:(h+1)*cfg.HeadDim])
			}
		}
	})
}

// attnLanes is the number of partial sums attendHead keeps per output
// value: llama.cpp's x86 softmax and its product with the values
// (tinyBLAS) work on eight positions at a time, lane i taking the
// positions 8k+i.
const attnLanes = kernels.AttnLanes

// attendHead is head h's attention over the cached positions [lo, n):
// softmax of the scaled query-key products, then the weighted sum of the
// values, into out. scratch holds n-lo+attnLanes*HeadDim values. The sums
// are taken in llama.cpp's order (its F32 KV cache, no flash attention, on
// x86): the exponentials' sum from eight-position chunks (aligned at
// position 0) each reduced as ggml's hsum_float_8 and added in float64,
// its inverse rounded to float32 and multiplied into each weight, and each
// output value from eight partial sums, one per position lane, reduced the
// same way. Attention's output is what the next product quantizes to int8,
// so a sum taken in another order moves some values across a rounding
// boundary.
func (md *Model) attendHead(keys, values, q []float32, h, lo, n int, scratch, out []float32) {
	cfg := md.cfg
	hd := cfg.HeadDim
	kvDim := cfg.KVHeads * hd
	kvh := h / (cfg.Heads / cfg.KVHeads)
	scale := cfg.AttnScale
	scores := scratch[:n-lo]
	kernels.ScaledDotsF32(q, keys[lo*kvDim+kvh*hd:], kvDim, scale, scores)
	maxS := float32(math.Inf(-1))
	for _, d := range scores {
		maxS = max(maxS, d)
	}
	kernels.ExpShifted(scores, maxS)
	var sum float64
	for c := lo / attnLanes * attnLanes; c < n; c += attnLanes {
		var lanes [attnLanes]float32
		for p := max(c, lo); p < min(c+attnLanes, n); p++ {
			lanes[p-c] = scores[p-lo]
		}
		sum += float64(hsum8(&lanes))
	}
	inv := float32(1 / sum)
	acc := scratch[n-lo : n-lo+attnLanes*hd]
	clear(acc)
	kernels.AxpyLanesF32(scores, inv, values[lo*kvDim+kvh*hd:], kvDim, acc, lo%attnLanes)
	for d := range out {
		var lanes [attnLanes]float32
		for l := range lanes {
			lanes[l] = acc[l*hd+d]
		}
		out[d] = hsum8(&lanes)
	}
}

// hsum8 adds eight lanes as ggml's hsum_float_8 does: the two halves,
// then lanes two apart, then the last two.
func hsum8(x *[attnLanes]float32) float32 {
	a0, a1, a2, a3 := x[0]+x[4], x[1]+x[5], x[2]+x[6], x[3]+x[7]
	return (a0 + a2) + (a1 + a3)
}

// ropeAngles fills cs with the cosine and sine of each rotated pair's
// angle at position p, times mscale (computed once per position, shared by
// every head and layer), the angles as ggml's rope computes them (see
// ropeTheta) and their sines and cosines as its sincosf does.
func ropeAngles(cs []float32, r *ropeTheta, p int, mscale float32) {
	theta := float32(p)
	for i := range r.pairs {
		a := theta
		if r.factors != nil {
			a = theta / r.factors[i]
		}
		sin, cos := kernels.Sincos(r.freqScale * a)
		cs[2*i], cs[2*i+1] = cos*mscale, sin*mscale
		theta *= r.scale
	}
}

// rope rotates each head's first RopeDim values by the angles in cs,
// rounding as llama.cpp's x86 build does, whose compiler fuses the first
// product of each rotated value into a multiply-add: x0*cos - x1*sin
// with x1*sin rounded, x0*sin + x1*cos with x1*cos rounded.
func (md *Model) rope(x []float32, heads int, cs []float32) {
	cfg := md.cfg
	half := cfg.RopeDim / 2
	for h := range heads {
		v := x[h*cfg.HeadDim : (h+1)*cfg.HeadDim]
		for i := range half {
			c, s := cs[2*i], cs[2*i+1]
			a, b := 2*i, 2*i+1
			if cfg.RopeNeox {
				a, b = i, i+half
			}
			x0, x1 := v[a], v[b]
			v[a] = fma32(x0, c, -(x1 * s))
			v[b] = fma32(x0, s, x1*c)
		}
	}
}

// fma32 is x*y+z rounded once to float32, as a fused multiply-add
// instruction computes it.
func fma32(x, y, z float32) float32 {
	return float32(math.FMA(float64(x), float64(y), float64(z)))
}

func (s *sequence) Close() { s.k, s.v = nil, nil }

func rmsNorm(dst, x, w []float32, eps float32) {
	// Rounded as ggml rounds it (ggml_compute_forward_rms_norm_f32): the
	// squares in float32 summed in float64, the mean, the root and its
	// inverse in float32. The normed values are what the next product
	// quantizes to int8, so a last-bit difference here moves some of them
	// across a rounding boundary, and the engines' logits part.
	var ss float64
	for _, v := range x {
		ss += float64(float32(v * v))
	}
	mean := float32(ss / float64(len(x)))
	inv := 1 / float32(math.Sqrt(float64(float32(mean+eps))))
	for i, v := range x {
		dst[i] = v * inv * w[i]
	}
}

func addTo(dst, x []float32) {
	for i, v := range x {
		dst[i] += v
	}
}

// gelu is GELU in the tanh form, as ggml computes it on CPUs: the input
// rounded to F16 and the result looked up in a table of F16 values (which
// gelu16 holds), and x itself (0) from 10 (-10) on.
func gelu(x float32) float32 {
	switch {
	case x <= -10:
		return 0
	case x >= 10:
		return x
	}
	return gelu16()[kernels.F32ToF16(x)]
}

// gelu16 is GELU of every F16 value, rounded to F16: 256 KiB, built once
// when a GELU model first runs.
var gelu16 = sync.OnceValue(func() []float32 {
	const sqrt2OverPi, a = 0.7978845608028654, 0.044715
	t := make([]float32, 1<<16)
	for h := range t {
		x := kernels.F16ToF32(uint16(h))
		y := 0.5 * x * (1 + float32(math.Tanh(float64(sqrt2OverPi*x*(1+a*x*x)))))
		t[h] = kernels.F16ToF32(kernels.F32ToF16(y))
	}
	return t
})

// scale multiplies x by f in place; 1 costs nothing.
func scale(x []float32, f float32) {
	if f == 1 {
		return
	}
	for i := range x {
		x[i] *= f
	}
}
