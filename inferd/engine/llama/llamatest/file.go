package llamatest

import (
	"os"
	"path/filepath"
	"testing"
)

// WriteFile writes the model of s to model.gguf in a folder of the test's
// own, and returns its path.
func WriteFile(t testing.TB, s RandomSpec) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteRandom(f, s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
