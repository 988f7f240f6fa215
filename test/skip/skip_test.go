package skip

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestASkipIsLogged: a skip lands in the log, one line naming the test,
// what was not checked and how to run it, and the test is skipped.
func TestASkipIsLogged(t *testing.T) {
	log := filepath.Join(t.TempDir(), "skips")
	t.Setenv(LogEnv, log)
	var skipped bool
	t.Run("inner", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		Because(t, "the llama.cpp\nparity", "make parity")
	})
	if !skipped {
		t.Fatal("Because did not skip")
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want := "test/skip TestASkipIsLogged/inner: the llama.cpp parity; to run it: make parity\n"
	if string(b) != want {
		t.Errorf("log %q; want %q", b, want)
	}
	if strings.Count(string(b), "\n") != 1 {
		t.Errorf("log %q: one line per skip", b)
	}
}
