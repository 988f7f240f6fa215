package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slmops/slmops/inferd/engine/check"
	"github.com/slmops/slmops/inferd/engine/llama/llamatest"
	"github.com/slmops/slmops/inferd/gguf"
)

// TestCheckSubcommand: inferd check passes a generated model with its
// estimate, refuses a file with a type this build has no kernels for with
// the reason, and exits 1 when any file does not run.
func TestCheckSubcommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "edge.gguf")
	var b bytes.Buffer
	if err := llamatest.WriteRandom(&b, llamatest.Edge("edge", 2, gguf.Q4_0, 1)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "f64.gguf")
	b.Reset()
	if err := gguf.Write(&b, []gguf.KV{{Key: "general.architecture", Type: gguf.TypeString, Value: "llama"}},
		[]gguf.Tensor{{Name: "token_embd.weight", Dims: []uint64{8, 4}, Type: gguf.F64, Data: make([]byte, 8*4*8)}}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	var out, errs bytes.Buffer
	if code := runCheck([]string{"--context", "128", good}, &out, &errs); code != 0 {
		t.Fatalf("exit %d for a model this build runs:\n%s%s", code, out.String(), errs.String())
	}
	for _, want := range []string{good + ": llama, Q4_0", "context    128 (the model's 256)", "KV cache 256.0 KiB at 128 tokens", "runs on this build"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, out.String())
		}
	}
	// Two sequences at once: the weights once, the KV cache of each.
	out.Reset()
	if code := runCheck([]string{"--context", "128", "--concurrency", "2", good}, &out, &errs); code != 0 {
		t.Fatalf("exit %d with --concurrency 2:\n%s%s", code, out.String(), errs.String())
	}
	r, err := check.Check(good, 128)
	if err != nil {
		t.Fatal(err)
	}
	if want := "serving    2 sequences at once: " + check.Human(r.WeightsBytes+2*256<<10); !strings.Contains(out.String(), want) {
		t.Errorf("the report lacks %q:\n%s", want, out.String())
	}
	if code := runCheck([]string{"--concurrency", "0", good}, &out, &errs); code != 2 || !strings.Contains(errs.String(), "want at least 1") {
		t.Errorf("--concurrency 0: exit %d, %q", code, errs.String())
	}
	out.Reset()
	if code := runCheck([]string{good, bad, filepath.Join(dir, "missing.gguf")}, &out, &errs); code != 1 {
		t.Fatalf("exit %d with a file that does not run:\n%s", code, out.String())
	}
	for _, want := range []string{"does not run: tensor types this build has no kernels for: F64 (1 tensors)", "missing.gguf: does not run: not a readable GGUF file"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, out.String())
		}
	}
	if code := runCheck(nil, &out, &errs); code != 2 || !strings.Contains(errs.String(), "Usage: inferd check") {
		t.Errorf("no file: exit %d, %q", code, errs.String())
	}
}
