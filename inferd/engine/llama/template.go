package llama

import (
	"fmt"
	"strings"

	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/engine/tokenizer"
)

// Template is a chat format: the model's own tokenizer.chat_template,
// rendered as Jinja (jinja.go), or one of the common formats written in Go,
// which a model without a template, or with one that this renderer cannot
// run, gets by its template's markers or its vocabulary's. Both keep the
// template's markers and the users' text apart.
type Template struct {
	// Name is jinja (the model's own), or chatml, llama2, llama3, gemma,
	// phi3 or zephyr.
	Name   string
	render func(messages []engine.Message) []segment
	jinja  *jinjaTemplate
	// Fallback says why the model's own template is not used, when it has
	// one and Name is not jinja.
	Fallback string
}

// segment is a piece of a rendered prompt: a marker (which may be a
// control token) or text (which never becomes one).
type segment struct {
	text   string
	marker bool
}

// Templates are the chat formats by name.
var Templates = map[string]Template{
	"chatml": {Name: "chatml", render: chatML},
	"llama2": {Name: "llama2", render: llama2},
	"llama3": {Name: "llama3", render: llama3},
	"gemma":  {Name: "gemma", render: gemma},
	"phi3":   {Name: "phi3", render: phi3},
	"zephyr": {Name: "zephyr", render: zephyr},
}

// templateNames lists Templates for messages.
const templateNames = "chatml, llama2, llama3, gemma, phi3, zephyr"

// Encode renders messages and tokenizes them, the beginning-of-sequence
// token first when the model uses one.
func (t Template) Encode(tok *tokenizer.Tokenizer, messages []engine.Message) ([]int32, error) {
	if len(messages) == 0 {
		return nil, fmt.Errorf("%w: no messages", engine.ErrInvalidInput)
	}
	if t.jinja != nil {
		prompt, literal, err := t.jinja.prompt(tok, messages)
		if err != nil {
			return nil, err
		}
		ids := tok.EncodeWithSpecialsExcept(prompt, false, literal)
		if tok.AddsBOS() {
			ids = append([]int32{tok.BOS()}, ids...)
		}
		return ids, nil
	}
	var ids []int32
	for i, s := range t.render(messages) {
		if s.marker {
			ids = append(ids, tok.EncodeWithSpecials(s.text, i == 0)...)
		} else {
			ids = append(ids, tok.Encode(s.text, i == 0)...)
		}
	}
	return ids, nil
}

// chooseTemplate picks the override, else the model's
// tokenizer.chat_template, else the format that template is written for
// when it cannot be rendered here, else one the vocabulary suits.
func chooseTemplate(m meta, tok *tokenizer.Tokenizer, override string) (Template, error) {
	if override != "" {
		t, ok := Templates[override]
		if !ok {
			return Template{}, fmt.Errorf("%w: chat template %q (%s)", engine.ErrUnsupported, override, templateNames)
		}
		return t, nil
	}
	v, _ := m.Get("tokenizer.chat_template")
	src, _ := v.(string)
	if src == "" {
		return namedFor(src, tok), nil
	}
	j, err := compileJinja(src, tok)
	if err == nil {
		return Template{Name: jinjaName, jinja: j}, nil
	}
	t := namedFor(src, tok)
	t.Fallback = fmt.Sprintf("the model's chat template cannot be rendered here: %v", err)
	return t, nil
}

// namedFor is the named format that the model's template src is written
// for, else one its vocabulary suits.
func namedFor(src string, tok *tokenizer.Tokenizer) Template {
	switch {
	case strings.Contains(src, "<|im_start|>"):
		return Templates["chatml"]
	case strings.Contains(src, "<|start_header_id|>"):
		return Templates["llama3"]
	case strings.Contains(src, "<start_of_turn>"):
		return Templates["gemma"]
	case strings.Contains(src, "<|user|>") && strings.Contains(src, "<|end|>"):
		return Templates["phi3"]
	case strings.Contains(src, "<|user|>"):
		return Templates["zephyr"]
	case strings.Contains(src, "[INST]"):
		return Templates["llama2"]
	}
	// Without a template, the vocabulary's markers say the family.
	for _, family := range []struct{ marker, template string }{
		{"<|im_start|>", "chatml"}, {"<|start_header_id|>", "llama3"}, {"<start_of_turn>", "gemma"}, {"<|end|>", "phi3"},
	} {
		if _, ok := tok.TokenID(family.marker); ok {
			return Templates[family.template]
		}
	}
	return Templates["zephyr"]
}

// llama3 is Llama 3's format: each turn a header with the role, a blank
// line, the trimmed text and <|eot_id|>; BOS is the tokenizer's.
func llama3(msgs []engine.Message) []segment {
	var out []segment
	header := func(role string) {
		out = append(out, segment{"<|start_header_id|>", true}, segment{role, false}, segment{"<|end_header_id|>", true}, segment{"\n\n", false})
	}
	for _, m := range msgs {
		header(m.Role)
		out = append(out, segment{strings.TrimSpace(m.Content), false}, segment{"<|eot_id|>", true})
	}
	header("assistant")
	return out
}

// gemma is Gemma's format: <start_of_turn>user or model, the trimmed text,
// <end_of_turn>; Gemma has no system role, so a system message opens the
// first user turn, as its template does.
func gemma(msgs []engine.Message) []segment {
	var out []segment
	system := ""
	for _, m := range msgs {
		role, text := m.Role, strings.TrimSpace(m.Content)
		switch role {
		case "system":
			system = text + "\n\n"
			continue
		case "assistant":
			role = "model"
		case "user":
			text, system = system+text, ""
		}
		out = append(out, segment{"<start_of_turn>", true}, segment{role + "\n" + text, false}, segment{"<end_of_turn>", true}, segment{"\n", false})
	}
	return append(out, segment{"<start_of_turn>", true}, segment{"model\n", false})
}

// phi3 is Phi-3's format: <|role|>, a line break, the text, <|end|>.
func phi3(msgs []engine.Message) []segment {
	var out []segment
	for _, m := range msgs {
		out = append(out, segment{"<|" + m.Role + "|>", true}, segment{"\n" + m.Content, false}, segment{"<|end|>", true}, segment{"\n", false})
	}
	return append(out, segment{"<|assistant|>", true}, segment{"\n", false})
}

func chatML(msgs []engine.Message) []segment {
	var out []segment
	for _, m := range msgs {
		out = append(out, segment{"<|im_start|>", true}, segment{m.Role + "\n" + m.Content, false}, segment{"<|im_end|>", true}, segment{"\n", false})
	}
	return append(out, segment{"<|im_start|>", true}, segment{"assistant\n", false})
}

func zephyr(msgs []engine.Message) []segment {
	var out []segment
	for _, m := range msgs {
		out = append(out, segment{"<|" + m.Role + "|>", true}, segment{"\n" + m.Content, false}, segment{"</s>", true}, segment{"\n", false})
	}
	return append(out, segment{"<|assistant|>", true}, segment{"\n", false})
}

// llama2 is [INST] user [/INST] answer </s><s>[INST] ..., the system
// prompt folded into the first user turn.
func llama2(msgs []engine.Message) []segment {
	var out []segment
	system := ""
	first := true
	for _, m := range msgs {
		switch m.Role {
		case "system":
			system = m.Content
		case "user":
			text := m.Content
			if system != "" {
				text = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + text
				system = ""
			}
			if !first {
				out = append(out, segment{"<s>", true})
			}
			out = append(out, segment{"[INST]", true}, segment{" " + text + " ", false}, segment{"[/INST]", true})
			first = false
		case "assistant":
			out = append(out, segment{" " + m.Content + " ", false}, segment{"</s>", true})
		}
	}
	return out
}
