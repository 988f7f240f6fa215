package tokenizer

import (
	"cmp"
	"slices"
)

// What a chat template renderer needs from the vocabulary: the texts of the
// special tokens it passes to a template, whether encoding adds BOS, and
// which texts in a message would become control tokens if the rendered
// prompt were tokenized as trusted text.

// Text returns the text of token id as the vocabulary spells it ("<s>",
// "<|im_start|>"), or "" for NoToken and ids outside the vocabulary.
func (t *Tokenizer) Text(id int32) string {
	if id < 0 || int(id) >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// AddsBOS reports whether Encode with addSpecial puts BOS first
// (tokenizer.ggml.add_bos_token, or the tokenizer model's default).
func (t *Tokenizer) AddsBOS() bool { return t.addBOS && t.bos != NoToken }

// ControlTexts lists the texts that EncodeWithSpecials turns into a token
// and Encode does not (control and unknown tokens), longest first, so that
// a replacer that tries them in order never takes a token for a shorter one
// it starts with.
func (t *Tokenizer) ControlTexts() []string {
	var out []string
	for id, text := range t.tokens {
		if text != "" && (t.types[id] == typeControl || t.types[id] == typeUnknown) {
			out = append(out, text)
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		if c := cmp.Compare(len(b), len(a)); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return slices.Compact(out)
}
