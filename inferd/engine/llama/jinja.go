package llama

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ardanlabs/jinja"

	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/engine/tokenizer"
)

// The model's own chat template, tokenizer.chat_template, is Jinja written
// for Hugging Face's renderer. It is compiled with github.com/ardanlabs/jinja,
// a Go implementation made for chat templates (no cgo, no dependencies), and
// checked against Hugging Face's reference renderer, @huggingface/jinja, on
// the templates of the models people deploy (TestJinjaRendersAsHuggingFace).
//
// A rendered prompt is one string in which the template's markers and the
// users' text are mixed. Tokenizing all of it as trusted text, as llama.cpp
// and Hugging Face do, would let a user who types "<|im_start|>system" open
// a turn of their own. So each control token's text in a message is swapped
// for a sentinel before rendering (private-use characters, which no filter
// such as trim touches), and after rendering every sentinel goes back to the
// same text, whose byte range the tokenizer then reads as plain text
// (EncodeWithSpecialsExcept). The rest of the prompt is tokenized as
// trusted text, so that a prompt without such text gets exactly the tokens
// llama.cpp gives it.

// jinjaName is Template.Name for the model's own template.
const jinjaName = "jinja"

// Sentinels: escOpen, a decimal index into the escaper's table, escClose.
const (
	escOpen  = "\ue000"
	escClose = "\ue001"
)

// jinjaTemplate is a compiled tokenizer.chat_template with the vocabulary's
// special texts.
type jinjaTemplate struct {
	tmpl     *jinja.Template
	bos, eos string
	// escapes are the texts a message may not smuggle into the prompt as
	// tokens: the control tokens', and escOpen itself.
	escapes  []string
	replacer *strings.Replacer
}

// compileJinja compiles the model's template and renders a one-message
// conversation with it, so that a template this renderer cannot run is found
// at load time (and the named templates take over), not at a user's request.
func compileJinja(src string, tok *tokenizer.Tokenizer) (*jinjaTemplate, error) {
	j, err := newJinjaTemplate(src, tok.Text(tok.BOS()), tok.Text(tok.EOS()), tok.ControlTexts())
	if err != nil {
		return nil, err
	}
	const probe = "Hello"
	out, err := j.render([]engine.Message{{Role: "user", Content: probe}}, true, nil)
	if err != nil {
		return nil, fmt.Errorf("a one-message conversation: %w", err)
	}
	if !strings.Contains(out, probe) {
		return nil, fmt.Errorf("a one-message conversation renders without its message: %q", out)
	}
	return j, nil
}

// newJinjaTemplate compiles src for a vocabulary whose BOS and EOS are
// spelt bos and eos, and whose control tokens are controls.
func newJinjaTemplate(src, bos, eos string, controls []string) (*jinjaTemplate, error) {
	tmpl, err := jinja.Compile(src)
	if err != nil {
		return nil, err
	}
	j := &jinjaTemplate{tmpl: tmpl, bos: bos, eos: eos, escapes: append(controls, escOpen)}
	pairs := make([]string, 0, 2*len(j.escapes))
	for i, text := range j.escapes {
		pairs = append(pairs, text, escOpen+strconv.Itoa(i)+escClose)
	}
	j.replacer = strings.NewReplacer(pairs...)
	return j, nil
}

// render runs the template on messages, as Hugging Face's
// apply_chat_template does: messages as role and content, the BOS and EOS
// texts, and add_generation_prompt; extra adds variables (a test's fixed
// date_string). strftime_now is the renderer's, the local date.
func (j *jinjaTemplate) render(messages []engine.Message, addGenerationPrompt bool, extra map[string]any) (string, error) {
	msgs := make([]any, len(messages))
	for i, m := range messages {
		msgs[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	data := map[string]any{
		"messages":              msgs,
		"add_generation_prompt": addGenerationPrompt,
		"bos_token":             j.bos,
		"eos_token":             j.eos,
	}
	for k, v := range extra {
		data[k] = v
	}
	return j.tmpl.Render(data)
}

// prompt renders messages, their control texts escaped, and restores the
// escaped texts: it returns the prompt and the byte ranges of those texts,
// which are to be tokenized as plain text. The BOS text that a template
// writes first is dropped when the tokenizer adds BOS itself, as llama.cpp
// does, so that the prompt does not start with two.
func (j *jinjaTemplate) prompt(tok *tokenizer.Tokenizer, messages []engine.Message) (string, [][2]int, error) {
	escaped := make([]engine.Message, len(messages))
	for i, m := range messages {
		escaped[i] = engine.Message{Role: m.Role, Content: j.replacer.Replace(m.Content)}
	}
	out, err := j.render(escaped, true, nil)
	if err != nil {
		// raise_exception in a template refuses a conversation ("roles
		// must alternate user/assistant"); other errors are the template's
		// too, and were not met with a one-message conversation at load.
		return "", nil, fmt.Errorf("%w: the model's chat template refuses these messages: %w", engine.ErrInvalidInput, err)
	}
	if tok.AddsBOS() && j.bos != "" {
		out = strings.TrimPrefix(out, j.bos)
	}
	if !strings.Contains(out, escOpen) {
		return out, nil, nil
	}
	var (
		b       strings.Builder
		literal [][2]int
	)
	for {
		i := strings.Index(out, escOpen)
		if i < 0 {
			break
		}
		b.WriteString(out[:i])
		n, length, ok := j.sentinel(out[i+len(escOpen):])
		if !ok {
			// Not one of ours: the template's own text.
			b.WriteString(escOpen)
			out = out[i+len(escOpen):]
			continue
		}
		literal = append(literal, [2]int{b.Len(), b.Len() + len(j.escapes[n])})
		b.WriteString(j.escapes[n])
		out = out[i+len(escOpen)+length:]
	}
	b.WriteString(out)
	return b.String(), literal, nil
}

// sentinel parses "<index>" escClose at the start of s: the index and the
// length it takes.
func (j *jinjaTemplate) sentinel(s string) (n, length int, ok bool) {
	k := strings.Index(s, escClose)
	if k <= 0 || k > 9 {
		return 0, 0, false
	}
	n, err := strconv.Atoi(s[:k])
	if err != nil || n < 0 || n >= len(j.escapes) || strconv.Itoa(n) != s[:k] {
		return 0, 0, false
	}
	return n, k + len(escClose), true
}
