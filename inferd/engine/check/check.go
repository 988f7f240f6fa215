// Package check says whether this build of inferd runs a GGUF file, and
// what it would take in memory, without loading it: `inferd check FILE`.
// It reads the file's header and metadata (the tensor data stays on disk),
// and checks what a load would refuse first: the layout, the architecture,
// each tensor type, the model's shape, the tokenizer and the context. A
// file it passes can still fail a load on a tensor of the wrong shape; the
// loader checks those.
//
// What it owns: the estimate of a model's memory. What it may not touch:
// the engine's state (it loads nothing).
package check

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/engine/kernels"
	"github.com/slmops/slmops/inferd/engine/llama"
	"github.com/slmops/slmops/inferd/engine/tokenizer"
	"github.com/slmops/slmops/inferd/gguf"
)

// Report is what Check found in a file.
type Report struct {
	Path         string
	Architecture string
	// Quantization is the file type (general.file_type) by its name.
	Quantization string
	// Types counts the tensors of each type.
	Types map[gguf.TensorType]int
	// ModelContext is the context the model was made for; Context the one
	// the estimate is for (ModelContext unless asked for less).
	ModelContext, Context int
	// Tokenizer is the tokenizer model and pre-tokenizer.
	Tokenizer string
	// Memory: the weights (the file's tensors, mapped: the page cache
	// holds them once per node) and the KV cache of one sequence at
	// Context, which KVBytesPerToken is of each token.
	WeightsBytes, KVCacheBytes, KVBytesPerToken int64
	// Problems are why this build does not run the file; none when it does.
	Problems []string
}

// Runs reports whether this build runs the file.
func (r Report) Runs() bool { return len(r.Problems) == 0 }

// TotalBytes is the estimate of the model's memory at Context.
func (r Report) TotalBytes() int64 { return r.WeightsBytes + r.KVCacheBytes }

// Estimate is the model's memory when it serves sequences at once (each
// with its own KV cache) at context tokens, as the engine runs it: a
// context longer than the model's is cut to the model's, 0 means the
// model's own. It is what inferd checks against its memory limit before it
// loads a file and reports to the operator, whose fit check uses it.
func (r Report) Estimate(context, sequences int) int64 {
	return r.WeightsBytes + r.KVBytesPerToken*int64(r.ContextFor(context))*int64(max(1, sequences))
}

// ContextFor is the context the engine runs when asked for context tokens:
// the model's own for 0 or more than it was made for.
func (r Report) ContextFor(context int) int {
	if context <= 0 || (r.ModelContext > 0 && context > r.ModelContext) {
		return r.ModelContext
	}
	return context
}

// ErrUnreadable wraps the error for a file that is not a GGUF file this
// build can even read.
var ErrUnreadable = errors.New("not a readable GGUF file")

// Check reads the GGUF file at path and says whether this build runs it at
// the given context (0: the model's own). An error means the file could not
// be read at all; what keeps a readable file from running is in
// Report.Problems.
func Check(path string, context int) (Report, error) {
	m, err := gguf.Open(path)
	if err != nil {
		return Report{Path: path}, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	defer m.Close()
	r := weights(path, m)
	if _, ok := engine.Lookup(r.Architecture); !ok {
		r.Problems = append(r.Problems, fmt.Sprintf("architecture %q is not one this build runs (%s)", r.Architecture, strings.Join(engine.Architectures(), ", ")))
	}
	var unsupported []string
	for t := range r.Types {
		if t != gguf.F32 && !kernels.Supported(t) {
			unsupported = append(unsupported, fmt.Sprintf("%s (%d tensors)", t, r.Types[t]))
		}
	}
	slices.Sort(unsupported)
	if len(unsupported) > 0 {
		r.Problems = append(r.Problems, "tensor types this build has no kernels for: "+strings.Join(unsupported, ", "))
	}
	if _, err := tokenizer.FromGGUF(m); err != nil {
		r.Problems = append(r.Problems, "tokenizer: "+err.Error())
	} else {
		r.Tokenizer = m.String("tokenizer.ggml.model")
		if pre := m.String("tokenizer.ggml.pre"); pre != "" {
			r.Tokenizer += " (" + pre + ")"
		}
	}
	shape(m, &r, context)
	return r, nil
}

// Memory reads what the memory estimate needs of the GGUF file at path (its
// tensors' sizes and the model's shape, at the model's own context) and
// nothing else: no tokenizer is built and no type checked, which a load
// does anyway. inferd calls it before each load.
func Memory(path string) (Report, error) {
	m, err := gguf.Open(path)
	if err != nil {
		return Report{Path: path}, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	defer m.Close()
	r := weights(path, m)
	shape(m, &r, 0)
	return r, nil
}

// weights is the report of m's layout: its architecture, file type and
// tensors.
func weights(path string, m *gguf.Mapped) Report {
	r := Report{Path: path, Types: map[gguf.TensorType]int{}, Architecture: m.Architecture(), Quantization: m.Quantization()}
	for _, t := range m.Tensors {
		r.Types[t.Type]++
		r.WeightsBytes += int64(t.Size)
	}
	return r
}

// shape reads the model's shape into r: its context and its KV cache at
// context (0: the model's own), with the problems of either.
func shape(m *gguf.Mapped, r *Report, context int) {
	if !slices.Contains(llama.Architectures, r.Architecture) {
		return // no transformer shape to read (the test engine's bigram)
	}
	cfg, err := llama.ReadConfig(m, r.Architecture)
	if err != nil {
		r.Problems = append(r.Problems, "shape: "+err.Error())
		return
	}
	r.ModelContext, r.Context = cfg.Context, cfg.Context
	switch {
	case context < 0:
		r.Problems = append(r.Problems, fmt.Sprintf("context %d is negative", context))
	case context > cfg.Context:
		r.Problems = append(r.Problems, fmt.Sprintf("context %d is longer than the model's %d", context, cfg.Context))
	case context > 0:
		r.Context = context
	}
	r.KVBytesPerToken = KVCacheBytes(cfg, 1)
	r.KVCacheBytes = KVCacheBytes(cfg, r.Context)
}

// KVCacheBytes is the KV cache of one sequence of context tokens of a model
// of shape cfg, as the engine keeps it: keys and values of every layer, at
// llama.KVBytesPerValue each.
func KVCacheBytes(cfg llama.Config, context int) int64 {
	return 2 * int64(cfg.Layers) * int64(context) * int64(cfg.KVHeads) * int64(cfg.HeadDim) * llama.KVBytesPerValue
}

// Human prints bytes in binary units, such as 3.8 GiB.
func Human(b int64) string { return human(b) }

// String is the report as `inferd check` prints it.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s, %s\n", r.Path, orNone(r.Architecture), orNone(r.Quantization))
	types := make([]gguf.TensorType, 0, len(r.Types))
	for t := range r.Types {
		types = append(types, t)
	}
	slices.SortFunc(types, func(a, b gguf.TensorType) int { return r.Types[b] - r.Types[a] })
	var parts []string
	for _, t := range types {
		parts = append(parts, fmt.Sprintf("%s x%d", t, r.Types[t]))
	}
	fmt.Fprintf(&b, "  tensors    %s\n", strings.Join(parts, ", "))
	if r.Tokenizer != "" {
		fmt.Fprintf(&b, "  tokenizer  %s\n", r.Tokenizer)
	}
	if r.ModelContext > 0 {
		fmt.Fprintf(&b, "  context    %d (the model's %d)\n", r.Context, r.ModelContext)
		fmt.Fprintf(&b, "  memory     %s: weights %s (mapped), KV cache %s at %d tokens\n",
			human(r.TotalBytes()), human(r.WeightsBytes), human(r.KVCacheBytes), r.Context)
	}
	if r.Runs() {
		b.WriteString("  runs on this build\n")
	} else {
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "  does not run: %s\n", p)
		}
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// human prints bytes in binary units, such as 638.5 MiB.
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit && exp < 4; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
