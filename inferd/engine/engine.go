// Package engine is the boundary between inferd's serving side and the code
// that runs a model. An Engine is loaded from a validated, memory-mapped GGUF
// file by the loader registered for the file's general.architecture; the
// serving side only tokenizes, asks for next-token logits, samples and
// detokenizes, so the HTTP API, the self-test and the metrics do not change
// when an architecture is added.
package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/slmops/slmops/inferd/gguf"
)

// Error classes a caller maps to answers (the HTTP layer to status codes).
var (
	// ErrInvalidInput: the request cannot be served as asked (too long a
	// prompt for the context, an out-of-range parameter).
	ErrInvalidInput = errors.New("invalid input")
	// ErrUnsupported: the model file is valid GGUF but this build cannot run
	// it (architecture, tensor type) or it is not what the SLMModel declares.
	ErrUnsupported = errors.New("unsupported model")
)

// Info describes a loaded model.
type Info struct {
	// Architecture is general.architecture.
	Architecture string `json:"architecture"`
	// Engine names the implementation that runs it.
	Engine string `json:"engine"`
	// Quantization as llama.cpp names it.
	Quantization string `json:"quantization"`
	// VocabSize is the number of tokens.
	VocabSize int `json:"vocabSize"`
	// ContextLength is the most tokens a sequence can hold.
	ContextLength int `json:"contextLength"`
	// Parameters is the number of weights.
	Parameters uint64 `json:"parameters"`
	// ChatTemplate names the chat format prompts are rendered in: jinja
	// (the model's own tokenizer.chat_template) or a named one (chatml,
	// llama3...).
	ChatTemplate string `json:"chatTemplate,omitempty"`
	// ChatTemplateFallback says why the model's own template is not used,
	// when it has one that this build cannot render.
	ChatTemplateFallback string `json:"chatTemplateFallback,omitempty"`
}

// Message is one chat message.
type Message struct {
	Role    string
	Content string
}

// Engine is a loaded model.
type Engine interface {
	// Info describes the model.
	Info() Info
	// Tokenize turns text into token ids, with the beginning-of-sequence
	// token when the model uses one.
	Tokenize(text string) ([]int32, error)
	// Piece is the bytes a token stands for (possibly part of a UTF-8
	// character); special tokens have none.
	Piece(token int32) []byte
	// IsEnd reports whether token ends a generation (end of sequence, end of turn).
	IsEnd(token int32) bool
	// EncodeChat renders chat messages in the model's chat template, ready
	// for the assistant's answer. The template's markers become their
	// control tokens; the messages' text never does, so a user cannot forge
	// a turn by typing a marker.
	EncodeChat(messages []Message) ([]int32, error)
	// NewSequence starts an empty sequence (its own KV cache).
	NewSequence() (Sequence, error)
	// Close releases the model.
	Close() error
}

// Sequence is one generation's state.
type Sequence interface {
	// Forward appends tokens to the sequence and returns the logits of the
	// token that follows them (VocabSize values, valid until the next call).
	Forward(ctx context.Context, tokens []int32) ([]float32, error)
	// Close releases the sequence.
	Close()
}

// Options tune a loader.
type Options struct {
	// Threads for the forward pass; 0 lets the engine choose.
	Threads int
	// ContextLength caps the model's own context length; 0 keeps it.
	ContextLength int
	// ChatTemplate overrides the chat template the model's metadata
	// implies (chatml, llama2, llama3, gemma, phi3, zephyr); empty keeps
	// the model's.
	ChatTemplate string
	// CPUPolicy is how the compute threads wait for one another: see
	// CPUPolicy's values. Empty is CPUAuto.
	CPUPolicy CPUPolicy
}

// CPUPolicy is how an engine's compute threads wait for one another between
// and within the parallel products of a forward pass.
type CPUPolicy string

const (
	// CPUAuto polls briefly while polling pays and sleeps at once while the
	// CPUs are contended (kernels.NewAdaptivePool): the default.
	CPUAuto CPUPolicy = "Auto"
	// CPUShared never polls: a waiting thread sleeps at once, so another busy
	// process slows generation only in proportion (kernels.NewPool).
	CPUShared CPUPolicy = "Shared"
	// CPUExclusive always polls for up to kernels.SpinBudget before it
	// sleeps, for CPUs that run nothing else (kernels.NewSpinningPool).
	CPUExclusive CPUPolicy = "Exclusive"
)

// Loader builds an Engine from a mapped file. The Engine may keep slices of
// the mapping; the caller keeps the mapping open until Engine.Close.
type Loader func(m *gguf.Mapped, opts Options) (Engine, error)

var (
	mu      sync.RWMutex
	loaders = map[string]Loader{}
)

// Register makes a loader available for an architecture; packages that
// implement one call it from init.
func Register(architecture string, l Loader) {
	mu.Lock()
	defer mu.Unlock()
	loaders[architecture] = l
}

// Lookup returns the loader registered for an architecture, for tools and
// tests that drive a loader directly (the load-path fuzz test hands every
// input to every loader, whatever its general.architecture says).
func Lookup(architecture string) (Loader, bool) {
	mu.RLock()
	defer mu.RUnlock()
	l, ok := loaders[architecture]
	return l, ok
}

// Architectures lists the architectures this build can run.
func Architectures() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(loaders))
	for a := range loaders {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// Expect is what the SLMModel declares about the file; empty fields are not checked.
type Expect struct {
	Architecture string
	Quantization string
	SizeBytes    int64
}

// Load maps and validates the GGUF file at path, checks it against what the
// SLMModel declares, and hands it to its architecture's loader. The returned
// Engine owns the mapping: Close unmaps it.
//
// An error is at most MaxErrorLength bytes: it may quote strings from the
// file (an architecture, a token, a key), which can be megabytes long, and
// the daemon puts it in its log, /status and the termination message.
func Load(path string, want Expect, opts Options) (Engine, error) {
	m, err := gguf.Open(path)
	if err != nil {
		return nil, cut(err)
	}
	e, err := load(m, want, opts)
	if err != nil {
		_ = m.Close()
		return nil, cut(err)
	}
	return &owned{Engine: e, m: m}, nil
}

// MaxErrorLength bounds the text of the errors of Load.
const MaxErrorLength = 1024

// cutError is an error whose text is cut to MaxErrorLength; errors.Is and
// errors.As still see the error it wraps.
type cutError struct{ err error }

func (e cutError) Error() string {
	s := e.err.Error()
	if len(s) > MaxErrorLength {
		return s[:MaxErrorLength-3] + "..."
	}
	return s
}

func (e cutError) Unwrap() error { return e.err }

func cut(err error) error {
	if len(err.Error()) <= MaxErrorLength {
		return err
	}
	return cutError{err}
}

func load(m *gguf.Mapped, want Expect, opts Options) (Engine, error) {
	arch, quant := m.Architecture(), m.Quantization()
	var problems []string
	if want.Architecture != "" && want.Architecture != arch {
		problems = append(problems, fmt.Sprintf("the file's architecture is %q, the SLMModel declares %q", arch, want.Architecture))
	}
	if want.Quantization != "" && want.Quantization != quant {
		problems = append(problems, fmt.Sprintf("the file's quantization is %q, the SLMModel declares %q", quant, want.Quantization))
	}
	if want.SizeBytes > 0 {
		if size := m.Size(); size != want.SizeBytes {
			problems = append(problems, fmt.Sprintf("the file has %d bytes, the SLMModel declares %d", size, want.SizeBytes))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrUnsupported, strings.Join(problems, "; "))
	}
	l, ok := Lookup(arch)
	if !ok {
		return nil, fmt.Errorf("%w: architecture %q is not supported by this build of inferd (it runs: %s)", ErrUnsupported, arch, strings.Join(Architectures(), ", "))
	}
	return l(m, opts)
}

// owned closes the mapping with the engine.
type owned struct {
	Engine
	m *gguf.Mapped
}

// Unwrap returns the architecture's own Engine.
func (o *owned) Unwrap() Engine { return o.Engine }

func (o *owned) Close() error {
	return errors.Join(o.Engine.Close(), o.m.Close())
}

// Contains reports whether ids holds id; a helper for IsEnd implementations.
func Contains(ids []int32, id int32) bool { return slices.Contains(ids, id) }
