package inferd

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slmops/slmops/inferd/engine/bigram"
	"github.com/slmops/slmops/inferd/gguf"
	"github.com/slmops/slmops/inferd/server"
)

// TestAStagerWhoseFileIsDeletedGoesUnready: a ready stager whose verified
// file leaves the node cache (deleted by hand, or by a prune of an older
// inferd) is unready within seconds, fetches the file again without
// exiting (a restart would count as a failed stager for the operator), and
// is ready again once the verified file is back.
func TestAStagerWhoseFileIsDeletedGoesUnready(t *testing.T) {
	m := generate(t, bigram.BuildOptions{Type: gguf.Q8_0})
	var requests atomic.Int64
	again := make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) > 1 {
			// The fetch after the deletion waits until the test saw the
			// stager unready.
			select {
			case <-again:
			case <-r.Context().Done():
				return
			}
		}
		http.ServeContent(w, r, "model.gguf", time.Unix(0, 0), bytes.NewReader(m.data))
	}))
	defer origin.Close()
	cfg := baseConfig(t, "tiny", m, origin.URL)
	cfg.Stage = true
	p := startOn(t, "edge-stager", cfg)
	p.waitPhase(server.PhaseStaged, 30*time.Second)
	if code := p.readyz(); code != http.StatusOK {
		t.Fatalf("a staged stager answers /readyz %d; want 200", code)
	}

	path := filepath.Join(cfg.CacheDir, "sha256", strings.TrimPrefix(m.digest, "sha256:"))
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	for p.readyz() == http.StatusOK {
		if time.Since(deleted) > 10*time.Second {
			t.Fatal("the stager is still ready 10 s after its file was deleted")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("unready %s after the deletion", time.Since(deleted).Round(100*time.Millisecond))
	if st := p.status(); st.Phase != server.PhaseFetching {
		t.Errorf("phase %s (%s); want %s", st.Phase, st.Message, server.PhaseFetching)
	}

	close(again)
	p.waitPhase(server.PhaseStaged, 30*time.Second)
	if code := p.readyz(); code != http.StatusOK {
		t.Errorf("the stager answers /readyz %d once the file is back; want 200", code)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, m.data) {
		t.Errorf("the cache holds %d bytes (%v); want the verified model again", len(got), err)
	}
	select {
	case <-p.exited:
		t.Fatalf("the stager exited: %v", p.exitErr)
	default:
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("the origin got %d requests; want 2 (the staging and the fetch after the deletion)", n)
	}
}
