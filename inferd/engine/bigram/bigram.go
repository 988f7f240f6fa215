// Package bigram is a test architecture: a language model whose only weight
// is a table of next-token logits given the previous token, learned by
// counting a small corpus. It is a real GGUF model that inferd fetches,
// verifies, maps and serves through the same Engine interface as a
// transformer, so the serving side, the self-test and the rollout can be
// exercised end to end on machines that cannot download weights. It is not
// a useful language model: it is what tests and the demo run until the
// transformer engine serves real architectures.
package bigram

import (
	"context"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strings"

	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/engine/kernels"
	"github.com/slmops/slmops/inferd/gguf"
)

// Architecture is the general.architecture of bigram models.
const Architecture = "slmops-bigram"

// TensorName is the next-token logits table, VocabSize rows of VocabSize.
const TensorName = "transitions.weight"

// The special tokens.
const (
	UNK int32 = 0
	BOS int32 = 1
	EOS int32 = 2
)

func init() { engine.Register(Architecture, Load) }

// Model is a loaded bigram model.
type Model struct {
	tokens  []string
	lookup  map[string]int32
	maxLen  int
	table   []byte
	rowSize uint64
	typ     gguf.TensorType
	info    engine.Info
}

// Load builds a Model over the mapped file; the logits stay in the mapping.
func Load(m *gguf.Mapped, opts engine.Options) (engine.Engine, error) {
	raw, ok := m.Get("tokenizer.ggml.tokens")
	list, isList := raw.([]string)
	if !ok || !isList || len(list) < 3 {
		return nil, fmt.Errorf("%w: %s model without a tokenizer.ggml.tokens array of strings", engine.ErrUnsupported, Architecture)
	}
	md := &Model{lookup: map[string]int32{}, typ: gguf.F32}
	for i, s := range list {
		md.tokens = append(md.tokens, s)
		if !special(int32(i), s) {
			md.lookup[s] = int32(i)
			md.maxLen = max(md.maxLen, len(s))
		}
	}
	info, table, ok := m.Tensor(TensorName)
	v := uint64(len(md.tokens))
	if !ok || len(info.Dims) != 2 || info.Dims[0] != v || info.Dims[1] != v {
		return nil, fmt.Errorf("%w: %s must be a %d x %d tensor", engine.ErrUnsupported, TensorName, v, v)
	}
	switch info.Type {
	case gguf.F32, gguf.F16, gguf.Q8_0:
	default:
		return nil, fmt.Errorf("%w: %s of type %s (F32, F16 and Q8_0 are supported)", engine.ErrUnsupported, TensorName, info.Type)
	}
	md.typ, md.table = info.Type, table
	md.rowSize = info.Size / v
	ctxLen := 2048
	if c, ok := m.Get(Architecture + ".context_length"); ok {
		if n, ok := c.(uint32); ok && n > 0 {
			ctxLen = int(n)
		}
	}
	if opts.ContextLength > 0 {
		ctxLen = min(ctxLen, opts.ContextLength)
	}
	md.info = engine.Info{
		Architecture: Architecture, Engine: "bigram (test architecture)", Quantization: m.Quantization(),
		VocabSize: len(md.tokens), ContextLength: ctxLen, Parameters: v * v,
	}
	return md, nil
}

// Info describes the model.
func (m *Model) Info() engine.Info { return m.info }

// Tokenize splits text by greedy longest match against the vocabulary.
func (m *Model) Tokenize(text string) ([]int32, error) {
	out := []int32{BOS}
	for i := 0; i < len(text); {
		n := min(m.maxLen, len(text)-i)
		for ; n > 0; n-- {
			if id, ok := m.lookup[text[i:i+n]]; ok {
				out = append(out, id)
				break
			}
		}
		if n == 0 { // not in the vocabulary: one character as <unk>
			out = append(out, UNK)
			_, size := firstRune(text[i:])
			n = size
		}
		i += n
	}
	return out, nil
}

func firstRune(s string) (rune, int) {
	for _, r := range s {
		return r, len(string(r))
	}
	return 0, 1
}

// Piece is the token's text; special tokens have none.
func (m *Model) Piece(t int32) []byte {
	if int(t) >= len(m.tokens) || special(t, m.tokens[t]) {
		return nil
	}
	return []byte(m.tokens[t])
}

// padPrefix names the unused tokens that round the vocabulary up.
const padPrefix = "<pad_"

// special reports whether token id with text s stands for no text: the
// unknown, begin and end tokens and the padding.
func special(id int32, s string) bool {
	return id <= EOS || strings.HasPrefix(s, padPrefix)
}

// IsEnd is true for the end-of-sequence token.
func (m *Model) IsEnd(t int32) bool { return t == EOS }

// EncodeChat renders "role: content" lines, opens the assistant's turn and
// tokenizes it all (this architecture has no control tokens to protect).
func (m *Model) EncodeChat(messages []engine.Message) ([]int32, error) {
	var b strings.Builder
	for _, msg := range messages {
		b.WriteString(msg.Role)
		b.WriteString(": ")
		b.WriteString(msg.Content)
		b.WriteString("\n")
	}
	b.WriteString("assistant:")
	return m.Tokenize(b.String())
}

// NewSequence starts a sequence.
func (m *Model) NewSequence() (engine.Sequence, error) {
	return &sequence{m: m, logits: make([]float32, len(m.tokens))}, nil
}

// Close has nothing to release: the mapping belongs to the caller.
func (m *Model) Close() error { return nil }

type sequence struct {
	m      *Model
	n      int
	logits []float32
}

func (s *sequence) Forward(ctx context.Context, tokens []int32) ([]float32, error) {
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%w: no tokens", engine.ErrInvalidInput)
	}
	if s.n+len(tokens) > s.m.info.ContextLength {
		return nil, fmt.Errorf("%w: the sequence would hold %d tokens, the context %d", engine.ErrInvalidInput, s.n+len(tokens), s.m.info.ContextLength)
	}
	last := tokens[len(tokens)-1]
	if last < 0 || int(last) >= len(s.m.tokens) {
		return nil, fmt.Errorf("%w: token %d is not in the vocabulary", engine.ErrInvalidInput, last)
	}
	s.n += len(tokens)
	row := s.m.table[uint64(last)*s.m.rowSize : uint64(last+1)*s.m.rowSize]
	if err := kernels.Dequantize(s.m.typ, row, s.logits); err != nil {
		return nil, err
	}
	return s.logits, nil
}

func (s *sequence) Close() {}

// DefaultCorpus is what the demo's and the tests' models learn.
const DefaultCorpus = `slmops ships small language models to edge nodes.
The edge node is ready to serve.
The model is verified, loaded and tested on this node.
A canary step promotes the model when every node is ready.
Hello from the edge.
assistant: Hello from the edge. The model is ready to serve.
user: hello
assistant: The edge node is ready to serve.
`

// BuildOptions describe a generated model.
type BuildOptions struct {
	// Name is general.name.
	Name string
	// Corpus is the text to count; DefaultCorpus when empty.
	Corpus string
	// Type of the logits table: F32, F16 or Q8_0.
	Type gguf.TensorType
	// ContextLength is the model's context; 2048 when 0.
	ContextLength uint32
	// MinVocab pads the vocabulary with unused tokens up to this size: a
	// larger table makes each token cost more, as a larger model does.
	MinVocab int
	// NeverEnd removes the end-of-sequence token from every row, so a
	// generation runs to max_tokens (for load and shutdown tests).
	NeverEnd bool
	// PadBytes adds an unused tensor of this size, to make files of a chosen
	// size for download tests.
	PadBytes uint64
}

var wordPattern = regexp.MustCompile(`[A-Za-z]{2,}`)

// Build returns the metadata and tensors of a model learned from the corpus.
func Build(o BuildOptions) ([]gguf.KV, []gguf.Tensor, error) {
	corpus := o.Corpus
	if corpus == "" {
		corpus = DefaultCorpus
	}
	if o.ContextLength == 0 {
		o.ContextLength = 2048
	}
	tokens := []string{"<unk>", "<s>", "</s>", "\n"}
	for c := byte(32); c < 127; c++ {
		tokens = append(tokens, string(c))
	}
	seen := map[string]bool{}
	words := wordPattern.FindAllString(corpus, -1)
	sort.Strings(words)
	for _, w := range words {
		for _, t := range []string{w, " " + w} {
			if !seen[t] {
				seen[t] = true
				tokens = append(tokens, t)
			}
		}
	}
	for i := 0; len(tokens)%32 != 0 || len(tokens) < o.MinVocab; i++ { // Q8_0 rows are whole 32-value blocks
		tokens = append(tokens, fmt.Sprintf("%s%d>", padPrefix, i))
	}
	vocab := make([]any, len(tokens))
	for i, t := range tokens {
		vocab[i] = t
	}

	// Count transitions with the model's own tokenizer.
	tok := &Model{lookup: map[string]int32{}}
	for i, t := range tokens {
		if !special(int32(i), t) {
			tok.lookup[t] = int32(i)
			tok.maxLen = max(tok.maxLen, len(t))
		}
	}
	v := len(tokens)
	counts := make([]float64, v*v)
	for _, line := range strings.Split(strings.TrimSpace(corpus), "\n") {
		ids, _ := tok.Tokenize(line)
		ids = append(ids, EOS)
		for i := 1; i < len(ids); i++ {
			counts[int(ids[i-1])*v+int(ids[i])]++
		}
	}
	const alpha = 1e-3
	logits := make([]float32, v*v)
	for r := range v {
		var total float64
		for c := range v {
			total += counts[r*v+c]
		}
		for c := range v {
			l := math.Log((counts[r*v+c] + alpha) / (total + alpha*float64(v)))
			if strings.HasPrefix(tokens[c], padPrefix) || c == int(UNK) || c == int(BOS) || (o.NeverEnd && c == int(EOS)) {
				l = -30 // never generated
			}
			logits[r*v+c] = float32(l)
		}
	}
	switch o.Type {
	case gguf.F32, gguf.F16, gguf.Q8_0:
	default:
		return nil, nil, fmt.Errorf("bigram tables are F32, F16 or Q8_0, not %s", o.Type)
	}
	data, err := kernels.Quantize(nil, o.Type, logits)
	if err != nil {
		return nil, nil, err
	}
	quant := o.Type.String()
	fileType, _ := gguf.FileTypeOf(quant)
	name := o.Name
	if name == "" {
		name = "slmops-bigram-" + strings.ToLower(quant)
	}
	meta := []gguf.KV{
		{Key: "general.architecture", Type: gguf.TypeString, Value: Architecture},
		{Key: "general.name", Type: gguf.TypeString, Value: name},
		{Key: "general.file_type", Type: gguf.TypeUint32, Value: fileType},
		{Key: Architecture + ".context_length", Type: gguf.TypeUint32, Value: o.ContextLength},
		{Key: "tokenizer.ggml.model", Type: gguf.TypeString, Value: "slmops-greedy"},
		{Key: "tokenizer.ggml.tokens", Type: gguf.TypeArray, Value: gguf.Array{Type: gguf.TypeString, Values: vocab}},
		{Key: "tokenizer.ggml.bos_token_id", Type: gguf.TypeUint32, Value: uint32(BOS)},
		{Key: "tokenizer.ggml.eos_token_id", Type: gguf.TypeUint32, Value: uint32(EOS)},
	}
	tensors := []gguf.Tensor{{Name: TensorName, Dims: []uint64{uint64(v), uint64(v)}, Type: o.Type, Data: data}}
	if o.PadBytes > 0 {
		pad := make([]byte, o.PadBytes)
		for i := range pad {
			pad[i] = byte(i * 131)
		}
		tensors = append(tensors, gguf.Tensor{Name: "padding", Dims: []uint64{o.PadBytes}, Type: gguf.I8, Data: pad})
	}
	return meta, tensors, nil
}

// Write writes a generated model file.
func Write(w io.Writer, o BuildOptions) error {
	meta, tensors, err := Build(o)
	if err != nil {
		return err
	}
	return gguf.Write(w, meta, tensors)
}
