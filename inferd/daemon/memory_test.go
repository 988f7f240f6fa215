package daemon

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/inferd/engine/llama/llamatest"
	"github.com/slmops/slmops/inferd/gguf"
)

// TestAModelThatDoesNotFitIsRefusedBeforeItLoads: inferd estimates the
// model's memory from the file (its tensors, and the KV cache of
// maxConcurrentRequests sequences at the context, cut to the model's) and,
// when that is more than its memory limit, fails with InsufficientMemory
// before it loads anything: not ready, the reason and the figures in the
// termination message and the report, instead of a kill for memory in the
// middle of a load. One byte more and it loads, is Ready, and reports the
// same estimate for the operator's fit check.
func TestAModelThatDoesNotFitIsRefusedBeforeItLoads(t *testing.T) {
	// 2 layers, 2 KV heads of 64: 2048 bytes of KV cache a token; the
	// model's context is 256 tokens.
	var model bytes.Buffer
	if err := llamatest.WriteRandom(&model, llamatest.Edge("edge", 2, gguf.Q8_0, 3)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(path, model.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var weights int64
	for _, tensor := range m.Tensors {
		weights += int64(tensor.Size)
	}
	m.Close()
	// Two sequences at a context of 1024, cut to the model's 256.
	want := weights + 2*256*2048
	sum := sha256.Sum256(model.Bytes())
	digest := "sha256:" + hex.EncodeToString(sum[:])
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "m.gguf", time.Time{}, bytes.NewReader(model.Bytes()))
	}))
	defer origin.Close()

	run := func(t *testing.T, limit int64) (config.Report, bool, string) {
		t.Helper()
		termination := filepath.Join(t.TempDir(), "termination-log")
		cfg := &config.Config{
			Model:   config.Model{Name: "edge", URL: origin.URL + "/m.gguf", AllowInsecureHTTP: true, Digest: digest},
			Runtime: config.Runtime{ContextLength: 1024, MaxConcurrentRequests: 2},
			Port:    8080, CacheDir: filepath.Join(t.TempDir(), "cache"), Report: config.Reporting{Enabled: true},
		}
		got, ready := runUntilReport(t, cfg, Options{MemoryLimitBytes: limit, TerminationLog: termination})
		msg, _ := os.ReadFile(termination)
		return got, ready, string(msg)
	}

	t.Run("one byte short", func(t *testing.T) {
		got, ready, termination := run(t, want-1)
		if ready {
			t.Error("ready with a model that does not fit")
		}
		if got.Passed || got.Reason != config.ReasonInsufficientMemory || got.MemoryEstimateBytes != want || got.LoadSeconds != 0 {
			t.Errorf("report %+v; want InsufficientMemory with the estimate %d and no load", got, want)
		}
		for _, s := range []string{"InsufficientMemory: the model needs about", "2 sequences at 256 tokens", "lower spec.runtime.contextLength or maxConcurrentRequests"} {
			if !strings.Contains(termination, s) {
				t.Errorf("termination message %q lacks %q", termination, s)
			}
		}
	})
	t.Run("exactly enough", func(t *testing.T) {
		got, ready, _ := run(t, want)
		if !ready || !got.Passed || got.MemoryEstimateBytes != want || got.LoadSeconds <= 0 {
			t.Errorf("ready %v, report %+v; want Ready, passed, loaded, and the estimate %d", ready, got, want)
		}
	})
	t.Run("no limit known", func(t *testing.T) {
		if got, ready, _ := run(t, 0); !ready || got.MemoryEstimateBytes != want {
			t.Errorf("ready %v, report %+v; want Ready with the estimate %d", ready, got, want)
		}
	})
}
