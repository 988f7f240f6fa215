package llama

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/engine/kernels"
	"github.com/slmops/slmops/inferd/engine/tokenizer"
	"github.com/slmops/slmops/inferd/gguf"
)

func init() {
	engine.Register(ArchLlama, Load)
	engine.Register(ArchQwen2, Load)
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

// job is a product of w with acts into out.
func (w weight) job(acts []*kernels.Act, out [][]float32) kernels.Job {
	return kernels.Job{Type: w.TypeInfo, W: w.data, Rows: w.rows, Acts: acts, Out: out}
}

type layer struct {
	attnNorm, ffnNorm []float32
	wq, wk, wv, wo    weight
	bq, bk, bv        []float32
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
	ropeFreq []float32
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
			wq:       l.matrix(p+"attn_q.weight", cfg.Embd, cfg.Embd),
			wk:       l.matrix(p+"attn_k.weight", kv, cfg.Embd),
			wv:       l.matrix(p+"attn_v.weight", kv, cfg.Embd),
			wo:       l.matrix(p+"attn_output.weight", cfg.Embd, cfg.Embd),
			ffnNorm:  l.vector(p+"ffn_norm.weight", cfg.Embd),
			gate:     l.matrix(p+"ffn_gate.weight", cfg.FF, cfg.Embd),
			up:       l.matrix(p+"ffn_up.weight", cfg.FF, cfg.Embd),
			down:     l.matrix(p+"ffn_down.weight", cfg.Embd, cfg.FF),
		}
		if cfg.AttnBiases {
			ly.bq = l.vector(p+"attn_q.bias", cfg.Embd)
			ly.bk = l.vector(p+"attn_k.bias", kv)
			ly.bv = l.vector(p+"attn_v.bias", kv)
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
	md.ropeFreq = make([]float32, cfg.RopeDim/2)
	for i := range md.ropeFreq {
		md.ropeFreq[i] = float32(math.Pow(float64(cfg.RopeBase), -2*float64(i)/float64(cfg.RopeDim)))
	}
	if opts.ExclusiveCPUs {
		md.pool = kernels.NewSpinningPool(opts.Threads)
	} else {
		md.pool = kernels.NewPool(opts.Threads)
	}
	md.info = engine.Info{
		Architecture: arch, Engine: fmt.Sprintf("slmops llama (%d threads, %s kernels)", md.pool.Workers(), kernels.Accelerated()), Quantization: m.Quantization(),
		VocabSize: cfg.Vocab, ContextLength: cfg.Context, Parameters: cfg.Parameters(tied),
	}
	return md, nil
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
	sc.q = grow(sc.q, T, cfg.Embd)
	sc.kk = grow(sc.kk, T, kvDim)
	sc.vv = grow(sc.vv, T, kvDim)
	sc.att = grow(sc.att, T, cfg.Embd)
	sc.gate = grow(sc.gate, T, cfg.FF)
	sc.up = grow(sc.up, T, cfg.FF)
	sc.ff = grow(sc.ff, T, cfg.Embd)
	if sc.acts == nil {
		// Laid out evenly, so the kernels take four tokens at a time.
		sc.acts = kernels.NewActs(prefillChunk, cfg.Embd)
		sc.ffActs = kernels.NewActs(prefillChunk, cfg.FF)
	}

	for t, tok := range tokens {
		row := md.embd.data[int(tok)*md.embd.RowBytes : (int(tok)+1)*md.embd.RowBytes]
		if err := kernels.Dequantize(md.embd.Type, row, sc.x[t]); err != nil {
			return nil, err
		}
	}
	if len(sc.rope) < T*cfg.RopeDim {
		sc.rope = make([]float32, prefillChunk*cfg.RopeDim)
	}
	for t := range T {
		md.ropeAngles(sc.rope[t*cfg.RopeDim:(t+1)*cfg.RopeDim], s.n+t)
	}
	for li := range md.layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ly := &md.layers[li]
		// Attention.
		for t := range T {
			rmsNorm(sc.xn[t], sc.x[t], ly.attnNorm, cfg.RMSEps)
			sc.acts[t].Set(sc.xn[t])
		}
		if T == 1 {
			s.attendOne(li, ly)
		} else {
			kernels.MatMuls(md.pool, ly.wq.job(sc.acts[:T], sc.q), ly.wk.job(sc.acts[:T], sc.kk), ly.wv.job(sc.acts[:T], sc.vv))
			for t := range T {
				if ly.bq != nil {
					addTo(sc.q[t], ly.bq)
					addTo(sc.kk[t], ly.bk)
					addTo(sc.vv[t], ly.bv)
				}
				cs := sc.rope[t*cfg.RopeDim : (t+1)*cfg.RopeDim]
				md.rope(sc.q[t], cfg.Heads, cs)
				md.rope(sc.kk[t], cfg.KVHeads, cs)
				s.k[li] = append(s.k[li], sc.kk[t]...)
				s.v[li] = append(s.v[li], sc.vv[t]...)
			}
			s.attention(li, T)
		}
		for t := range T {
			sc.acts[t].Set(sc.att[t])
		}
		kernels.MatMul(md.pool, ly.wo.TypeInfo, ly.wo.data, ly.wo.rows, sc.acts[:T], sc.ff)
		for t := range T {
			addTo(sc.x[t], sc.ff[t])
		}
		// Feed-forward (SwiGLU).
		for t := range T {
			rmsNorm(sc.xn[t], sc.x[t], ly.ffnNorm, cfg.RMSEps)
			sc.acts[t].Set(sc.xn[t])
		}
		// The gate and up rows of a range, then SwiGLU over it, in one
		// parallel pass: the exponentials run on every thread, beside
		// the memory-bound products, instead of on one between passes.
		acts := sc.acts[:T]
		md.pool.Run(cfg.FF, 32, func(lo, hi int) {
			kernels.MatRows(ly.gate.TypeInfo, ly.gate.data, acts, sc.gate, lo, hi)
			kernels.MatRows(ly.up.TypeInfo, ly.up.data, acts, sc.up, lo, hi)
			for t := range T {
				g, u := sc.gate[t][lo:hi], sc.up[t][lo:hi]
				for i := range g {
					g[i] = silu(g[i]) * u[i]
				}
			}
		})
		for t := range T {
			sc.ffActs[t].Set(sc.gate[t])
		}
		kernels.MatMul(md.pool, ly.down.TypeInfo, ly.down.data, ly.down.rows, sc.ffActs[:T], sc.ff)
		for t := range T {
			addTo(sc.x[t], sc.ff[t])
		}
	}
	s.n += T
	// Only the last position's logits are needed.
	rmsNorm(sc.xn[T-1], sc.x[T-1], md.outNorm, cfg.RMSEps)
	sc.acts[0].Set(sc.xn[T-1])
	sc.logits = grow(sc.logits, 1, cfg.Vocab)
	kernels.MatMul(md.pool, md.output.TypeInfo, md.output.data, md.output.rows, sc.acts[:1], sc.logits)
	return sc.logits[0], nil
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
			if cap(sc.scores[job]) < total {
				sc.scores[job] = make([]float32, total)
			}
			out := sc.att[t][h*cfg.HeadDim : (h+1)*cfg.HeadDim]
			md.attendHead(s.k[li], s.v[li], sc.q[t][h*cfg.HeadDim:(h+1)*cfg.HeadDim], h, s.n+t+1, sc.scores[job], out)
		}
	})
}

// attendOne is the attention block of one decoded token in a single
// parallel pass: each piece is a KV group (the query heads that share a
// key/value head), whose query, key and value rows (whole rows, read in
// place), rotary embedding, cache write and attention depend on nothing
// outside the group. The threads meet once here instead of twice.
func (s *sequence) attendOne(li int, ly *layer) {
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
	acts, cs := sc.acts[:1], sc.rope[:cfg.RopeDim]
	q, k, v := sc.q[:1], sc.kk[:1], sc.vv[:1]
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
			md.rope(q[0][qlo:qhi], group, cs)
			md.rope(k[0][klo:khi], 1, cs)
			copy(keys[pos*kvDim+klo:pos*kvDim+khi], k[0][klo:khi])
			copy(values[pos*kvDim+klo:pos*kvDim+khi], v[0][klo:khi])
			if cap(sc.scores[g]) < pos+1 {
				sc.scores[g] = make([]float32, pos+1, 2*(pos+1))
			}
			for h := g * group; h < (g+1)*group; h++ {
				md.attendHead(keys, values, q[0][h*cfg.HeadDim:(h+1)*cfg.HeadDim], h, pos+1, sc.scores[g], sc.att[0][h*cfg.HeadDim:(h+1)*cfg.HeadDim])
			}
		}
	})
}

// attendHead is head h's attention over the first n cached positions:
// softmax of the scaled query-key products, then the weighted sum of the
// values, into out.
func (md *Model) attendHead(keys, values, q []float32, h, n int, scratch, out []float32) {
	cfg := md.cfg
	kvDim := cfg.KVHeads * cfg.HeadDim
	kvh := h / (cfg.Heads / cfg.KVHeads)
	scale := float32(1 / math.Sqrt(float64(cfg.HeadDim)))
	scores := scratch[:n]
	maxS := float32(math.Inf(-1))
	for p := range n {
		k := keys[p*kvDim+kvh*cfg.HeadDim : p*kvDim+(kvh+1)*cfg.HeadDim]
		d := kernels.DotF32(q, k) * scale
		scores[p] = d
		maxS = max(maxS, d)
	}
	var sum float32
	for p := range scores {
		e := kernels.Exp(scores[p] - maxS)
		scores[p] = e
		sum += e
	}
	clear(out)
	inv := 1 / sum
	for p, w := range scores {
		vrow := values[p*kvDim+kvh*cfg.HeadDim : p*kvDim+(kvh+1)*cfg.HeadDim]
		kernels.AxpyF32(w*inv, vrow, out)
	}
}

// ropeAngles fills cs with the cosine and sine of each rotated pair's
// angle at pos (computed once per position, shared by every head and layer).
func (md *Model) ropeAngles(cs []float32, pos int) {
	p := float32(pos) / md.cfg.RopeScale
	for i, f := range md.ropeFreq {
		sin, cos := math.Sincos(float64(p * f))
		cs[2*i], cs[2*i+1] = float32(cos), float32(sin)
	}
}

// rope rotates each head's first RopeDim values by the angles in cs.
func (md *Model) rope(x []float32, heads int, cs []float32) {
	cfg := md.cfg
	half := cfg.RopeDim / 2
	for h := range heads {
		v := x[h*cfg.HeadDim : (h+1)*cfg.HeadDim]
		for i := range md.ropeFreq {
			c, s := cs[2*i], cs[2*i+1]
			a, b := 2*i, 2*i+1
			if cfg.RopeNeox {
				a, b = i, i+half
			}
			x0, x1 := v[a], v[b]
			v[a] = x0*c - x1*s
			v[b] = x0*s + x1*c
		}
	}
}

func (s *sequence) Close() { s.k, s.v = nil, nil }

func rmsNorm(dst, x, w []float32, eps float32) {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	inv := float32(1 / math.Sqrt(ss/float64(len(x))+float64(eps)))
	for i, v := range x {
		dst[i] = v * inv * w[i]
	}
}

func addTo(dst, x []float32) {
	for i, v := range x {
		dst[i] += v
	}
}

func silu(x float32) float32 { return x / (1 + kernels.Exp(-x)) }
