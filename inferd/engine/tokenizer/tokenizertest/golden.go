// Package tokenizertest reads llama.cpp's tokenizer test files for the
// tests that compare tokenizers: NAME.inp, the test strings, and NAME.out,
// the ids a reference tokenizer gave each, as the snapshot's models/ folder
// and ../shared/testdata/tokenizers hold them.
//
// It may use only the standard library, so that every test package
// (inferd's too, cross-compiled for arm64) can import it.
package tokenizertest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// separator ends each string of a .inp file, on a line of its own; the
// newline before it is not part of the string, and the last one may lack
// its own newline.
const separator = "\n__ggml_vocab_test__"

// ParseInputs is the strings of a .inp file.
func ParseInputs(data []byte) []string {
	text := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), separator)
	return strings.Split(text, separator+"\n")
}

// ParseIDs is the ids of a .out file, or of a tokenizer's output in the
// same form: a line of space-separated ids per string.
func ParseIDs(data []byte) ([][]int32, error) {
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	out := make([][]int32, len(lines))
	for i, line := range lines {
		out[i] = []int32{}
		for _, f := range strings.Fields(line) {
			n, err := strconv.ParseInt(f, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", i+1, err)
			}
			out[i] = append(out[i], int32(n))
		}
	}
	return out, nil
}

// ReadInputs reads the strings of the .inp file at path.
func ReadInputs(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseInputs(data), nil
}

// ReadGolden reads dir/NAME.inp and dir/NAME.out: the strings and the ids
// of each, one line of ids per string.
func ReadGolden(dir, name string) ([]string, [][]int32, error) {
	inputs, err := ReadInputs(filepath.Join(dir, name+".inp"))
	if err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(filepath.Join(dir, name+".out"))
	if err != nil {
		return nil, nil, err
	}
	wants, err := ParseIDs(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s.out: %w", name, err)
	}
	if len(inputs) != len(wants) {
		return nil, nil, fmt.Errorf("%s has %d strings but %d lines of ids", name, len(inputs), len(wants))
	}
	return inputs, wants, nil
}
