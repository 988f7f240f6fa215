package tokenizer

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeMeta is GGUF metadata built in a test.
type fakeMeta map[string]any

func (m fakeMeta) Get(key string) (any, bool) {
	v, ok := m[key]
	return v, ok
}

// vocab builds token arrays as the GGUF reader returns them (slices of the
// element type) and remembers each token's id.
type vocab struct {
	tokens []string
	scores []float32
	types  []int32
	id     map[string]int32
}

func newVocab() *vocab { return &vocab{id: map[string]int32{}} }

func (v *vocab) add(text string, score float32, typ tokenType) *vocab {
	v.id[text] = int32(len(v.tokens))
	v.tokens = append(v.tokens, text)
	v.scores = append(v.scores, score)
	v.types = append(v.types, int32(typ))
	return v
}

// spmVocab is a small SentencePiece vocabulary: <unk>, <s>, </s>, the 256
// byte tokens, then the given normal tokens with their scores.
func spmVocab(normal ...any) *vocab {
	v := newVocab().add("<unk>", 0, typeUnknown).add("<s>", 0, typeControl).add("</s>", 0, typeControl)
	for b := range 256 {
		v.add(fmt.Sprintf("<0x%02X>", b), 0, typeByte)
	}
	for i := 0; i < len(normal); i += 2 {
		v.add(normal[i].(string), float32(normal[i+1].(float64)), typeNormal)
	}
	return v
}

func (v *vocab) spmMeta() fakeMeta {
	return fakeMeta{
		keyModel:     "llama",
		keyTokens:    v.tokens,
		keyScores:    v.scores,
		keyTokenType: v.types,
		keyBOS:       uint32(1),
		keyEOS:       uint32(2),
		keyUnknown:   uint32(0),
	}
}

// bpeVocab is a small byte-level vocabulary: the alphabet characters of the
// given bytes, then the results of the merges, which are listed in rank
// order as "left right".
func bpeVocab(alphabet string, merges ...string) (*vocab, fakeMeta) {
	enc := ByteAlphabet()
	v := newVocab()
	for i := 0; i < len(alphabet); i++ {
		if _, ok := v.id[string(enc[alphabet[i]])]; !ok {
			v.add(string(enc[alphabet[i]]), 0, typeNormal)
		}
	}
	var ms []string
	for _, m := range merges {
		if _, ok := v.id[strings.ReplaceAll(m, " ", "")]; !ok {
			v.add(strings.ReplaceAll(m, " ", ""), 0, typeNormal)
		}
		ms = append(ms, m)
	}
	return v, fakeMeta{keyModel: "gpt2", keyPre: "gpt-2", keyTokens: v.tokens, keyTokenType: v.types, keyMerges: ms}
}

func mustTokenizer(t *testing.T, meta fakeMeta) *Tokenizer {
	t.Helper()
	tok, err := FromGGUF(meta)
	if err != nil {
		t.Fatalf("FromGGUF: %v", err)
	}
	return tok
}

// ids maps token texts to their ids in v, failing on a text v lacks.
func (v *vocab) ids(t *testing.T, texts ...string) []int32 {
	t.Helper()
	out := make([]int32, 0, len(texts))
	for _, s := range texts {
		id, ok := v.id[s]
		if !ok {
			t.Fatalf("test vocabulary has no token %q", s)
		}
		out = append(out, id)
	}
	return out
}

func TestSentencePieceEncode(t *testing.T) {
	tests := map[string]struct {
		normal     []any // text, score pairs
		noPrefix   bool
		noBytes    bool
		text       string
		wantTokens []string
	}{
		"the higher-scoring pair merges first": {
			normal:   []any{"a", -1.0, "b", -1.0, "c", -1.0, "ab", -5.0, "bc", -2.0},
			noPrefix: true, text: "abc", wantTokens: []string{"a", "bc"},
		},
		"the same pairs with the scores swapped merge the other way": {
			normal:   []any{"a", -1.0, "b", -1.0, "c", -1.0, "ab", -2.0, "bc", -5.0},
			noPrefix: true, text: "abc", wantTokens: []string{"ab", "c"},
		},
		"equal scores merge the leftmost pair first": {
			normal: []any{"a", -1.0, "aa", -2.0}, noPrefix: true, text: "aaa", wantTokens: []string{"aa", "a"},
		},
		"merges chain into longer tokens": {
			normal: []any{"▁", -1.0, "h", -1.0, "i", -1.0, "▁h", -3.0, "hi", -2.0, "▁hi", -2.5},
			text:   "hi", wantTokens: []string{"▁hi"},
		},
		"spaces become the space mark and the text gets a space prefix": {
			normal: []any{"▁", -1.0, "a", -1.0, "▁a", -2.0}, text: "a a", wantTokens: []string{"▁a", "▁a"},
		},
		"add_space_prefix false leaves the start alone": {
			normal: []any{"▁", -1.0, "a", -1.0, "▁a", -2.0}, noPrefix: true, text: "a a", wantTokens: []string{"a", "▁a"},
		},
		"a character that is not a token falls back to its UTF-8 bytes": {
			normal: []any{"x", -1.0}, noPrefix: true, text: "xé", wantTokens: []string{"x", "<0xC3>", "<0xA9>"},
		},
		"without byte tokens an unknown character becomes one unknown token": {
			normal: []any{"x", -1.0}, noPrefix: true, noBytes: true, text: "xéx", wantTokens: []string{"x", "<unk>", "x"},
		},
		"text that spells a control token is not merged into it": {
			normal: []any{"<", -1.0, "s", -1.0, ">", -1.0, "<s", -2.0}, noPrefix: true, text: "<s>",
			wantTokens: []string{"<s", ">"},
		},
		"the empty text has no tokens, not even the space prefix": {
			normal: []any{"▁", -1.0}, text: "", wantTokens: []string{},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v := spmVocab(tc.normal...)
			meta := v.spmMeta()
			if tc.noPrefix {
				meta[keyAddSpacePrefix] = false
			}
			if tc.noBytes {
				for i, typ := range v.types {
					if typ == int32(typeByte) {
						v.tokens[i] = fmt.Sprintf("[byte %d]", i) // no longer <0xXX>
					}
				}
			}
			tok := mustTokenizer(t, meta)
			got := tok.Encode(tc.text, false)
			if diff := cmp.Diff(v.ids(t, tc.wantTokens...), got); diff != "" {
				t.Errorf("Encode(%q) (-want +got):\n%s", tc.text, diff)
			}
		})
	}
}

func TestSentencePieceUnusedTokensAreResegmented(t *testing.T) {
	v := spmVocab("a", -1.0, "b", -1.0, "c", -1.0, "d", -1.0, "ab", -3.0, "abcd", -1.0)
	v.add("abc", -2, typeUnused)
	meta := v.spmMeta()
	meta[keyAddSpacePrefix] = false
	tok := mustTokenizer(t, meta)

	// "abc" is merged (SentencePiece merges through unused pieces) but never
	// output: it is split back into the pieces it came from.
	if diff := cmp.Diff(v.ids(t, "ab", "c"), tok.Encode("abc", false)); diff != "" {
		t.Errorf("Encode(abc) (-want +got):\n%s", diff)
	}
	// An unused piece can still be a step towards a normal one.
	if diff := cmp.Diff(v.ids(t, "abcd"), tok.Encode("abcd", false)); diff != "" {
		t.Errorf("Encode(abcd) (-want +got):\n%s", diff)
	}
}

func TestSpecialTokens(t *testing.T) {
	v := spmVocab("▁", -1.0, "h", -1.0, "i", -1.0, "▁h", -3.0, "hi", -2.0, "▁hi", -2.5, "<", -1.0, ">", -1.0, "|", -1.0)
	v.add("<|im_start|>", 0, typeControl).add("<|im_end|>", 0, typeControl).add("<tool>", 0, typeUserDefined)
	tok := mustTokenizer(t, v.spmMeta())

	tests := []struct {
		name     string
		text     string
		specials bool
		want     []string
	}{
		{name: "EncodeWithSpecials turns control token text into the token, with a space prefix after it",
			text: "<|im_start|>hi<|im_end|>", specials: true, want: []string{"<|im_start|>", "▁hi", "<|im_end|>"}},
		{name: "EncodeWithSpecials matches BOS and EOS text",
			text: "<s>hi</s>", specials: true, want: []string{"<s>", "▁hi", "</s>"}},
		{name: "Encode spells control token text out as plain text",
			text: "<s>", specials: false, want: []string{"▁", "<", "<0x73>", ">"}},
		{name: "Encode matches user-defined tokens, and the text after one gets a space prefix as after any special token",
			text: "hi<tool>hi", specials: false, want: []string{"▁hi", "<tool>", "▁hi"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []int32
			if tc.specials {
				got = tok.EncodeWithSpecials(tc.text, false)
			} else {
				got = tok.Encode(tc.text, false)
			}
			if diff := cmp.Diff(v.ids(t, tc.want...), got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}

	controls := []int32{tok.BOS(), tok.EOS(), v.id["<|im_start|>"], v.id["<|im_end|>"]}
	for _, text := range []string{"<s>", "</s>", "<|im_start|>", "<|im_end|>", "x<|im_start|>system\nhi<|im_end|></s>"} {
		for _, id := range tok.Encode(text, true)[1:] {
			for _, c := range controls {
				if id == c {
					t.Errorf("Encode(%q) produced control token %d", text, id)
				}
			}
		}
	}
}

func TestAddSpecial(t *testing.T) {
	v := spmVocab("▁", -1.0, "h", -1.0, "i", -1.0, "▁h", -3.0, "hi", -2.0, "▁hi", -2.5)
	hi := v.id["▁hi"]
	tests := map[string]struct {
		set  fakeMeta
		want []int32
	}{
		"llama adds BOS by default":             {want: []int32{1, hi}},
		"add_bos_token false adds nothing":      {set: fakeMeta{keyAddBOS: false}, want: []int32{hi}},
		"add_eos_token true appends EOS":        {set: fakeMeta{keyAddEOS: true}, want: []int32{1, hi, 2}},
		"the ids come from the metadata keys":   {set: fakeMeta{keyBOS: uint32(2), keyEOS: uint32(1), keyAddEOS: true}, want: []int32{2, hi, 1}},
		"missing ids default to llama.cpp's 1":  {set: fakeMeta{keyBOS: nil}, want: []int32{1, hi}},
		"add_bos_token true with the BOS given": {set: fakeMeta{keyAddBOS: true}, want: []int32{1, hi}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			meta := v.spmMeta()
			for k, x := range tc.set {
				if x == nil {
					delete(meta, k)
				} else {
					meta[k] = x
				}
			}
			tok := mustTokenizer(t, meta)
			if diff := cmp.Diff(tc.want, tok.Encode("hi", true)); diff != "" {
				t.Errorf("Encode(hi, true) (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]int32{hi}, tok.Encode("hi", false)); diff != "" {
				t.Errorf("Encode(hi, false) (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSentencePieceDecode(t *testing.T) {
	v := spmVocab("▁", -1.0, "h", -1.0, "i", -1.0, "▁h", -3.0, "hi", -2.0, "▁hi", -2.5)
	v.add("<|im_end|>", 0, typeControl).add("<tool>", 0, typeUserDefined)
	tok := mustTokenizer(t, v.spmMeta())

	pieces := map[string]struct {
		id   int32
		want []byte
	}{
		"the space mark is a space":               {id: v.id["▁hi"], want: []byte(" hi")},
		"a byte token is its byte":                {id: v.id["<0x0A>"], want: []byte{'\n'}},
		"a lone byte of a UTF-8 character":        {id: v.id["<0xC3>"], want: []byte{0xC3}},
		"a control token is nothing":              {id: 1, want: nil},
		"the unknown token is nothing":            {id: 0, want: nil},
		"a user-defined token is its text":        {id: v.id["<tool>"], want: []byte("<tool>")},
		"an id outside the vocabulary is nothing": {id: int32(len(v.tokens)), want: nil},
		"a negative id is nothing":                {id: -1, want: nil},
	}
	for name, tc := range pieces {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tok.Piece(tc.id)); diff != "" {
				t.Errorf("Piece(%d) (-want +got):\n%s", tc.id, diff)
			}
		})
	}

	// Decode strips the space prefix once, skipping BOS, and joins byte
	// tokens into characters.
	ids := append([]int32{1}, v.ids(t, "▁hi", "▁hi", "<0xC3>", "<0xA9>", "<|im_end|>")...)
	if got, want := tok.Decode(ids), "hi hié"; got != want {
		t.Errorf("Decode = %q; want %q", got, want)
	}
	for _, s := range []string{"hi", " hi", "hi hi", "é\nhi", ""} {
		if got := tok.Decode(tok.Encode(s, true)); got != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, got)
		}
	}

	p := tok.Piece(v.id["▁hi"])
	p[0] = 'X'
	if got := tok.Piece(v.id["▁hi"]); string(got) != " hi" {
		t.Errorf("changing a returned piece changed the tokenizer: Piece = %q", got)
	}
}

func TestIsEnd(t *testing.T) {
	v := spmVocab("a", -1.0)
	v.add("<|im_end|>", 0, typeNormal).add("<|im_start|>", 0, typeControl).add("<|eot_id|>", 0, typeControl).add("<turn_end>", 0, typeControl)
	meta := v.spmMeta()
	meta[keyEOT] = uint32(v.id["<turn_end>"])
	tok := mustTokenizer(t, meta)

	tests := map[string]struct {
		id   int32
		want bool
	}{
		"EOS ends":                                 {id: 2, want: true},
		"BOS does not":                             {id: 1, want: false},
		"a normal token does not":                  {id: v.id["a"], want: false},
		"<|im_end|> ends even when typed normal":   {id: v.id["<|im_end|>"], want: true},
		"<|eot_id|> ends":                          {id: v.id["<|eot_id|>"], want: true},
		"the token eot_token_id names ends":        {id: v.id["<turn_end>"], want: true},
		"<|im_start|> is control but does not end": {id: v.id["<|im_start|>"], want: false},
		"NoToken does not end":                     {id: NoToken, want: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tok.IsEnd(tc.id); got != tc.want {
				t.Errorf("IsEnd(%d) = %v; want %v", tc.id, got, tc.want)
			}
		})
	}
	// A name-matched end token is treated as control, as llama.cpp does:
	// plain text never becomes it and it decodes to nothing.
	if got := tok.Piece(v.id["<|im_end|>"]); got != nil {
		t.Errorf("Piece(<|im_end|>) = %q; want nil", got)
	}
}

// TestEndNames checks the names llama.cpp types control and end-of-
// generation whatever the vocabulary says, and its two exceptions.
func TestEndNames(t *testing.T) {
	tests := map[string]struct {
		others    []string // user-defined tokens besides the one checked
		token     string   // user-defined in the vocabulary
		wantEnd   bool
		wantPiece []byte // nil for a control token
		wantWhole bool   // Encode of the token's text gives the token
	}{
		"a user-defined </s> (Gemma 3's HTML tag) is control and ends": {
			token: "</s>", wantEnd: true,
		},
		"with <|tool_response>, </s> is an ordinary token": {
			others: []string{"<|tool_response>"}, token: "</s>", wantPiece: []byte("</s>"),
		},
		"<|end|> alone is control and ends": {
			token: "<|end|>", wantEnd: true,
		},
		"with <|return|> and <|call|>, <|end|> is user-defined and ends nothing": {
			others: []string{"<|return|>", "<|call|>"}, token: "<|end|>", wantPiece: []byte("<|end|>"), wantWhole: true,
		},
		"with <|calls|> and <|flush|>, likewise": {
			others: []string{"<|calls|>", "<|flush|>"}, token: "<|end|>", wantPiece: []byte("<|end|>"), wantWhole: true,
		},
		"with <|return|> but no <|call|>, <|end|> stays an end": {
			others: []string{"<|return|>"}, token: "<|end|>", wantEnd: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// Gemma's specials, so that "</s>" is free to be a tag.
			v := newVocab().add("<unk>", 0, typeUnknown).add("<bos>", 0, typeControl).add("<eos>", 0, typeControl)
			for b := range 256 {
				v.add(fmt.Sprintf("<0x%02X>", b), 0, typeByte)
			}
			for _, o := range tc.others {
				v.add(o, 0, typeUserDefined)
			}
			v.add(tc.token, 0, typeUserDefined)
			meta := v.spmMeta()
			meta[keyAddSpacePrefix] = false
			tok := mustTokenizer(t, meta)
			id := v.id[tc.token]
			if got := tok.IsEnd(id); got != tc.wantEnd {
				t.Errorf("IsEnd(%s) = %v; want %v", tc.token, got, tc.wantEnd)
			}
			if diff := cmp.Diff(tc.wantPiece, tok.Piece(id)); diff != "" {
				t.Errorf("Piece(%s) (-want +got):\n%s", tc.token, diff)
			}
			if got := cmp.Equal(tok.Encode(tc.token, false), []int32{id}); got != tc.wantWhole {
				t.Errorf("Encode(%q) = %v; the token itself: %v, want %v", tc.token, tok.Encode(tc.token, false), got, tc.wantWhole)
			}
		})
	}
}

func TestBytePairEncode(t *testing.T) {
	tests := map[string]struct {
		alphabet string
		merges   []string
		text     string
		want     []string
	}{
		"the lowest-ranked merge applies first": {
			alphabet: "abc", merges: []string{"b c", "a b"}, text: "abc", want: []string{"a", "bc"},
		},
		"the same merges ranked the other way": {
			alphabet: "abc", merges: []string{"a b", "b c"}, text: "abc", want: []string{"ab", "c"},
		},
		"one rule at several places merges leftmost first": {
			alphabet: "a", merges: []string{"a a"}, text: "aaa", want: []string{"aa", "a"},
		},
		"merges build on earlier merges": {
			alphabet: "helo", merges: []string{"l l", "h e", "he ll", "hell o"}, text: "hello", want: []string{"hello"},
		},
		"spaces are spelled Ġ and lead the next word": {
			alphabet: "ab ", merges: []string{"Ġ b", "a b"}, text: "ab b", want: []string{"ab", "Ġb"},
		},
		"merges never cross a pre-tokenizer boundary": {
			alphabet: "a1", merges: []string{"a 1"}, text: "a1", want: []string{"a", "1"},
		},
		"newline and other control bytes use the shifted alphabet": {
			alphabet: "a\n", text: "a\n", want: []string{"a", "Ċ"},
		},
		"bytes of a UTF-8 character merge like any others": {
			alphabet: "\xc3\xa9", merges: []string{"Ã ©"}, text: "é", want: []string{"Ã©"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v, meta := bpeVocab(tc.alphabet, tc.merges...)
			tok := mustTokenizer(t, meta)
			got := tok.Encode(tc.text, true) // gpt2 adds no BOS by default
			if diff := cmp.Diff(v.ids(t, tc.want...), got); diff != "" {
				t.Errorf("Encode(%q) (-want +got):\n%s", tc.text, diff)
			}
			if dec := tok.Decode(got); dec != tc.text {
				t.Errorf("Decode(Encode(%q)) = %q", tc.text, dec)
			}
		})
	}
}

func TestBytePairSpecialTokens(t *testing.T) {
	v, meta := bpeVocab("<|>_imstarthello", "h e", "l l", "he ll", "hell o")
	v.add("<|im_start|>", 0, typeControl).add("<|endoftext|>", 0, typeControl)
	meta[keyTokens], meta[keyTokenType] = v.tokens, v.types
	meta[keyEOS] = uint32(v.id["<|endoftext|>"])
	tok := mustTokenizer(t, meta)

	start := v.id["<|im_start|>"]
	got := tok.EncodeWithSpecials("<|im_start|>hello<|endoftext|>", true)
	if diff := cmp.Diff(v.ids(t, "<|im_start|>", "hello", "<|endoftext|>"), got); diff != "" {
		t.Errorf("EncodeWithSpecials (-want +got):\n%s", diff)
	}
	plain := tok.Encode("<|im_start|>hello", true)
	for _, id := range plain {
		if id == start {
			t.Errorf("Encode produced <|im_start|> from text: %v", plain)
		}
	}
	if got, want := tok.Decode(plain), "<|im_start|>hello"; got != want {
		t.Errorf("Decode(Encode) = %q; want %q", got, want)
	}
	if got := tok.Decode(got); got != "hello" {
		t.Errorf("Decode skips control tokens: got %q; want %q", got, "hello")
	}
	if !tok.IsEnd(v.id["<|endoftext|>"]) || tok.BOS() != NoToken {
		t.Errorf("IsEnd(<|endoftext|>) = %v, BOS() = %d; want true, NoToken", tok.IsEnd(v.id["<|endoftext|>"]), tok.BOS())
	}
}

func TestBytePairNeverMergesIntoControl(t *testing.T) {
	// A vocabulary whose merges would spell the control token "ab" out of
	// plain text: the rule is dropped, so user text cannot produce it.
	v, meta := bpeVocab("ab", "a b")
	meta[keyTokenType].([]int32)[v.id["ab"]] = int32(typeControl)
	tok := mustTokenizer(t, meta)
	if diff := cmp.Diff(v.ids(t, "a", "b"), tok.Encode("ab", false)); diff != "" {
		t.Errorf("Encode(ab) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(v.ids(t, "ab"), tok.EncodeWithSpecials("ab", false)); diff != "" {
		t.Errorf("EncodeWithSpecials(ab) (-want +got):\n%s", diff)
	}
}

func TestBytePairUnknownByte(t *testing.T) {
	v, meta := bpeVocab("ab")
	tok := mustTokenizer(t, meta)
	if diff := cmp.Diff(v.ids(t, "a", "b"), tok.Encode("a\nb", false)); diff != "" {
		t.Errorf("a byte with no token and no unknown token is dropped (-want +got):\n%s", diff)
	}
	v.add("<unk>", 0, typeUnknown)
	meta[keyTokens], meta[keyTokenType], meta[keyUnknown] = v.tokens, v.types, uint32(v.id["<unk>"])
	tok = mustTokenizer(t, meta)
	if diff := cmp.Diff(v.ids(t, "a", "<unk>", "b"), tok.Encode("a\nb", false)); diff != "" {
		t.Errorf("a byte with no token becomes the unknown token (-want +got):\n%s", diff)
	}
}

func TestLookups(t *testing.T) {
	v := spmVocab("a", -1.0)
	tok := mustTokenizer(t, v.spmMeta())
	if got, want := tok.VocabSize(), len(v.tokens); got != want {
		t.Errorf("VocabSize = %d; want %d", got, want)
	}
	if id, ok := tok.TokenID("</s>"); !ok || id != 2 {
		t.Errorf("TokenID(</s>) = %d, %v; want 2, true", id, ok)
	}
	if id, ok := tok.TokenID("zzz"); ok {
		t.Errorf("TokenID(zzz) = %d, true; want not found", id)
	}
	if tok.BOS() != 1 || tok.EOS() != 2 {
		t.Errorf("BOS, EOS = %d, %d; want 1, 2", tok.BOS(), tok.EOS())
	}
}

// TestArraysOfOtherNumberTypes: a file may store scores as integers and
// token types in any integer type (llama.cpp reads them so); they convert
// to the same tokenizer as float32 scores and int32 types.
func TestArraysOfOtherNumberTypes(t *testing.T) {
	v := spmVocab("a", -1.0, "b", -2.0, "ab", -3.0)
	want := mustTokenizer(t, v.spmMeta()).Encode("ab ba", true)
	meta := v.spmMeta()
	scores := make([]int32, len(v.scores))
	for i, s := range v.scores {
		scores[i] = int32(s)
	}
	types := make([]uint8, len(v.types))
	for i, typ := range v.types {
		types[i] = uint8(typ)
	}
	meta[keyScores], meta[keyTokenType] = scores, types
	if diff := cmp.Diff(want, mustTokenizer(t, meta).Encode("ab ba", true)); diff != "" {
		t.Errorf("Encode with []int32 scores and []uint8 types (-want +got):\n%s", diff)
	}
}

func TestFromGGUFErrors(t *testing.T) {
	spm := func(change func(m fakeMeta)) fakeMeta {
		m := spmVocab("a", -1.0).spmMeta()
		change(m)
		return m
	}
	bpe := func(change func(m fakeMeta)) fakeMeta {
		_, m := bpeVocab("ab", "a b")
		change(m)
		return m
	}
	tests := map[string]struct {
		meta     fakeMeta
		wantErr  error
		wantText string
	}{
		"no tokenizer model": {
			meta: spm(func(m fakeMeta) { delete(m, keyModel) }), wantErr: ErrInvalid, wantText: keyModel,
		},
		"a model kind this package does not implement": {
			meta: spm(func(m fakeMeta) { m[keyModel] = "bert" }), wantErr: ErrUnsupported, wantText: `"bert"`,
		},
		"the model is not a string": {
			meta: spm(func(m fakeMeta) { m[keyModel] = uint32(1) }), wantErr: ErrInvalid, wantText: keyModel,
		},
		"no tokens": {
			meta: spm(func(m fakeMeta) { delete(m, keyTokens) }), wantErr: ErrInvalid, wantText: keyTokens,
		},
		"an empty token list": {
			meta: spm(func(m fakeMeta) { m[keyTokens] = []string{} }), wantErr: ErrInvalid, wantText: keyTokens,
		},
		"tokens that are not an array": {
			meta: spm(func(m fakeMeta) { m[keyTokens] = "a b c" }), wantErr: ErrInvalid, wantText: keyTokens,
		},
		"tokens that are numbers": {
			meta: spm(func(m fakeMeta) { m[keyTokens] = []float32{1, 2, 3} }), wantErr: ErrInvalid, wantText: keyTokens + "[0]",
		},
		"a token that is not a string in an array of any": {
			meta: spm(func(m fakeMeta) { m[keyTokens] = []any{"<unk>", "<s>", "</s>", float32(1)} }), wantErr: ErrInvalid, wantText: keyTokens + "[3]",
		},
		"scores missing from a llama vocabulary": {
			meta: spm(func(m fakeMeta) { delete(m, keyScores) }), wantErr: ErrInvalid, wantText: keyScores,
		},
		"scores that are strings": {
			meta: spm(func(m fakeMeta) { m[keyScores] = []string{"high"} }), wantErr: ErrInvalid, wantText: keyScores,
		},
		"fewer scores than tokens": {
			meta: spm(func(m fakeMeta) { m[keyScores] = m[keyScores].([]float32)[1:] }), wantErr: ErrInvalid, wantText: keyScores,
		},
		"token types that are not integers": {
			meta: spm(func(m fakeMeta) { m[keyTokenType] = []string{"control"} }), wantErr: ErrInvalid, wantText: keyTokenType,
		},
		"more token types than tokens": {
			meta: spm(func(m fakeMeta) { m[keyTokenType] = append(m[keyTokenType].([]int32), 1) }), wantErr: ErrInvalid, wantText: keyTokenType,
		},
		"a BOS id outside the vocabulary": {
			meta: spm(func(m fakeMeta) { m[keyBOS] = uint32(1 << 20) }), wantErr: ErrInvalid, wantText: keyBOS,
		},
		"a BOS id that is a string": {
			meta: spm(func(m fakeMeta) { m[keyBOS] = "1" }), wantErr: ErrInvalid, wantText: keyBOS,
		},
		"add_bos_token that is not a bool": {
			meta: spm(func(m fakeMeta) { m[keyAddBOS] = uint8(1) }), wantErr: ErrInvalid, wantText: keyAddBOS,
		},
		"add_eos_token true without an EOS id": {
			meta: bpe(func(m fakeMeta) { m[keyAddEOS] = true }), wantErr: ErrInvalid, wantText: keyEOS,
		},
		"add_bos_token true without a BOS id": {
			meta: bpe(func(m fakeMeta) { m[keyAddBOS] = true }), wantErr: ErrInvalid, wantText: keyBOS,
		},
		"merges missing from a gpt2 vocabulary": {
			meta: bpe(func(m fakeMeta) { delete(m, keyMerges) }), wantErr: ErrInvalid, wantText: keyMerges,
		},
		"a merge without a space": {
			meta: bpe(func(m fakeMeta) { m[keyMerges] = []string{"ab"} }), wantErr: ErrInvalid, wantText: keyMerges + "[0]",
		},
		"a pre-tokenizer this package does not implement": {
			meta: bpe(func(m fakeMeta) { m[keyPre] = "deepseek-llm" }), wantErr: ErrUnsupported, wantText: `"deepseek-llm"`,
		},
		"a pre-tokenizer name that is not a string": {
			meta: bpe(func(m fakeMeta) { m[keyPre] = []any{"qwen2"} }), wantErr: ErrInvalid, wantText: keyPre,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tok, err := FromGGUF(tc.meta)
			if err == nil {
				t.Fatalf("FromGGUF succeeded with %d tokens; want an error", tok.VocabSize())
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("error %q is not %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not mention %s", err, tc.wantText)
			}
		})
	}
}
