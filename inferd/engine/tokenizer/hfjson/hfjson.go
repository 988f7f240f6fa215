// Package hfjson converts a Hugging Face tokenizer, its tokenizer.json and
// tokenizer_config.json, into the GGUF tokenizer metadata that llama.cpp's
// converter (convert_hf_to_gguf.py) writes for the same model, so that
// package tokenizer and llama.cpp can both be run on a real model's
// vocabulary without the model's weights: byte-level BPE vocabularies
// (Llama 3, Qwen) become tokenizer.ggml.model "gpt2" with their merges, and
// SentencePiece BPE vocabularies with byte fallback (Gemma) become "llama"
// with scores.
//
// It covers the tokenizers the project is checked against, not every
// tokenizer.json: anything it does not recognize (another model type,
// pre-tokenizer or normalizer) is an error that names the field, rather
// than a file that would tokenize differently from the model.
package hfjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/slmops/slmops/inferd/gguf"
)

// The token types of tokenizer.ggml.token_type, as llama.cpp numbers them.
const (
	TypeNormal      int32 = 1
	TypeUnknown     int32 = 2
	TypeControl     int32 = 3
	TypeUserDefined int32 = 4
	TypeUnused      int32 = 5
	TypeByte        int32 = 6
)

// MaxVocabulary bounds the ids a tokenizer.json may use: the holes below
// the largest id are filled with [PADn] tokens, so a stray huge id would
// otherwise make a file of billions of tokens. The largest real
// vocabularies have about 260,000.
const MaxVocabulary = 1 << 21

// ErrUnsupported wraps the errors for a tokenizer that is well-formed but
// not one this package converts.
var ErrUnsupported = errors.New("unsupported tokenizer")

// ErrInvalid wraps the errors for input that is malformed or inconsistent.
var ErrInvalid = errors.New("invalid tokenizer")

// Vocabulary is the tokenizer part of a GGUF file, as llama.cpp's converter
// writes it for the model.
type Vocabulary struct {
	// Model is tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama"
	// (SentencePiece BPE).
	Model string
	// Pre is tokenizer.ggml.pre: "llama-bpe", "qwen2" or "gpt-2" for
	// byte-level BPE, "default" for SentencePiece.
	Pre string
	// Tokens, Types and, for "llama", Scores are indexed by token id.
	Tokens []string
	Types  []int32
	Scores []float32
	// Merges are the BPE merge rules of "gpt2", first first, each two tokens
	// separated by a space.
	Merges []string
	// SpecialIDs maps bos, eos, unk, sep, pad and mask to their token ids,
	// for the tokenizer.ggml.<name>_token_id keys.
	SpecialIDs map[string]uint32
	// AddBOS, AddEOS and AddSpacePrefix are written when set.
	AddBOS, AddEOS, AddSpacePrefix *bool
	// ChatTemplate is tokenizer.chat_template (the default template);
	// ChatTemplates holds the named others, tokenizer.chat_template.<name>.
	ChatTemplate  string
	ChatTemplates map[string]string
}

// tokenizerJSON is the part of tokenizer.json that the conversion reads.
type tokenizerJSON struct {
	AddedTokens   []addedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Model         struct {
		Type         string           `json:"type"`
		Vocab        map[string]int64 `json:"vocab"`
		Merges       json.RawMessage  `json:"merges"`
		ByteFallback bool             `json:"byte_fallback"`
		IgnoreMerges bool             `json:"ignore_merges"`
		UnkToken     *string          `json:"unk_token"`
	} `json:"model"`
}

type addedToken struct {
	ID      int64  `json:"id"`
	Content string `json:"content"`
	Special bool   `json:"special"`
}

// component is a normalizer, pre-tokenizer or post-processor: one object
// with a type, some of them sequences of others.
type component struct {
	Type string `json:"type"`
	// Sequence
	Normalizers   []component `json:"normalizers"`
	Pretokenizers []component `json:"pretokenizers"`
	Processors    []component `json:"processors"`
	// Split, Replace
	Pattern struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"`
	Content  string `json:"content"`
	Behavior string `json:"behavior"`
	Invert   bool   `json:"invert"`
	// Prepend
	Prepend string `json:"prepend"`
	// ByteLevel
	AddPrefixSpace *bool `json:"add_prefix_space"`
	UseRegex       *bool `json:"use_regex"`
	// Metaspace
	Replacement   string `json:"replacement"`
	PrependScheme string `json:"prepend_scheme"`
	// TemplateProcessing
	Single []templatePiece `json:"single"`
}

type templatePiece struct {
	SpecialToken *struct {
		ID string `json:"id"`
	} `json:"SpecialToken"`
}

// The pre-tokenizer patterns of the supported byte-level vocabularies,
// exactly as their tokenizer.json spell them, and the tokenizer.ggml.pre
// names llama.cpp gives them. llama.cpp's converter tells them apart by
// hashing how the tokenizer splits a test string; comparing the pattern
// itself needs no tokenizer and fails on a pattern it does not know
// instead of guessing.
var bytePatterns = map[string]string{
	`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`: "llama-bpe",
	`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`:      "qwen2",
}

// spaceMark is SentencePiece's stand-in for a space.
const spaceMark = "\u2581"

// ConvertDir converts dir/tokenizer.json and, when present,
// dir/tokenizer_config.json (where the special tokens, the BOS/EOS flags
// and the chat template are).
func ConvertDir(dir string) (*Vocabulary, error) {
	tok, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		return nil, fmt.Errorf("read tokenizer: %w", err)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read tokenizer config: %w", err)
	}
	v, err := Convert(tok, cfg)
	if err != nil {
		return nil, fmt.Errorf("convert %s: %w", dir, err)
	}
	return v, nil
}

// Convert converts a tokenizer.json and its tokenizer_config.json (nil when
// there is none).
func Convert(tokenizer, config []byte) (*Vocabulary, error) {
	var tj tokenizerJSON
	if err := json.Unmarshal(tokenizer, &tj); err != nil {
		return nil, fmt.Errorf("%w: tokenizer.json: %w", ErrInvalid, err)
	}
	cfg := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(config)) > 0 {
		if err := json.Unmarshal(config, &cfg); err != nil {
			return nil, fmt.Errorf("%w: tokenizer_config.json: %w", ErrInvalid, err)
		}
	}
	if tj.Model.Type != "BPE" {
		return nil, fmt.Errorf("%w: model.type %q: only BPE tokenizers convert (byte-level like Llama 3 and Qwen, or SentencePiece with byte_fallback like Gemma)", ErrUnsupported, tj.Model.Type)
	}
	if len(tj.Model.Vocab) == 0 {
		return nil, fmt.Errorf("%w: model.vocab is missing or empty", ErrInvalid)
	}
	merges, err := parseMerges(tj.Model.Merges)
	if err != nil {
		return nil, err
	}

	v := &Vocabulary{SpecialIDs: map[string]uint32{}}
	if tj.Model.ByteFallback {
		err = v.sentencePiece(&tj, merges)
	} else {
		err = v.byteLevel(&tj, merges)
	}
	if err != nil {
		return nil, err
	}
	if err := checkUnique(v.Tokens); err != nil {
		return nil, err
	}
	if err := v.specials(&tj, cfg); err != nil {
		return nil, err
	}
	if err := v.chatTemplates(cfg); err != nil {
		return nil, err
	}
	return v, nil
}

// parseMerges reads model.merges in either of its formats: "a b" strings,
// or (since transformers 4.45, so that a token may hold a space) [a, b]
// pairs.
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, fmt.Errorf("%w: model.merges is missing (a BPE tokenizer needs its merge rules)", ErrInvalid)
	}
	var pairs [][2]string
	if inner := bytes.TrimSpace(raw[1:]); raw[0] == '[' && len(inner) > 0 && inner[0] == '[' {
		if err := json.Unmarshal(raw, &pairs); err != nil {
			return nil, fmt.Errorf("%w: model.merges: want [left, right] pairs or \"left right\" strings: %w", ErrInvalid, err)
		}
		return pairs, nil
	}
	var lines []string
	if err := json.Unmarshal(raw, &lines); err != nil {
		return nil, fmt.Errorf("%w: model.merges: want \"left right\" strings or [left, right] pairs: %w", ErrInvalid, err)
	}
	pairs = make([][2]string, len(lines))
	for i, m := range lines {
		// As llama.cpp splits them: at the first space after the first
		// character.
		sp := -1
		if len(m) > 1 {
			sp = strings.IndexByte(m[1:], ' ')
		}
		if sp < 0 {
			return nil, fmt.Errorf("%w: model.merges[%d] %q is not two tokens separated by a space", ErrInvalid, i, m)
		}
		pairs[i] = [2]string{m[:sp+1], m[sp+2:]}
	}
	return pairs, nil
}

// vocabularySize is one more than the largest id of the vocabulary and the
// added tokens, after checking that every id is in range.
func vocabularySize(tj *tokenizerJSON) (int, error) {
	size := 0
	check := func(what, text string, id int64) error {
		if id < 0 || id >= MaxVocabulary {
			return fmt.Errorf("%w: %s %q has id %d, outside 0..%d", ErrInvalid, what, text, id, MaxVocabulary-1)
		}
		size = max(size, int(id)+1)
		return nil
	}
	for text, id := range tj.Model.Vocab {
		if err := check("model.vocab token", text, id); err != nil {
			return 0, err
		}
	}
	for _, a := range tj.AddedTokens {
		if err := check("added token", a.Content, a.ID); err != nil {
			return 0, err
		}
	}
	return size, nil
}

// tokenTable lays out the tokens by id, [PADn] (unused) in the holes, and
// marks which ids the added tokens hold.
func tokenTable(tj *tokenizerJSON) (tokens []string, types []int32, err error) {
	size, err := vocabularySize(tj)
	if err != nil {
		return nil, nil, err
	}
	tokens = make([]string, size)
	types = make([]int32, size)
	for text, id := range tj.Model.Vocab {
		tokens[id], types[id] = text, TypeNormal
	}
	for i := range tokens {
		if types[i] == 0 {
			tokens[i], types[i] = fmt.Sprintf("[PAD%d]", i), TypeUnused
		}
	}
	return tokens, types, nil
}

// addedType is the type llama.cpp's converter gives an added token: control
// when tokenizer.json marks it special or its name looks like one, else
// user-defined. It also returns the text to store: user-defined tokens are
// matched in raw text before tokenizing, so SentencePiece's space mark in
// them is spelled as the space it stands for.
func addedType(a addedToken) (string, int32) {
	if a.Special || looksSpecial(a.Content) {
		return a.Content, TypeControl
	}
	return strings.ReplaceAll(a.Content, spaceMark, " "), TypeUserDefined
}

// looksSpecial is llama.cpp's list of added tokens that some models fail to
// mark special but that are control tokens all the same.
func looksSpecial(s string) bool {
	switch s {
	case "<pad>", "<mask>", "<2mass>", "[@BOS@]":
		return true
	}
	return strings.HasPrefix(s, "<|") && strings.HasSuffix(s, "|>") ||
		strings.HasPrefix(s, "<｜") && strings.HasSuffix(s, "｜>") ||
		strings.HasPrefix(s, "<unused") && strings.HasSuffix(s, ">")
}

// byteLevel converts a GPT-2 style byte-level BPE tokenizer.
func (v *Vocabulary) byteLevel(tj *tokenizerJSON, merges [][2]string) error {
	v.Model = "gpt2"
	pre, err := bytePre(tj.PreTokenizer)
	if err != nil {
		return err
	}
	v.Pre = pre
	// llama.cpp's pre-tokenizer name decides whether whole words skip the
	// merges; a tokenizer.json that disagrees with it would tokenize
	// differently.
	if want := pre == "llama-bpe"; tj.Model.IgnoreMerges != want {
		return fmt.Errorf("%w: model.ignore_merges is %v, but llama.cpp's %q pre-tokenizer implies %v", ErrUnsupported, tj.Model.IgnoreMerges, pre, want)
	}
	if err := checkByteNormalizer(tj.Normalizer); err != nil {
		return err
	}
	if v.Tokens, v.Types, err = tokenTable(tj); err != nil {
		return err
	}
	for _, a := range tj.AddedTokens {
		v.Tokens[a.ID], v.Types[a.ID] = addedType(a)
	}
	v.Merges = make([]string, len(merges))
	for i, m := range merges {
		// A space inside a half would split the rule at the wrong place;
		// like llama.cpp's converter, spell it as the byte alphabet does
		// ("Ġ", U+0120).
		v.Merges[i] = strings.ReplaceAll(m[0], " ", "\u0120") + " " + strings.ReplaceAll(m[1], " ", "\u0120")
	}
	return nil
}

// bytePre names the byte-level pre-tokenizer: a Split on a known pattern
// followed by ByteLevel without its own regex, or GPT-2's ByteLevel alone.
func bytePre(raw json.RawMessage) (string, error) {
	var p component
	if err := unmarshalComponent(raw, "pre_tokenizer", &p); err != nil {
		return "", err
	}
	steps := []component{p}
	if p.Type == "Sequence" {
		steps = p.Pretokenizers
	}
	if len(steps) == 1 && steps[0].Type == "ByteLevel" && (steps[0].UseRegex == nil || *steps[0].UseRegex) {
		if err := checkByteLevel(steps[0]); err != nil {
			return "", err
		}
		return "gpt-2", nil
	}
	if len(steps) != 2 || steps[0].Type != "Split" || steps[1].Type != "ByteLevel" {
		return "", fmt.Errorf("%w: pre_tokenizer %s: want a Split on a regex then ByteLevel (Llama 3, Qwen), or ByteLevel alone (GPT-2)", ErrUnsupported, describe(steps))
	}
	split, bl := steps[0], steps[1]
	if split.Pattern.Regex == nil || split.Behavior != "Isolated" || split.Invert {
		return "", fmt.Errorf("%w: pre_tokenizer Split: want an isolated, non-inverted regex", ErrUnsupported)
	}
	pre, ok := bytePatterns[*split.Pattern.Regex]
	if !ok {
		return "", fmt.Errorf("%w: pre_tokenizer Split regex %q is none of Llama 3's or Qwen2's patterns", ErrUnsupported, *split.Pattern.Regex)
	}
	if bl.UseRegex != nil && *bl.UseRegex {
		return "", fmt.Errorf("%w: pre_tokenizer ByteLevel use_regex is true after a Split: the text would be split twice", ErrUnsupported)
	}
	if err := checkByteLevel(bl); err != nil {
		return "", err
	}
	return pre, nil
}

func checkByteLevel(c component) error {
	if c.AddPrefixSpace != nil && *c.AddPrefixSpace {
		return fmt.Errorf("%w: pre_tokenizer ByteLevel add_prefix_space is true, which llama.cpp's byte-level BPE does not do", ErrUnsupported)
	}
	return nil
}

// checkByteNormalizer accepts no normalizer or NFC (Qwen's), which
// llama.cpp does not apply: text that is not in NFC already tokenizes
// differently there than in Hugging Face's tokenizer, and here as in
// llama.cpp. Another normalizer would change more text than that.
func checkByteNormalizer(raw json.RawMessage) error {
	var n component
	if err := unmarshalComponent(raw, "normalizer", &n); err != nil {
		return err
	}
	if n.Type != "" && n.Type != "NFC" {
		return fmt.Errorf("%w: normalizer %q on a byte-level BPE tokenizer (only none or NFC convert)", ErrUnsupported, n.Type)
	}
	return nil
}

// sentencePiece converts a SentencePiece BPE tokenizer with byte fallback
// (Gemma's). llama.cpp's converter reads such a model's tokenizer.model,
// which holds a score per piece that its tokenizer merges by (highest
// first); tokenizer.json has no scores, only the merge rules that Hugging
// Face's converter derived from them, sorted by the score of the piece each
// rule makes. So the score of a piece here is minus the rank of the first
// rule that makes it: the same order, hence the same merges. (The piece
// order, minus the id, would do as well for Gemma 2 and 3, whose ids rise
// with that rank without exception; the rank is what tokenizer.json states.)
// Pieces no rule makes (single characters, byte tokens) are never the
// result of a merge, so their score only has to be lower than the others.
func (v *Vocabulary) sentencePiece(tj *tokenizerJSON, merges [][2]string) error {
	v.Model, v.Pre = "llama", "default"
	prefix, err := spmSpacePrefix(tj.Normalizer, tj.PreTokenizer)
	if err != nil {
		return err
	}
	v.AddSpacePrefix = &prefix
	if v.Tokens, v.Types, err = tokenTable(tj); err != nil {
		return err
	}
	v.Scores = make([]float32, len(v.Tokens))
	for id, text := range v.Tokens {
		switch {
		case v.Types[id] == TypeUnused:
			v.Scores[id] = -10000 // llama.cpp's converter's score for a hole
			continue
		case isByteToken(text):
			v.Types[id] = TypeByte
		case tj.Model.UnkToken != nil && text == *tj.Model.UnkToken:
			v.Types[id] = TypeUnknown
		}
		v.Scores[id] = -float32(len(merges) + id)
	}
	for rank, m := range merges {
		if id, ok := tj.Model.Vocab[m[0]+m[1]]; ok && v.Scores[id] < -float32(rank) {
			v.Scores[id] = -float32(rank)
		}
	}
	for _, a := range tj.AddedTokens {
		// llama.cpp's converter scores added tokens -1000; they are matched
		// whole before merging, so their score never decides a merge.
		v.Tokens[a.ID], v.Types[a.ID] = addedType(a)
		v.Scores[a.ID] = -1000
	}
	return nil
}

// isByteToken reports whether text is a byte-fallback token, "<0xAB>".
func isByteToken(text string) bool {
	if len(text) != 6 || !strings.HasPrefix(text, "<0x") || text[5] != '>' {
		return false
	}
	hex := func(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' || 'a' <= c && c <= 'f' }
	return hex(text[3]) && hex(text[4])
}

// spmSpacePrefix checks that the normalizer and pre-tokenizer do what
// llama.cpp's SentencePiece tokenizer does, spaces as "▁", and reports
// whether they also start the text with one (Llama 2's Prepend or a
// Metaspace that prepends; Gemma does not).
func spmSpacePrefix(normalizer, preTokenizer json.RawMessage) (bool, error) {
	var n, p component
	if err := unmarshalComponent(normalizer, "normalizer", &n); err != nil {
		return false, err
	}
	if err := unmarshalComponent(preTokenizer, "pre_tokenizer", &p); err != nil {
		return false, err
	}
	prefix, escapes := false, false
	steps := []component{n}
	if n.Type == "Sequence" {
		steps = n.Normalizers
	}
	for _, s := range steps {
		switch {
		case s.Type == "":
		case s.Type == "Prepend" && s.Prepend == spaceMark:
			prefix = true
		case s.Type == "Replace" && s.Pattern.String != nil && *s.Pattern.String == " " && s.Content == spaceMark:
			escapes = true
		default:
			return false, fmt.Errorf("%w: normalizer %s: a SentencePiece tokenizer converts with Replace(\" \", \"▁\") and optionally Prepend(\"▁\")", ErrUnsupported, describe(steps))
		}
	}
	switch {
	case p.Type == "":
	case p.Type == "Metaspace" && p.Replacement == spaceMark:
		escapes = true
		prefix = p.PrependScheme != "never" && (p.AddPrefixSpace == nil || *p.AddPrefixSpace)
	case p.Type == "Split" && p.Pattern.String != nil && *p.Pattern.String == " ":
		// Gemma's: after the normalizer there is no space left to split at.
		if !escapes {
			return false, fmt.Errorf("%w: pre_tokenizer Split on \" \" without the normalizer's Replace(\" \", \"▁\")", ErrUnsupported)
		}
	default:
		return false, fmt.Errorf("%w: pre_tokenizer %q on a SentencePiece tokenizer (only none, Metaspace or Gemma's Split on \" \" convert)", ErrUnsupported, p.Type)
	}
	if !escapes {
		return false, fmt.Errorf("%w: a byte_fallback BPE tokenizer without spaces as \"▁\" (normalizer Replace or pre_tokenizer Metaspace) is not SentencePiece's", ErrUnsupported)
	}
	return prefix, nil
}

// unmarshalComponent reads a normalizer, pre-tokenizer or post-processor;
// null leaves c empty.
func unmarshalComponent(raw json.RawMessage, what string, c *component) error {
	if len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(raw, c); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalid, what, err)
	}
	return nil
}

func describe(steps []component) string {
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = s.Type
	}
	return "[" + strings.Join(names, ", ") + "]"
}

// checkUnique fails on two ids with the same text, which llama.cpp refuses
// to load (a text must map back to one id).
func checkUnique(tokens []string) error {
	seen := make(map[string]int, len(tokens))
	for id, text := range tokens {
		if first, dup := seen[text]; dup {
			return fmt.Errorf("%w: tokens %d and %d are both %q", ErrInvalid, first, id, text)
		}
		seen[text] = id
	}
	return nil
}

// specialTypes are the special tokens llama.cpp's converter looks up in
// tokenizer_config.json, in its order.
var specialTypes = []string{"bos", "eos", "unk", "sep", "pad", "mask"}

// specials reads the special token ids and the add_bos/add_eos flags the
// way llama.cpp's converter does: first from the post-processor's template
// (a leading BOS means add_bos), then from tokenizer_config.json, whose
// add_<name>_token flags win.
func (v *Vocabulary) specials(tj *tokenizerJSON, cfg map[string]json.RawMessage) error {
	names := map[string]string{}
	for _, typ := range specialTypes {
		name, ok, err := configToken(cfg, typ+"_token")
		if err != nil {
			return err
		}
		if ok {
			names[typ] = name
		}
	}

	var post component
	if err := unmarshalComponent(tj.PostProcessor, "post_processor", &post); err != nil {
		return err
	}
	procs := []component{post}
	if post.Type == "Sequence" {
		procs = post.Processors
	}
	for _, p := range procs {
		if p.Type != "TemplateProcessing" || len(p.Single) < 2 {
			continue
		}
		if first := p.Single[0].SpecialToken; first != nil {
			if _, ok := names["bos"]; !ok {
				names["bos"] = first.ID
			}
			v.AddBOS = ptr(first.ID == names["bos"])
		}
		if last := p.Single[len(p.Single)-1].SpecialToken; last != nil {
			if _, ok := names["eos"]; !ok {
				names["eos"] = last.ID
			}
			v.AddEOS = ptr(last.ID == names["eos"])
		}
	}
	for _, flag := range []struct {
		key string
		dst **bool
	}{{"add_bos_token", &v.AddBOS}, {"add_eos_token", &v.AddEOS}} {
		raw, ok := cfg[flag.key]
		if !ok || bytes.Equal(raw, []byte("null")) {
			continue
		}
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return fmt.Errorf("%w: tokenizer_config.json %s is %s, want true or false", ErrInvalid, flag.key, raw)
		}
		*flag.dst = &b
	}

	for _, typ := range specialTypes {
		name, ok := names[typ]
		if !ok {
			continue
		}
		id, ok := findToken(tj, name)
		if !ok {
			return fmt.Errorf("%w: tokenizer_config.json %s_token %q is not a token of tokenizer.json", ErrInvalid, typ, name)
		}
		v.SpecialIDs[typ] = uint32(id)
	}
	if v.AddBOS != nil && *v.AddBOS {
		if _, ok := v.SpecialIDs["bos"]; !ok {
			return fmt.Errorf("%w: add_bos_token is true but there is no bos_token", ErrInvalid)
		}
	}
	if v.AddEOS != nil && *v.AddEOS {
		if _, ok := v.SpecialIDs["eos"]; !ok {
			return fmt.Errorf("%w: add_eos_token is true but there is no eos_token", ErrInvalid)
		}
	}
	return nil
}

// findToken looks a special token up as llama.cpp's converter does, among
// the added tokens (first match), and then, where the converter would skip
// it, in the vocabulary.
func findToken(tj *tokenizerJSON, content string) (int64, bool) {
	for _, a := range tj.AddedTokens {
		if a.Content == content {
			return a.ID, true
		}
	}
	id, ok := tj.Model.Vocab[content]
	return id, ok
}

// configToken reads a special token of tokenizer_config.json: a string, an
// object with its content, or null (none).
func configToken(cfg map[string]json.RawMessage, key string) (string, bool, error) {
	raw, ok := cfg[key]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, s != "", nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return "", false, fmt.Errorf("%w: tokenizer_config.json %s is %s, want a string or an object with \"content\"", ErrInvalid, key, short(raw))
	}
	return *obj.Content, *obj.Content != "", nil
}

// chatTemplates reads chat_template: one template, or a list of named ones
// of which "default" is tokenizer.chat_template.
func (v *Vocabulary) chatTemplates(cfg map[string]json.RawMessage) error {
	raw, ok := cfg["chat_template"]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(raw, &v.ChatTemplate); err == nil {
		return nil
	}
	var named []struct {
		Name     string  `json:"name"`
		Template *string `json:"template"`
	}
	if err := json.Unmarshal(raw, &named); err != nil {
		return fmt.Errorf("%w: tokenizer_config.json chat_template is %s, want a string or a list of {\"name\", \"template\"}", ErrInvalid, short(raw))
	}
	for _, t := range named {
		if t.Name == "" || t.Template == nil {
			continue
		}
		// llama.cpp's writer keeps a name to letters, digits and '_', as
		// it becomes part of a metadata key.
		name := strings.Map(func(r rune) rune {
			if r < 128 && ('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
				return r
			}
			return '_'
		}, t.Name)
		if name == "default" {
			v.ChatTemplate = *t.Template
			continue
		}
		if v.ChatTemplates == nil {
			v.ChatTemplates = map[string]string{}
		}
		v.ChatTemplates[name] = *t.Template
	}
	return nil
}

func short(raw json.RawMessage) string {
	s := string(raw)
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}

func ptr[T any](v T) *T { return &v }

// Metadata is the vocabulary as GGUF metadata, in the order llama.cpp's
// converter writes it.
func (v *Vocabulary) Metadata() []gguf.KV {
	str := func(k, s string) gguf.KV { return gguf.KV{Key: k, Type: gguf.TypeString, Value: s} }
	meta := []gguf.KV{
		str("tokenizer.ggml.model", v.Model),
		str("tokenizer.ggml.pre", v.Pre),
		{Key: "tokenizer.ggml.tokens", Type: gguf.TypeArray, Value: v.Tokens},
	}
	if v.Scores != nil {
		meta = append(meta, gguf.KV{Key: "tokenizer.ggml.scores", Type: gguf.TypeArray, Value: v.Scores})
	}
	meta = append(meta, gguf.KV{Key: "tokenizer.ggml.token_type", Type: gguf.TypeArray, Value: v.Types})
	if v.Merges != nil {
		meta = append(meta, gguf.KV{Key: "tokenizer.ggml.merges", Type: gguf.TypeArray, Value: v.Merges})
	}
	for _, typ := range specialTypes {
		if id, ok := v.SpecialIDs[typ]; ok {
			meta = append(meta, gguf.KV{Key: "tokenizer.ggml." + specialKey[typ] + "_token_id", Type: gguf.TypeUint32, Value: id})
		}
	}
	for _, flag := range []struct {
		key string
		v   *bool
	}{{"tokenizer.ggml.add_bos_token", v.AddBOS}, {"tokenizer.ggml.add_eos_token", v.AddEOS}, {"tokenizer.ggml.add_space_prefix", v.AddSpacePrefix}} {
		if flag.v != nil {
			meta = append(meta, gguf.KV{Key: flag.key, Type: gguf.TypeBool, Value: *flag.v})
		}
	}
	if len(v.ChatTemplates) > 0 {
		names := make([]string, 0, len(v.ChatTemplates))
		for name := range v.ChatTemplates {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			meta = append(meta, str("tokenizer.chat_template."+name, v.ChatTemplates[name]))
		}
		meta = append(meta, gguf.KV{Key: "tokenizer.chat_templates", Type: gguf.TypeArray, Value: names})
	}
	if v.ChatTemplate != "" {
		meta = append(meta, str("tokenizer.chat_template", v.ChatTemplate))
	}
	return meta
}

// specialKey is the part of a special token's metadata key before
// "_token_id" (llama.cpp spells the separator's "seperator").
var specialKey = map[string]string{"bos": "bos", "eos": "eos", "unk": "unknown", "sep": "seperator", "pad": "padding", "mask": "mask"}

// WriteGGUF writes a vocabulary-only GGUF file, as llama.cpp's
// models/ggml-vocab-*.gguf are: general.architecture (llama.cpp needs one to
// open the file; it does not change how the vocabulary tokenizes) and the
// tokenizer metadata, no tensors.
func (v *Vocabulary) WriteGGUF(w io.Writer, architecture string) error {
	meta := append([]gguf.KV{{Key: "general.architecture", Type: gguf.TypeString, Value: architecture}}, v.Metadata()...)
	if err := gguf.Write(w, meta, nil); err != nil {
		return fmt.Errorf("write vocabulary: %w", err)
	}
	return nil
}
