package inferd

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/inferd/daemon"
	"github.com/slmops/slmops/inferd/gguf/gguftest"
	"github.com/slmops/slmops/inferd/server"
)

// TestACraftedModelIsInvalidNotACrash: a file whose digest is right but
// whose header is hostile (an F32 tensor of 2^62-8 elements, whose byte size
// wraps a naive bounds check) is refused by the running inferd as
// InvalidModel, in /status and in the termination message, and the process
// keeps serving its probes instead of panicking.
func TestACraftedModelIsInvalidNotACrash(t *testing.T) {
	var crafted []byte
	for _, c := range gguftest.Crafted() {
		if c.Name == "wrapping-size-f32" {
			crafted = c.Data
		}
	}
	if crafted == nil {
		t.Fatal("the corpus has no wrapping-size-f32 file")
	}
	m := modelFile{data: crafted, digest: generateDigest(crafted)}
	cfg := baseConfig(t, "crafted", m, origin(t, crafted, nil).URL+"/m.gguf")
	// What the file claims, so that nothing but its layout can refuse it.
	cfg.Model.Architecture, cfg.Model.Quantization = gguftest.Architecture, "F32"
	cfg.SelfTest = goldenSelfTest()
	p := start(t, cfg)

	st := p.waitPhase(server.PhaseFailed, 30*time.Second)
	if st.Reason != daemon.ReasonInvalidModel || !strings.Contains(st.Message, "invalid GGUF") || !strings.Contains(st.Message, "ends past the end of the file") {
		t.Errorf("status %s %q; want %s saying the tensor ends past the end of the file", st.Reason, st.Message, daemon.ReasonInvalidModel)
	}
	if code := p.readyz(); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz is %d; want 503", code)
	}
	msg, _ := os.ReadFile(p.terminationLog)
	if reason, _, ok := config.ParseTermination(string(msg)); !ok || reason != daemon.ReasonInvalidModel {
		t.Errorf("termination message %q; want %s: ...", msg, daemon.ReasonInvalidModel)
	}
	select {
	case <-p.exited:
		t.Fatalf("inferd exited: %v", p.exitErr)
	default:
	}
	if logs := p.Logs(); strings.Contains(logs, "panic") {
		t.Errorf("inferd logged a panic:\n%s", logs)
	}
}
