package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/inferd/engine"
	_ "github.com/slmops/slmops/inferd/engine/bigram"
	_ "github.com/slmops/slmops/inferd/engine/llama"
	"github.com/slmops/slmops/inferd/gguf/gguftest"
)

// TestCraftedModelsAreInvalidModels loads every crafted file of the corpus
// the way prepare does (engine.Load with the architectures inferd is built
// with) and checks that each ends in an error the daemon reports as
// InvalidModel, never in a panic; the file they are made from loads.
func TestCraftedModelsAreInvalidModels(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "valid.gguf")
	if err := os.WriteFile(path, gguftest.Valid(), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := engine.Load(path, engine.Expect{Architecture: gguftest.Architecture}, engine.Options{})
	if err != nil {
		t.Fatalf("the file the corpus is made from does not load: %v", err)
	}
	_ = e.Close()

	for _, c := range gguftest.Crafted() {
		t.Run(c.Name, func(t *testing.T) {
			path := filepath.Join(dir, c.Name+".gguf")
			if err := os.WriteFile(path, c.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			e, err := engine.Load(path, engine.Expect{}, engine.Options{})
			if err == nil {
				_ = e.Close()
				t.Fatalf("loaded; want InvalidModel (%s)", c.Why)
			}
			msg := config.FormatTermination(loadFailure(err), "load sha256:0: "+err.Error())
			if reason, _, ok := config.ParseTermination(msg); !ok || reason != ReasonInvalidModel || !strings.Contains(msg, "invalid GGUF") {
				t.Errorf("termination message %q; want %s: ... invalid GGUF ... (%s)", msg, ReasonInvalidModel, c.Why)
			}
		})
	}
}
