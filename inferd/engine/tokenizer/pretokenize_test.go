package tokenizer

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func split(pre preTokenizer, text string) []string {
	words := []string{}
	pre(text, func(start, end int) { words = append(words, text[start:end]) })
	return words
}

func TestSplitGPT2(t *testing.T) {
	tests := map[string]struct {
		text string
		want []string
	}{
		"a space leads the word after it":                   {text: "Hello world", want: []string{"Hello", " world"}},
		"contractions split off":                            {text: "I'm here, they'll see", want: []string{"I", "'m", " here", ",", " they", "'ll", " see"}},
		"contractions are case-sensitive":                   {text: "I'M", want: []string{"I", "'", "M"}},
		"a run of spaces keeps its last space for the word": {text: "a   b", want: []string{"a", "  ", " b"}},
		"spaces at the end stay together":                   {text: "a  ", want: []string{"a", "  "}},
		"a tab before a word is a word of its own":          {text: "a \tb", want: []string{"a", " ", "\t", "b"}},
		"newlines split like other whitespace":              {text: "a\n\nb", want: []string{"a", "\n", "\n", "b"}},
		"numbers stay whole and take a space":               {text: "pi 3.14159", want: []string{"pi", " 3", ".", "14159"}},
		"symbols run together and take a space":             {text: "hi !!! ?", want: []string{"hi", " !!!", " ?"}},
		"letters are Unicode letters":                       {text: "¿Qué tal?", want: []string{"¿", "Qué", " tal", "?"}},
		"a combining mark is not a letter":                  {text: "e\u0301t", want: []string{"e", "\u0301", "t"}},
		"an invalid byte is a symbol":                       {text: "a\xffb", want: []string{"a", "\xff", "b"}},
		"only an ASCII space leads a word":                  {text: "a\u00a0b", want: []string{"a", "\u00a0", "b"}},
		"the empty text has no words":                       {text: "", want: []string{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, split(splitGPT2, tc.text)); diff != "" {
				t.Errorf("splitGPT2(%q) (-want +got):\n%s", tc.text, diff)
			}
		})
	}
}

func TestSplitQwen2(t *testing.T) {
	tests := map[string]struct {
		text string
		want []string
	}{
		"a space leads the word after it":                     {text: "Hello world", want: []string{"Hello", " world"}},
		"contractions are case-insensitive":                   {text: "I'M here", want: []string{"I", "'M", " here"}},
		"any one symbol may lead a word":                      {text: "f(x)=\"abc\"", want: []string{"f", "(x", ")=\"", "abc", "\""}},
		"a tab leads a word too":                              {text: "a\tb", want: []string{"a", "\tb"}},
		"numbers split into single digits":                    {text: "x 2024", want: []string{"x", " ", "2", "0", "2", "4"}},
		"symbols take the line breaks after them":             {text: "hi!\n\nthere", want: []string{"hi", "!\n\n", "there"}},
		"whitespace up to the last line break stays together": {text: "x  \n\n  y", want: []string{"x", "  \n\n", " ", " y"}},
		"CRLF is one word":                                    {text: "a\r\nb", want: []string{"a", "\r\n", "b"}},
		"a line break does not lead a word":                   {text: "\nb", want: []string{"\n", "b"}},
		"spaces at the end stay together":                     {text: "a  ", want: []string{"a", "  "}},
		"a space leads a run of symbols":                      {text: "a ?!", want: []string{"a", " ?!"}},
		"letters are Unicode letters":                         {text: "¿Qué?", want: []string{"¿Qué", "?"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, split(splitQwen2, tc.text)); diff != "" {
				t.Errorf("splitQwen2(%q) (-want +got):\n%s", tc.text, diff)
			}
		})
	}
}

func TestSplitLlama3(t *testing.T) {
	tests := map[string]struct {
		text string
		want []string
	}{
		"numbers go in threes from the left":     {text: "x 1234567", want: []string{"x", " ", "123", "456", "7"}},
		"other digits count as numbers too":      {text: "١٢٣٤", want: []string{"١٢٣", "٤"}},
		"a symbol leads a word as in qwen2":      {text: "f(x)", want: []string{"f", "(x", ")"}},
		"contractions are case-insensitive":      {text: "I'M", want: []string{"I", "'M"}},
		"line breaks stay with the space before": {text: "a \n\nb", want: []string{"a", " \n\n", "b"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, split(splitLlama3, tc.text)); diff != "" {
				t.Errorf("splitLlama3(%q) (-want +got):\n%s", tc.text, diff)
			}
		})
	}
}

func TestSplitSmolLM(t *testing.T) {
	tests := map[string]struct {
		text string
		want []string
	}{
		"every digit is a piece":             {text: "x 2024!", want: []string{"x", " ", "2", "0", "2", "4", "!"}},
		"the rest splits as GPT-2's pattern": {text: "It's fine", want: []string{"It", "'s", " fine"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, split(splitSmolLM, tc.text)); diff != "" {
				t.Errorf("splitSmolLM(%q) (-want +got):\n%s", tc.text, diff)
			}
		})
	}
}

func TestLlama3WholeWords(t *testing.T) {
	// "abc" is a token, but no merge makes it: Llama 3's pre-tokenizer
	// takes a word that is a token whole, the GPT-2 one merges.
	v, meta := bpeVocab("abc", "a b")
	v.add("abc", 0, typeNormal)
	meta[keyTokens], meta[keyTokenType] = v.tokens, v.types
	tok := mustTokenizer(t, meta)
	if diff := cmp.Diff(v.ids(t, "ab", "c"), tok.Encode("abc", false)); diff != "" {
		t.Errorf("gpt-2 Encode(abc) (-want +got):\n%s", diff)
	}
	meta[keyPre] = "llama-bpe"
	tok = mustTokenizer(t, meta)
	if diff := cmp.Diff(v.ids(t, "abc"), tok.Encode("abc", false)); diff != "" {
		t.Errorf("llama-bpe Encode(abc) (-want +got):\n%s", diff)
	}
}

func TestSplitDefault(t *testing.T) {
	tests := map[string]struct {
		text string
		want []string
	}{
		"a space leads the word after it":                 {text: "Hello world", want: []string{"Hello", " world"}},
		"an apostrophe is punctuation, not a contraction": {text: "It's", want: []string{"It", "'", "s"}},
		"punctuation never takes a space":                 {text: "hi !!! ?", want: []string{"hi", " ", "!!!", " ", "?"}},
		"a space before a number stands alone":            {text: "pi 3.14159", want: []string{"pi", " ", "3", ".", "141", "59"}},
		"ASCII digits go in threes from the left":         {text: "1234567890", want: []string{"123", "456", "789", "0"}},
		"a symbol that is not punctuation takes a space":  {text: "a ™ b", want: []string{"a", " ™", " b"}},
		"the backtick is not in the punctuation class":    {text: "x `y`", want: []string{"x", " `", "y", "`"}},
		"$+<=>^~| are":                                      {text: "a+=b", want: []string{"a", "+=", "b"}},
		"Unicode punctuation splits too":                    {text: "¿Qué tal?", want: []string{"¿", "Qué", " tal", "?"}},
		"other digits are numbers but not in threes":        {text: "x ١٢٣٤", want: []string{"x", " ", "١٢٣٤"}},
		"a run of spaces keeps its last space for the word": {text: "a   b", want: []string{"a", "  ", " b"}},
		"spaces before punctuation end a piece":             {text: "a  (b", want: []string{"a", "  ", "(", "b"}},
		"the empty text has no words":                       {text: "", want: []string{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, split(splitDefault, tc.text)); diff != "" {
				t.Errorf("splitDefault(%q) (-want +got):\n%s", tc.text, diff)
			}
		})
	}
}

// TestSplitCoversText checks on awkward inputs that the pre-tokenizers
// return words that are non-empty and join back into the text.
func TestSplitCoversText(t *testing.T) {
	inputs := []string{
		"", " ", "\n", " \t\n\r\v\f", "'", "''s'", "'re've'll'd'm't", "a'S", "\xff\xfe", "€ 1,000.00 !!",
		"日本語のテキスト 123", "emoji 🦙🦙 x", strings.Repeat("  \n", 50), "trailing   ",
	}
	for name, pre := range map[string]preTokenizer{"gpt2": splitGPT2, "qwen2": splitQwen2, "default": splitDefault, "llama3": splitLlama3, "smollm": splitSmolLM} {
		for _, text := range inputs {
			words := split(pre, text)
			for _, w := range words {
				if w == "" {
					t.Errorf("%s split %q into an empty word: %q", name, text, words)
				}
			}
			if got := strings.Join(words, ""); got != text {
				t.Errorf("%s split %q into %q, which joins to %q", name, text, words, got)
			}
		}
	}
}

func TestQwen2Selected(t *testing.T) {
	v, meta := bpeVocab("1", "1 1")
	meta[keyPre] = "qwen2"
	tok := mustTokenizer(t, meta)
	// With qwen2 "11" is two words, so the merge cannot join the digits.
	if diff := cmp.Diff(v.ids(t, "1", "1"), tok.Encode("11", false)); diff != "" {
		t.Errorf("qwen2 Encode(11) (-want +got):\n%s", diff)
	}
	// "gpt-2", "default" and no name at all keep "11" one word (the
	// GPT-2 pattern, or llama.cpp's default one, which cuts digits in
	// threes).
	for _, pre := range []any{"gpt-2", "default", nil} {
		if pre == nil {
			delete(meta, keyPre)
		} else {
			meta[keyPre] = pre
		}
		tok = mustTokenizer(t, meta)
		if diff := cmp.Diff(v.ids(t, "11"), tok.Encode("11", false)); diff != "" {
			t.Errorf("pre-tokenizer %v: Encode(11) (-want +got):\n%s", pre, diff)
		}
	}
}

func TestDefaultSelected(t *testing.T) {
	v, meta := bpeVocab("1", "1 1", "11 11")
	tests := map[string]struct {
		pre  any // nil: no tokenizer.ggml.pre at all
		want []string
	}{
		"gpt-2 keeps a number whole":             {pre: "gpt-2", want: []string{"1111"}},
		"default cuts digits in threes":          {pre: "default", want: []string{"11", "1", "1"}},
		"no name is llama.cpp's default as well": {pre: nil, want: []string{"11", "1", "1"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			delete(meta, keyPre)
			if tc.pre != nil {
				meta[keyPre] = tc.pre
			}
			tok := mustTokenizer(t, meta)
			if diff := cmp.Diff(v.ids(t, tc.want...), tok.Encode("1111", false)); diff != "" {
				t.Errorf("Encode(1111) (-want +got):\n%s", diff)
			}
		})
	}
}
