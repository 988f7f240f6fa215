// Package bigramtest loads generated bigram models for tests of the code
// above the engine (self-test, server).
package bigramtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/engine/bigram"
)

// Engine writes a model built with o into a temporary file, loads it, and
// closes it when the test ends.
func Engine(tb testing.TB, o bigram.BuildOptions) engine.Engine {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "model.gguf")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := bigram.Write(f, o); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	e, err := engine.Load(path, engine.Expect{}, engine.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.Close() })
	return e
}
