// Package tokenizer turns text into the token ids of a llama-family model and
// back, from the vocabulary stored in the model's GGUF metadata. It follows
// llama.cpp's conventions, so that a prompt is tokenized here exactly as
// llama.cpp would tokenize it for the same file: SentencePiece BPE for
// tokenizer.ggml.model "llama" and GPT-2 style byte-level BPE for "gpt2".
//
// A Tokenizer is read-only after FromGGUF and safe for concurrent use.
package tokenizer

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Metadata is the part of a GGUF file a tokenizer is built from: *gguf.File
// and *gguf.Mapped satisfy it. Arrays are slices of their element type, as
// package gguf reads them ([]string, []float32, []int32...); []any holding
// the element type is accepted too.
type Metadata interface {
	Get(key string) (any, bool)
}

// ErrInvalid wraps every error about metadata that is missing, ill-typed or
// inconsistent.
var ErrInvalid = errors.New("invalid tokenizer metadata")

// ErrUnsupported wraps the error for a tokenizer model or pre-tokenizer this
// package does not implement.
var ErrUnsupported = errors.New("unsupported tokenizer")

// NoToken is the id BOS and EOS return when the vocabulary has no such token.
const NoToken int32 = -1

// The GGUF metadata keys, as llama.cpp names them.
const (
	keyModel          = "tokenizer.ggml.model"
	keyPre            = "tokenizer.ggml.pre"
	keyTokens         = "tokenizer.ggml.tokens"
	keyScores         = "tokenizer.ggml.scores"
	keyTokenType      = "tokenizer.ggml.token_type"
	keyMerges         = "tokenizer.ggml.merges"
	keyBOS            = "tokenizer.ggml.bos_token_id"
	keyEOS            = "tokenizer.ggml.eos_token_id"
	keyEOT            = "tokenizer.ggml.eot_token_id"
	keyEOM            = "tokenizer.ggml.eom_token_id"
	keyUnknown        = "tokenizer.ggml.unknown_token_id"
	keyAddBOS         = "tokenizer.ggml.add_bos_token"
	keyAddEOS         = "tokenizer.ggml.add_eos_token"
	keyAddSpacePrefix = "tokenizer.ggml.add_space_prefix"
)

// tokenType is a token's tokenizer.ggml.token_type.
type tokenType int32

const (
	typeNormal      tokenType = 1
	typeUnknown     tokenType = 2
	typeControl     tokenType = 3
	typeUserDefined tokenType = 4
	typeUnused      tokenType = 5
	typeByte        tokenType = 6
)

// endNames are the tokens that end a turn in the chat templates of common
// model families. Converters often leave them out of the EOS key (Qwen's
// "<|im_end|>", Llama 3's "<|eot_id|>", Gemma's "<end_of_turn>"), and a
// server that missed them would generate past the end of the answer, so, as
// llama.cpp does, they are found by name and treated as control tokens. The
// list is llama.cpp's, all of it: a name it types control is spelled out in
// plain text there, so it must be here too, even where the vocabulary
// calls it user-defined (Gemma 3 has an HTML-tag token "</s>").
var endNames = []string{
	"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
	"<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
	"</s>", "<eos>", "<end_of_utterance>", "<turn|>", "<|tool_response>",
	"<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<｜end▁of▁sentence｜>", "[e~[",
}

// endExceptions are llama.cpp's two exceptions to endNames, for vocabularies
// where a listed name is ordinary: with "<|tool_response>" (Gemma 4's
// tool-call markup), "</s>" is a normal token; with "<|return|>" and
// "<|call|>" (gpt-oss) or "<|calls|>" and "<|flush|>", "<|end|>" is a
// user-defined token that ends nothing.
var endExceptions = []struct {
	name string
	when [][]string // any of these sets of names, all present
	typ  tokenType
}{
	{name: "</s>", when: [][]string{{"<|tool_response>"}}, typ: typeNormal},
	{name: "<|end|>", when: [][]string{{"<|return|>", "<|call|>"}, {"<|calls|>", "<|flush|>"}}, typ: typeUserDefined},
}

// kind is the tokenizer algorithm, from tokenizer.ggml.model.
type kind uint8

const (
	kindSPM kind = iota
	kindBPE
)

// Tokenizer turns text into token ids and back.
type Tokenizer struct {
	kind   kind
	tokens []string
	types  []tokenType
	scores []float32 // SentencePiece only
	ids    map[string]int32
	// pieces are the bytes each token stands for when detokenizing.
	pieces [][]byte
	// byteTokens spell a byte that no merge covers: "<0xAB>" tokens for
	// SentencePiece, the byte's alphabet character for byte-level BPE; -1
	// where the vocabulary has none.
	byteTokens [256]int32
	merges     map[uint64]merge // byte-level BPE only
	pre        preTokenizer     // byte-level BPE only
	// wholeWords: a pre-tokenized word that is a token is that token,
	// whatever the merges would make of it (llama.cpp's ignore_merges, set
	// for Llama 3's pre-tokenizer). Byte-level BPE only.
	wholeWords bool
	// control holds the control, unknown and user-defined tokens that
	// EncodeWithSpecials matches in text; userDefined only the user-defined
	// ones, which plain Encode matches. Both are indexed by first byte.
	control, userDefined *specialIndex
	bos, eos, unk        int32
	ends                 map[int32]bool
	addBOS, addEOS       bool
	addSpacePrefix       bool
}

// FromGGUF builds the tokenizer described by a model's metadata. It fails
// when a key it needs is missing or ill-typed, when an id is outside the
// vocabulary, and when the tokenizer model or pre-tokenizer is not one this
// package implements.
func FromGGUF(meta Metadata) (*Tokenizer, error) {
	model, ok, err := getString(meta, keyModel)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s is missing", ErrInvalid, keyModel)
	}
	t := &Tokenizer{bos: NoToken, eos: NoToken, unk: NoToken, ends: map[int32]bool{}}
	switch model {
	case "llama":
		t.kind = kindSPM
	case "gpt2":
		t.kind = kindBPE
	default:
		return nil, fmt.Errorf("%w: %s %q (supported: \"llama\", \"gpt2\")", ErrUnsupported, keyModel, model)
	}

	if err := t.loadVocabulary(meta); err != nil {
		return nil, err
	}
	if err := t.loadSpecialIDs(meta); err != nil {
		return nil, err
	}
	if err := t.loadFlags(meta); err != nil {
		return nil, err
	}
	if t.kind == kindBPE {
		if err := t.loadBPE(meta); err != nil {
			return nil, err
		}
	}
	t.indexBytes()
	t.buildPieces()
	t.control = newSpecialIndex(t.tokens, t.types, typeControl, typeUnknown, typeUserDefined)
	t.userDefined = newSpecialIndex(t.tokens, t.types, typeUserDefined)
	return t, nil
}

// loadVocabulary reads the tokens, their types and (for SentencePiece) their
// scores.
func (t *Tokenizer) loadVocabulary(meta Metadata) error {
	tokens, ok, err := getArray(meta, keyTokens, "strings", asString)
	if err != nil {
		return err
	}
	if !ok || len(tokens) == 0 {
		return fmt.Errorf("%w: %s is missing or empty", ErrInvalid, keyTokens)
	}
	if len(tokens) > math.MaxInt32 {
		return fmt.Errorf("%w: %s has %d tokens, more than an int32 id can hold", ErrInvalid, keyTokens, len(tokens))
	}
	t.tokens = tokens
	t.ids = make(map[string]int32, len(tokens))
	for i, s := range tokens {
		// An empty token would match nothing. A duplicate (which llama.cpp
		// rejects) keeps its first id rather than failing the whole model.
		if _, dup := t.ids[s]; s != "" && !dup {
			t.ids[s] = int32(i)
		}
	}

	t.types = make([]tokenType, len(tokens))
	types, ok, err := getArray(meta, keyTokenType, "integers", asInt64)
	if err != nil {
		return err
	}
	if ok && len(types) != len(tokens) {
		return fmt.Errorf("%w: %s has %d entries for %d tokens", ErrInvalid, keyTokenType, len(types), len(tokens))
	}
	for i := range t.types {
		t.types[i] = typeNormal
		// Types outside 2..6 (0 is "undefined") are read as normal: that
		// keeps the token usable instead of silently unproducible.
		if ok && types[i] >= int64(typeUnknown) && types[i] <= int64(typeByte) {
			t.types[i] = tokenType(types[i])
		}
	}

	if t.kind == kindSPM {
		scores, ok, err := getArray(meta, keyScores, "numbers", asFloat32)
		if err != nil {
			return err
		}
		if !ok {
			// The scores are the merge order: without them SentencePiece BPE
			// is undefined.
			return fmt.Errorf("%w: %s is missing (a \"llama\" tokenizer merges by score)", ErrInvalid, keyScores)
		}
		if len(scores) != len(tokens) {
			return fmt.Errorf("%w: %s has %d entries for %d tokens", ErrInvalid, keyScores, len(scores), len(tokens))
		}
		t.scores = scores
	}

	for _, name := range endNames {
		if id, ok := t.ids[name]; ok {
			t.types[id] = typeControl
			t.ends[id] = true
		}
	}
	for _, x := range endExceptions {
		id, ok := t.ids[x.name]
		if !ok {
			continue
		}
		for _, names := range x.when {
			if !slices.ContainsFunc(names, func(n string) bool { _, ok := t.ids[n]; return !ok }) {
				t.types[id] = x.typ
				delete(t.ends, id)
				break
			}
		}
	}
	return nil
}

// loadSpecialIDs reads BOS, EOS, the unknown token and the end-of-turn ids.
func (t *Tokenizer) loadSpecialIDs(meta Metadata) error {
	if t.kind == kindSPM {
		// llama.cpp's defaults for a SentencePiece vocabulary that does not
		// name them: LLaMA's <unk>, <s> and </s>.
		t.unk, t.bos, t.eos = 0, 1, 2
		if len(t.tokens) < 3 {
			t.unk, t.bos, t.eos = NoToken, NoToken, NoToken
		}
	}
	for _, k := range []struct {
		key string
		id  *int32
	}{{keyBOS, &t.bos}, {keyEOS, &t.eos}, {keyUnknown, &t.unk}, {keyEOT, nil}, {keyEOM, nil}} {
		id, ok, err := t.getID(meta, k.key)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if k.id == nil {
			t.ends[id] = true
			continue
		}
		*k.id = id
	}
	if t.eos >= 0 {
		t.ends[t.eos] = true
	}
	return nil
}

// loadFlags reads what Encode adds around the text. The defaults are
// llama.cpp's: SentencePiece models get BOS and a space prefix, byte-level BPE
// models neither, but for Llama 3's pre-tokenizer, which adds BOS.
func (t *Tokenizer) loadFlags(meta Metadata) error {
	addBOS, explicitBOS, err := getBool(meta, keyAddBOS)
	if err != nil {
		return err
	}
	pre, _, err := getString(meta, keyPre)
	if err != nil {
		return err
	}
	t.addBOS = t.kind == kindSPM || t.kind == kindBPE && llama3Pre[pre]
	if explicitBOS {
		t.addBOS = addBOS
	}
	if t.addBOS && t.bos < 0 {
		if explicitBOS {
			return fmt.Errorf("%w: %s is true but %s is missing", ErrInvalid, keyAddBOS, keyBOS)
		}
		t.addBOS = false
	}

	if t.addEOS, _, err = getBool(meta, keyAddEOS); err != nil {
		return err
	}
	if t.addEOS && t.eos < 0 {
		return fmt.Errorf("%w: %s is true but %s is missing", ErrInvalid, keyAddEOS, keyEOS)
	}

	// Only SentencePiece has a space prefix; llama.cpp ignores the key for
	// byte-level BPE, whose pre-tokenizer already keeps spaces with words.
	if t.kind == kindSPM {
		prefix, ok, err := getBool(meta, keyAddSpacePrefix)
		if err != nil {
			return err
		}
		t.addSpacePrefix = !ok || prefix
	}
	return nil
}

// llama3Pre are the tokenizer.ggml.pre names llama.cpp gives Llama 3's
// pre-tokenizer: the llama3 pattern, whole-word tokens before merges, and
// BOS by default.
var llama3Pre = map[string]bool{
	"llama3": true, "llama-v3": true, "llama-bpe": true, "falcon3": true, "falcon-h1": true,
	"pixtral": true, "midm-2.0": true, "lfm2": true, "jina-v5-nano": true,
}

// loadBPE reads the merge rules and picks the pre-tokenizer.
func (t *Tokenizer) loadBPE(meta Metadata) error {
	pre, _, err := getString(meta, keyPre)
	if err != nil {
		return err
	}
	switch pre {
	case "", "default":
		// What llama.cpp does without a name (it warns that quality
		// suffers), so that both tokenize such a file alike.
		t.pre = splitDefault
	case "gpt-2", "mpt": // llama.cpp gives mpt GPT-2's pattern
		t.pre = splitGPT2
	case "qwen2":
		t.pre = splitQwen2
	case "smollm", "starcoder", "refact":
		t.pre = splitSmolLM
	default:
		if !llama3Pre[pre] {
			return fmt.Errorf("%w: %s %q (supported: \"gpt-2\", \"mpt\", \"default\", \"qwen2\", \"smollm\", \"starcoder\", \"refact\", \"llama-bpe\" and its aliases)", ErrUnsupported, keyPre, pre)
		}
		t.pre, t.wholeWords = splitLlama3, true
	}

	merges, ok, err := getArray(meta, keyMerges, "strings", asString)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %s is missing (a \"gpt2\" tokenizer merges by rank)", ErrInvalid, keyMerges)
	}
	t.merges = make(map[uint64]merge, len(merges))
	for rank, m := range merges {
		// Byte-level tokens hold no spaces (the alphabet spells a space
		// "Ġ"); searching from the second byte still splits a rule whose
		// left half is a literal space correctly.
		sp := -1
		if len(m) > 1 {
			sp = strings.IndexByte(m[1:], ' ')
		}
		if sp < 0 {
			return fmt.Errorf("%w: %s[%d] %q is not two tokens separated by a space", ErrInvalid, keyMerges, rank, m)
		}
		left, right := m[:sp+1], m[sp+2:]
		l, okL := t.ids[left]
		r, okR := t.ids[right]
		res, okRes := t.ids[left+right]
		// A rule over strings that are not tokens can never fire on token
		// ids; a rule that would produce a control token from plain text is
		// dropped so that user text can never turn into one.
		if !okL || !okR || !okRes || t.types[res] == typeControl || t.types[res] == typeUnknown {
			continue
		}
		key := pairKey(l, r)
		if _, dup := t.merges[key]; !dup {
			t.merges[key] = merge{rank: int32(rank), result: res}
		}
	}
	return nil
}

// indexBytes finds the token that spells each byte.
func (t *Tokenizer) indexBytes() {
	alphabet := ByteAlphabet()
	for b := range 256 {
		t.byteTokens[b] = NoToken
		var candidates []string
		if t.kind == kindSPM {
			// llama.cpp also accepts a token that is the byte itself.
			candidates = []string{fmt.Sprintf("<0x%02X>", b), string([]byte{byte(b)})}
		} else {
			candidates = []string{string(alphabet[b])}
		}
		for _, c := range candidates {
			if id, ok := t.ids[c]; ok && t.types[id] != typeControl && t.types[id] != typeUnknown {
				t.byteTokens[b] = id
				break
			}
		}
	}
}

// buildPieces precomputes what each token decodes to.
func (t *Tokenizer) buildPieces() {
	var reverse [324]int16 // byte-level alphabet character -> byte
	for i := range reverse {
		reverse[i] = -1
	}
	for b, r := range ByteAlphabet() {
		reverse[r] = int16(b)
	}
	t.pieces = make([][]byte, len(t.tokens))
	for id, text := range t.tokens {
		switch t.types[id] {
		case typeControl, typeUnknown, typeUnused:
			// Not text: a control token's name must not leak into output.
			continue
		case typeUserDefined:
			t.pieces[id] = []byte(text)
			continue
		case typeByte:
			if b, ok := parseByteToken(text); ok {
				t.pieces[id] = []byte{b}
				continue
			}
		}
		if t.kind == kindSPM {
			t.pieces[id] = []byte(strings.ReplaceAll(text, spaceMark, " "))
		} else {
			t.pieces[id] = decodeByteLevel(text, &reverse)
		}
	}
}

// parseByteToken reads a "<0xAB>" byte token.
func parseByteToken(text string) (byte, bool) {
	if len(text) != 6 || !strings.HasPrefix(text, "<0x") || text[5] != '>' {
		return 0, false
	}
	b, err := strconv.ParseUint(text[3:5], 16, 8)
	return byte(b), err == nil
}

// mergeable reports whether SentencePiece may merge two symbols into id.
// Control, unknown and byte tokens are never spelled out of plain text.
func (t *Tokenizer) mergeable(id int32) bool {
	switch t.types[id] {
	case typeNormal, typeUserDefined, typeUnused:
		return true
	}
	return false
}

// outputtable reports whether SentencePiece may output a merged symbol as id.
func (t *Tokenizer) outputtable(id int32) bool {
	return t.types[id] == typeNormal || t.types[id] == typeUserDefined
}

// Encode returns the tokens of text. With addSpecial it adds BOS and EOS as
// the model asks (tokenizer.ggml.add_bos_token, default true for "llama" and
// false for "gpt2"; tokenizer.ggml.add_eos_token, default false). Text that
// spells a control token, such as "</s>" or "<|im_start|>", is tokenized as
// plain text, so user input can never inject one; user-defined tokens are
// matched, as llama.cpp and Hugging Face tokenizers do, since they are
// ordinary vocabulary that the model was trained to see in text.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int32 {
	return t.encode(text, addSpecial, t.userDefined, nil)
}

// EncodeWithSpecials is Encode for trusted text such as a rendered chat
// template: a piece of text that spells a control, unknown or user-defined
// token exactly becomes that token. Where two such tokens overlap, the longer
// one wins, as in llama.cpp.
func (t *Tokenizer) EncodeWithSpecials(text string, addSpecial bool) []int32 {
	return t.encode(text, addSpecial, t.control, nil)
}

// EncodeWithSpecialsExcept is EncodeWithSpecials, except that the byte
// ranges in literal ([start, end) pairs, in order) are plain text, as in
// Encode: a rendered chat prompt is tokenized as trusted text but for the
// users' messages. Plain text and the text around it are tokenized
// together, as if the control tokens in it were ordinary words.
func (t *Tokenizer) EncodeWithSpecialsExcept(text string, addSpecial bool, literal [][2]int) []int32 {
	return t.encode(text, addSpecial, t.control, literal)
}

func (t *Tokenizer) encode(text string, addSpecial bool, specials *specialIndex, literal [][2]int) []int32 {
	out := make([]int32, 0, len(text)/3+2)
	if addSpecial && t.addBOS {
		out = append(out, t.bos)
	}
	// SentencePiece gets a space prefix at the start of the text and after
	// every special token, as llama.cpp does: the text after "<|im_start|>"
	// starts a new sentence.
	afterSpecial := true
	for _, f := range specials.partition(text, t.tokens, literal) {
		if f.id >= 0 {
			out = append(out, f.id)
			afterSpecial = true
			continue
		}
		if t.kind == kindSPM {
			out = t.encodeSPM(out, text[f.start:f.end], t.addSpacePrefix && afterSpecial)
		} else {
			out = t.encodeBPE(out, text[f.start:f.end])
		}
		afterSpecial = false
	}
	if addSpecial && t.addEOS {
		out = append(out, t.eos)
	}
	return out
}

// Piece returns the bytes token id stands for in output text: SentencePiece
// "▁" is a space and "<0xAB>" the byte 0xAB, byte-level BPE characters map
// back to their bytes, and control, unknown and unused tokens are nil. A
// piece may be part of a UTF-8 character; a streaming client must join
// pieces before it cuts text at character boundaries. Unlike Decode, Piece
// keeps the leading space that SentencePiece adds to the first word.
func (t *Tokenizer) Piece(id int32) []byte {
	if id < 0 || int(id) >= len(t.pieces) {
		return nil
	}
	return bytes.Clone(t.pieces[id])
}

// Decode returns the text of ids, skipping control tokens and ids outside the
// vocabulary. When the vocabulary adds a space prefix on encoding, Decode
// strips one leading space from the first piece, as llama.cpp's detokenizer
// does, so that Decode(Encode(s, true)) == s. (llama.cpp keeps the space when
// the ids start with BOS; here BOS, being a control token, is skipped and
// the first piece with text loses the space.)
func (t *Tokenizer) Decode(ids []int32) string {
	var b strings.Builder
	strip := t.addSpacePrefix
	for _, id := range ids {
		if id < 0 || int(id) >= len(t.pieces) || len(t.pieces[id]) == 0 {
			continue
		}
		p := t.pieces[id]
		if strip && p[0] == ' ' {
			p = p[1:]
		}
		strip = false
		b.Write(p)
	}
	return b.String()
}

// BOS is the beginning-of-sequence token, or NoToken.
func (t *Tokenizer) BOS() int32 { return t.bos }

// EOS is the end-of-sequence token, or NoToken.
func (t *Tokenizer) EOS() int32 { return t.eos }

// IsEnd reports whether generating id ends the answer: EOS, the end-of-turn
// and end-of-message tokens the metadata names, and the tokens that end a
// turn in common chat templates ("<|im_end|>", "<|eot_id|>",
// "<|endoftext|>", "<end_of_turn>"...) when the vocabulary has them.
func (t *Tokenizer) IsEnd(id int32) bool { return t.ends[id] }

// VocabSize is the number of tokens.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// TokenID returns the id of the token whose text is exactly text, whatever
// its type: TokenID("<|im_start|>") finds the chat-template marker.
func (t *Tokenizer) TokenID(text string) (int32, bool) {
	id, ok := t.ids[text]
	return id, ok
}

// specialIndex finds the special tokens that occur in a text. Tokens are
// grouped by first byte so that text without their first bytes (most prose
// has no '<') costs one table look-up per byte.
type specialIndex struct {
	byFirst [256][]int32
}

func newSpecialIndex(tokens []string, types []tokenType, want ...tokenType) *specialIndex {
	x := &specialIndex{}
	for id, text := range tokens {
		if text != "" && slices.Contains(want, types[id]) {
			x.byFirst[text[0]] = append(x.byFirst[text[0]], int32(id))
		}
	}
	return x
}

// fragment is a part of the text: a special token (id >= 0) or raw text.
type fragment struct {
	start, end int
	id         int32
}

// partition cuts text at the special tokens it contains. Like llama.cpp, it
// takes the tokens longest first and cuts every occurrence of each in the
// text that is still raw, so "<|im_start|>" is never read as a shorter token
// that it starts with. An occurrence that overlaps a literal range (ordered
// [start, end) pairs) is not cut.
func (x *specialIndex) partition(text string, tokens []string, literal [][2]int) []fragment {
	var found []int32
	for i := 0; i < len(text); i++ {
		for _, id := range x.byFirst[text[i]] {
			if strings.HasPrefix(text[i:], tokens[id]) {
				found = append(found, id)
			}
		}
	}
	frags := []fragment{{start: 0, end: len(text), id: NoToken}}
	if len(found) == 0 {
		if text == "" {
			return nil
		}
		return frags
	}
	slices.SortFunc(found, func(a, b int32) int {
		if c := cmp.Compare(len(tokens[b]), len(tokens[a])); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	found = slices.Compact(found)
	for _, id := range found {
		tok := tokens[id]
		next := make([]fragment, 0, len(frags)+2)
		for _, f := range frags {
			if f.id >= 0 {
				next = append(next, f)
				continue
			}
			s, from := f.start, f.start
			for {
				k := strings.Index(text[from:f.end], tok)
				if k < 0 {
					break
				}
				if k += from - s; overlaps(literal, s+k, s+k+len(tok)) {
					from = s + k + 1
					continue
				}
				if k > 0 {
					next = append(next, fragment{start: s, end: s + k, id: NoToken})
				}
				next = append(next, fragment{start: s + k, end: s + k + len(tok), id: id})
				s += k + len(tok)
				from = s
			}
			if s < f.end {
				next = append(next, fragment{start: s, end: f.end, id: NoToken})
			}
		}
		frags = next
	}
	return frags
}

// overlaps reports whether [start, end) meets one of the ordered ranges.
func overlaps(ranges [][2]int, start, end int) bool {
	i, _ := slices.BinarySearchFunc(ranges, start, func(r [2]int, v int) int { return cmp.Compare(r[1], v+1) })
	return i < len(ranges) && ranges[i][0] < end
}

// getID reads a token id and checks that it is in the vocabulary.
func (t *Tokenizer) getID(meta Metadata, key string) (int32, bool, error) {
	v, ok := meta.Get(key)
	if !ok {
		return NoToken, false, nil
	}
	n, isInt := asInt64(v)
	if !isInt {
		return NoToken, false, fmt.Errorf("%w: %s is %T, want an unsigned integer", ErrInvalid, key, v)
	}
	if n < 0 || n >= int64(len(t.tokens)) {
		return NoToken, false, fmt.Errorf("%w: %s %d is outside the vocabulary of %d tokens", ErrInvalid, key, n, len(t.tokens))
	}
	return int32(n), true, nil
}

func getString(meta Metadata, key string) (string, bool, error) {
	v, ok := meta.Get(key)
	if !ok {
		return "", false, nil
	}
	s, isString := v.(string)
	if !isString {
		return "", false, fmt.Errorf("%w: %s is %T, want a string", ErrInvalid, key, v)
	}
	return s, true, nil
}

func getBool(meta Metadata, key string) (bool, bool, error) {
	v, ok := meta.Get(key)
	if !ok {
		return false, false, nil
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, false, fmt.Errorf("%w: %s is %T, want a bool", ErrInvalid, key, v)
	}
	return b, true, nil
}

// getArray reads an array metadata value whose elements convert to T; want
// names the element kind in errors.
func getArray[T any](meta Metadata, key, want string, convert func(any) (T, bool)) ([]T, bool, error) {
	v, ok := meta.Get(key)
	if !ok {
		return nil, false, nil
	}
	if a, ok := v.([]T); ok {
		return a, true, nil
	}
	n, at, isArray := arrayElements(v)
	if !isArray {
		return nil, false, fmt.Errorf("%w: %s is %T, want an array of %s", ErrInvalid, key, v, want)
	}
	out := make([]T, n)
	for i := range out {
		e := at(i)
		x, ok := convert(e)
		if !ok {
			return nil, false, fmt.Errorf("%w: %s[%d] is %T, want an array of %s", ErrInvalid, key, i, e, want)
		}
		out[i] = x
	}
	return out, true, nil
}

// arrayElements gives the length of an array metadata value and its
// elements one at a time, for an array of another element type than the
// one wanted (integer token types read as int64, integer scores as
// float32); ok is false when v is not an array.
func arrayElements(v any) (n int, at func(int) any, ok bool) {
	switch a := v.(type) {
	case []any:
		return len(a), func(i int) any { return a[i] }, true
	case []string:
		return indexed(a)
	case []bool:
		return indexed(a)
	case []uint8:
		return indexed(a)
	case []int8:
		return indexed(a)
	case []uint16:
		return indexed(a)
	case []int16:
		return indexed(a)
	case []uint32:
		return indexed(a)
	case []int32:
		return indexed(a)
	case []uint64:
		return indexed(a)
	case []int64:
		return indexed(a)
	case []float32:
		return indexed(a)
	case []float64:
		return indexed(a)
	}
	return 0, nil, false
}

func indexed[E any](a []E) (int, func(int) any, bool) {
	return len(a), func(i int) any { return a[i] }, true
}

func asString(v any) (string, bool) {
	s, ok := v.(string)
	return s, ok
}

func asFloat32(v any) (float32, bool) {
	switch x := v.(type) {
	case float32:
		return x, true
	case float64:
		return float32(x), true
	}
	// llama.cpp also accepts integer scores.
	n, ok := asInt64(v)
	return float32(n), ok
}

func asInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		if x > 1<<63-1 {
			return 0, false
		}
		return int64(x), true
	case int:
		return int64(x), true
	}
	return 0, false
}
