package hfjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/slmops/slmops/inferd/engine/tokenizer"
	"github.com/slmops/slmops/inferd/gguf"
)

// llama3Split is the Split step of Llama 3's pre-tokenizer.
var llama3Split = map[string]any{
	"type":     "Split",
	"pattern":  map[string]any{"Regex": `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`},
	"behavior": "Isolated", "invert": false,
}

var byteLevelStep = map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}

// byteLevelJSON is a small Llama 3 style tokenizer.json: id 3 is a hole,
// 4 and 5 are added tokens, one special and one not.
func byteLevelJSON() map[string]any {
	return map[string]any{
		"added_tokens": []any{
			map[string]any{"id": 4, "content": "<|begin_of_text|>", "special": true},
			map[string]any{"id": 5, "content": "<tool>", "special": false},
			map[string]any{"id": 6, "content": "<|fim|>", "special": false},
		},
		"normalizer":    nil,
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{llama3Split, byteLevelStep}},
		"post_processor": map[string]any{"type": "Sequence", "processors": []any{
			map[string]any{"type": "ByteLevel"},
			map[string]any{"type": "TemplateProcessing", "single": []any{
				map[string]any{"SpecialToken": map[string]any{"id": "<|begin_of_text|>", "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
			}},
		}},
		"model": map[string]any{
			"type": "BPE", "byte_fallback": false, "ignore_merges": true,
			"vocab":  map[string]any{"a": 0, "b": 1, "ab": 2},
			"merges": []any{"a b"},
		},
	}
}

// gemmaJSON is a small Gemma style tokenizer.json: SentencePiece BPE with
// byte fallback and no space prefix.
func gemmaJSON() map[string]any {
	return map[string]any{
		"added_tokens": []any{
			map[string]any{"id": 0, "content": "<pad>", "special": true},
			map[string]any{"id": 1, "content": "<eos>", "special": true},
			map[string]any{"id": 2, "content": "<bos>", "special": true},
			map[string]any{"id": 3, "content": "<unk>", "special": true},
			map[string]any{"id": 4, "content": "<unused0>", "special": false},
			map[string]any{"id": 5, "content": "▁▁", "special": false},
		},
		"normalizer":    map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"},
		"pre_tokenizer": map[string]any{"type": "Split", "pattern": map[string]any{"String": " "}, "behavior": "MergedWithPrevious", "invert": false},
		"post_processor": map[string]any{"type": "TemplateProcessing", "single": []any{
			map[string]any{"SpecialToken": map[string]any{"id": "<bos>", "type_id": 0}},
			map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
		}},
		"model": map[string]any{
			"type": "BPE", "byte_fallback": true, "unk_token": "<unk>",
			"vocab": map[string]any{
				"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<unused0>": 4, "▁▁": 5, "<0x41>": 6,
				"▁h": 7, "▁hi": 8, "hi": 9, "▁": 10, "h": 11, "i": 12,
			},
			// Hugging Face's converter sorts the rules by the score of the
			// piece they make: "▁h" before "▁hi" before "hi".
			"merges": []any{[]any{"▁", "▁"}, []any{"▁", "h"}, []any{"▁h", "i"}, []any{"▁", "hi"}, []any{"h", "i"}},
		},
	}
}

func encode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConvert(t *testing.T) {
	tests := map[string]struct {
		tokenizer, config map[string]any
		want              *Vocabulary
	}{
		"Llama 3: byte-level BPE, added tokens typed as llama.cpp's converter types them, a hole padded": {
			tokenizer: byteLevelJSON(),
			config: map[string]any{
				"bos_token":     "<|begin_of_text|>",
				"eos_token":     map[string]any{"content": "<|fim|>", "special": true},
				"chat_template": "{{ messages }}",
			},
			want: &Vocabulary{
				Model: "gpt2", Pre: "llama-bpe",
				Tokens:     []string{"a", "b", "ab", "[PAD3]", "<|begin_of_text|>", "<tool>", "<|fim|>"},
				Types:      []int32{TypeNormal, TypeNormal, TypeNormal, TypeUnused, TypeControl, TypeUserDefined, TypeControl},
				Merges:     []string{"a b"},
				SpecialIDs: map[string]uint32{"bos": 4, "eos": 6},
				AddBOS:     ptr(true), ChatTemplate: "{{ messages }}",
			},
		},
		"Qwen: NFC, merges as pairs with a space inside, add_bos_token false, no BOS": {
			tokenizer: func() map[string]any {
				j := byteLevelJSON()
				split := map[string]any{}
				for k, v := range llama3Split {
					split[k] = v
				}
				split["pattern"] = map[string]any{"Regex": `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`}
				j["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{split, byteLevelStep}}
				j["normalizer"] = map[string]any{"type": "NFC"}
				j["post_processor"] = map[string]any{"type": "ByteLevel"}
				m := j["model"].(map[string]any)
				m["ignore_merges"] = false
				m["merges"] = []any{[]any{"a", "b"}, []any{"a b", "c"}}
				return j
			}(),
			config: map[string]any{"add_bos_token": false, "bos_token": nil, "eos_token": "<|fim|>", "pad_token": "<tool>"},
			want: &Vocabulary{
				Model: "gpt2", Pre: "qwen2",
				Tokens:     []string{"a", "b", "ab", "[PAD3]", "<|begin_of_text|>", "<tool>", "<|fim|>"},
				Types:      []int32{TypeNormal, TypeNormal, TypeNormal, TypeUnused, TypeControl, TypeUserDefined, TypeControl},
				Merges:     []string{"a b", "a\u0120b c"},
				SpecialIDs: map[string]uint32{"eos": 6, "pad": 5},
				AddBOS:     ptr(false),
			},
		},
		"GPT-2: ByteLevel alone, no config": {
			tokenizer: func() map[string]any {
				j := byteLevelJSON()
				j["pre_tokenizer"] = map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}
				j["post_processor"] = nil
				j["model"].(map[string]any)["ignore_merges"] = false
				return j
			}(),
			want: &Vocabulary{
				Model: "gpt2", Pre: "gpt-2",
				Tokens:     []string{"a", "b", "ab", "[PAD3]", "<|begin_of_text|>", "<tool>", "<|fim|>"},
				Types:      []int32{TypeNormal, TypeNormal, TypeNormal, TypeUnused, TypeControl, TypeUserDefined, TypeControl},
				Merges:     []string{"a b"},
				SpecialIDs: map[string]uint32{},
			},
		},
		"Gemma: SentencePiece scores from merge ranks, byte and unknown tokens, user-defined spaces, no space prefix": {
			tokenizer: gemmaJSON(),
			config: map[string]any{
				"add_bos_token": true, "add_eos_token": false,
				"bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>",
				"chat_template": []any{
					map[string]any{"name": "default", "template": "{{ a }}"},
					map[string]any{"name": "tool use", "template": "{{ b }}"},
				},
			},
			want: &Vocabulary{
				Model: "llama", Pre: "default",
				Tokens: []string{"<pad>", "<eos>", "<bos>", "<unk>", "<unused0>", "  ", "<0x41>", "▁h", "▁hi", "hi", "▁", "h", "i"},
				Types: []int32{TypeControl, TypeControl, TypeControl, TypeControl, TypeControl, TypeUserDefined, TypeByte,
					TypeNormal, TypeNormal, TypeNormal, TypeNormal, TypeNormal, TypeNormal},
				// Added tokens -1000; a piece that a rule makes minus the
				// rule's rank; the others minus (number of rules + id).
				Scores:     []float32{-1000, -1000, -1000, -1000, -1000, -1000, -11, -1, -2, -4, -15, -16, -17},
				SpecialIDs: map[string]uint32{"bos": 2, "eos": 1, "unk": 3, "pad": 0},
				AddBOS:     ptr(true), AddEOS: ptr(false), AddSpacePrefix: ptr(false),
				ChatTemplate: "{{ a }}", ChatTemplates: map[string]string{"tool_use": "{{ b }}"},
			},
		},
		"Llama 2 style SentencePiece: Prepend makes a space prefix": {
			tokenizer: func() map[string]any {
				j := gemmaJSON()
				j["normalizer"] = map[string]any{"type": "Sequence", "normalizers": []any{
					map[string]any{"type": "Prepend", "prepend": "▁"},
					map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"},
				}}
				j["pre_tokenizer"] = nil
				return j
			}(),
			want: &Vocabulary{
				Model: "llama", Pre: "default",
				Tokens: []string{"<pad>", "<eos>", "<bos>", "<unk>", "<unused0>", "  ", "<0x41>", "▁h", "▁hi", "hi", "▁", "h", "i"},
				Types: []int32{TypeControl, TypeControl, TypeControl, TypeControl, TypeControl, TypeUserDefined, TypeByte,
					TypeNormal, TypeNormal, TypeNormal, TypeNormal, TypeNormal, TypeNormal},
				Scores:     []float32{-1000, -1000, -1000, -1000, -1000, -1000, -11, -1, -2, -4, -15, -16, -17},
				SpecialIDs: map[string]uint32{"bos": 2},
				AddBOS:     ptr(true), AddSpacePrefix: ptr(true),
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var config []byte
			if tc.config != nil {
				config = encode(t, tc.config)
			}
			got, err := Convert(encode(t, tc.tokenizer), config)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Convert (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConvertErrors(t *testing.T) {
	with := func(base func() map[string]any, edit func(j map[string]any)) []byte {
		j := base()
		edit(j)
		b, _ := json.Marshal(j)
		return b
	}
	model := func(j map[string]any) map[string]any { return j["model"].(map[string]any) }
	tests := map[string]struct {
		tokenizer []byte
		config    string
		is        error
		want      string // a part of the message that says what to fix
	}{
		"tokenizer.json is not JSON": {
			tokenizer: []byte("{"), is: ErrInvalid, want: "tokenizer.json: unexpected end of JSON input",
		},
		"tokenizer_config.json is not JSON": {
			tokenizer: with(byteLevelJSON, func(map[string]any) {}), config: "[", is: ErrInvalid, want: "tokenizer_config.json:",
		},
		"a WordPiece model": {
			tokenizer: with(byteLevelJSON, func(j map[string]any) { model(j)["type"] = "WordPiece" }),
			is:        ErrUnsupported, want: `model.type "WordPiece": only BPE tokenizers convert`,
		},
		"an empty vocabulary": {
			tokenizer: with(byteLevelJSON, func(j map[string]any) { model(j)["vocab"] = map[string]any{} }),
			is:        ErrInvalid, want: "model.vocab is missing or empty",
		},
		"no merges": {
			tokenizer: with(byteLevelJSON, func(j map[string]any) { delete(model(j), "merges") }),
			is:        ErrInvalid, want: "model.merges is missing",
		},
		"a merge without a space": {
			tokenizer: with(byteLevelJSON, func(j map[string]any) { model(j)["merges"] = []any{"a b", "ab"} }),
			is:        ErrInvalid, want: `model.merges[1] "ab" is not two tokens separated by a space`,
		},
		"a negative token id": {
			tokenizer: with(byteLevelJSON, func(j map[string]any) { model(j)["vocab"].(map[string]any)["c"] = -1 }),
			is:        ErrInvalid, want: `model.vocab token "c" has id -1, outside 0..2097151`,
		},
		"an added token far beyond the vocabulary": {
			tokenizer: with(byteLevelJSON, func(j map[string]any) {
				j["added_tokens"] = append(j["added_tokens"].([]any), map[string]any{"id": 1 << 30, "content": "<x>"})
			}),
			is: ErrInvalid, want: `added token "<x>" has id 1073741824, outside 0..2097151`,
		},
		"two ids with the same text": {
			tokenizer: with(byteLevelJSON, func(j map[string]any) {
				j["added_tokens"] = append(j["added_tokens"].([]any), map[string]any{"id": 3, "content": "ab"})
			}),
			is: ErrInvalid, want: `tokens 2 and 3 are both "ab"`,
		},
		"an unknown pre-tokenizer pattern": {
			tokenizer: with(byteLevelJSON, func(j map[string]any) {
				j["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
					map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `\w+`}, "behavior": "Isolated"}, byteLevelStep}}
			}),
			is: ErrUnsupported, want: `pre_tokenizer Split regex "\\w+" is none of Llama 3's or Qwen2's patterns`,
		},
		"a pre-tokenizer of another kind": {
			tokenizer: with(byteLevelJSON, func(j map[string]any) { j["pre_tokenizer"] = map[string]any{"type": "Whitespace"} }),
			is:        ErrUnsupported, want: "pre_tokenizer [Whitespace]: want a Split on a regex then ByteLevel",
		},
		"ignore_merges that llama.cpp's pre-tokenizer contradicts": {
			tokenizer: with(byteLevelJSON, func(j map[string]any) { model(j)["ignore_merges"] = false }),
			is:        ErrUnsupported, want: `model.ignore_merges is false, but llama.cpp's "llama-bpe" pre-tokenizer implies true`,
		},
		"a lowercasing normalizer": {
			tokenizer: with(byteLevelJSON, func(j map[string]any) { j["normalizer"] = map[string]any{"type": "Lowercase"} }),
			is:        ErrUnsupported, want: `normalizer "Lowercase" on a byte-level BPE tokenizer`,
		},
		"byte fallback without SentencePiece's spaces": {
			tokenizer: with(gemmaJSON, func(j map[string]any) { j["normalizer"] = nil; j["pre_tokenizer"] = nil }),
			is:        ErrUnsupported, want: `without spaces as "▁"`,
		},
		"a BOS token that is not a token": {
			tokenizer: with(byteLevelJSON, func(map[string]any) {}), config: `{"bos_token": "<s>"}`,
			is: ErrInvalid, want: `tokenizer_config.json bos_token "<s>" is not a token of tokenizer.json`,
		},
		"a BOS token that is a number": {
			tokenizer: with(byteLevelJSON, func(map[string]any) {}), config: `{"bos_token": 1}`,
			is: ErrInvalid, want: `tokenizer_config.json bos_token is 1, want a string or an object with "content"`,
		},
		"add_eos_token without an EOS token": {
			tokenizer: with(byteLevelJSON, func(map[string]any) {}), config: `{"add_eos_token": true}`,
			is: ErrInvalid, want: "add_eos_token is true but there is no eos_token",
		},
		"add_bos_token that is not a bool": {
			tokenizer: with(byteLevelJSON, func(map[string]any) {}), config: `{"add_bos_token": "yes"}`,
			is: ErrInvalid, want: `add_bos_token is "yes", want true or false`,
		},
		"a chat template that is a number": {
			tokenizer: with(byteLevelJSON, func(map[string]any) {}), config: `{"chat_template": 3}`,
			is: ErrInvalid, want: "chat_template is 3, want a string or a list",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Convert(tc.tokenizer, []byte(tc.config))
			if err == nil {
				t.Fatalf("Convert succeeded; want an error with %q", tc.want)
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Convert error %q; want %v with %q", err, tc.is, tc.want)
			}
		})
	}
}

// TestWriteGGUF writes the converted vocabularies as vocabulary-only files,
// reads them back and tokenizes with package tokenizer.
func TestWriteGGUF(t *testing.T) {
	tests := map[string]struct {
		tokenizer map[string]any
		config    string
		text      string
		want      []int32
	}{
		"byte-level: BOS added, merges applied": {
			tokenizer: byteLevelJSON(), config: `{"bos_token": "<|begin_of_text|>"}`,
			text: "ab", want: []int32{4, 2},
		},
		"SentencePiece: no space prefix, the highest-scoring merge first, a user-defined token matched, byte fallback": {
			// "▁hi" (rank 2) wins over "hi" (rank 4) because "▁h" (rank 1)
			// merges first; "  " is the user-defined token 5; "A" has only
			// its byte token.
			tokenizer: gemmaJSON(), config: `{"bos_token": "<bos>", "add_bos_token": true}`,
			text: "hi hi  A", want: []int32{2, 9, 8, 5, 6},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v, err := Convert(encode(t, tc.tokenizer), []byte(tc.config))
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := v.WriteGGUF(&buf, "llama"); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Tensors) != 0 || f.Architecture() != "llama" {
				t.Errorf("%d tensors, architecture %q; want none and llama", len(f.Tensors), f.Architecture())
			}
			tok, err := tokenizer.FromGGUF(f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, tok.Encode(tc.text, true)); diff != "" {
				t.Errorf("Encode(%q) (-want +got):\n%s", tc.text, diff)
			}
		})
	}
}
