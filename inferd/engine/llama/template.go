package llama

import (
	"fmt"
	"strings"

	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/engine/tokenizer"
)

// Template is a chat format. Jinja templates from the model's metadata are
// not executed; the common formats are recognised by their markers and
// rendered by Go code, which can keep markers and user text apart.
type Template struct {
	// Name is chatml, llama2 or zephyr.
	Name   string
	render func(messages []engine.Message) []segment
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
	"zephyr": {Name: "zephyr", render: zephyr},
}

// Encode renders messages and tokenizes them, the beginning-of-sequence
// token first when the model uses one.
func (t Template) Encode(tok *tokenizer.Tokenizer, messages []engine.Message) ([]int32, error) {
	if len(messages) == 0 {
		return nil, fmt.Errorf("%w: no messages", engine.ErrInvalidInput)
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

// chooseTemplate picks the override, else the format the model's
// tokenizer.chat_template is written for, else one its vocabulary suits.
func chooseTemplate(m meta, tok *tokenizer.Tokenizer, override string) (Template, error) {
	if override != "" {
		t, ok := Templates[override]
		if !ok {
			return Template{}, fmt.Errorf("%w: chat template %q (chatml, llama2, zephyr)", engine.ErrUnsupported, override)
		}
		return t, nil
	}
	if v, ok := m.Get("tokenizer.chat_template"); ok {
		if src, ok := v.(string); ok {
			switch {
			case strings.Contains(src, "<|im_start|>"):
				return Templates["chatml"], nil
			case strings.Contains(src, "<|user|>"):
				return Templates["zephyr"], nil
			case strings.Contains(src, "[INST]"):
				return Templates["llama2"], nil
			}
		}
	}
	if _, ok := tok.TokenID("<|im_start|>"); ok {
		return Templates["chatml"], nil
	}
	return Templates["zephyr"], nil
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
