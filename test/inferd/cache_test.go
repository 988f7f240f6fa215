package inferd

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slmops/slmops/inferd/config"
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
		// A few seconds (inferd checks every 2 s); the bound leaves room for
		// a busy machine and a slower check interval.
		if time.Since(deleted) > 20*time.Second {
			t.Fatal("the stager is still ready 20 s after its file was deleted")
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

// TestRolloutsSharingANodeCacheKeepEachOthersPins runs two rollouts' inferd
// processes on one node cache. The shop's pod serves C; its pins (from its
// mounted pins file) are its stable A and C: it evicts B, which nobody
// pins, and keeps A though no process holds it. Then the kiosk's stager
// fetches K; its own pins are K alone, and it still keeps A and C, which it
// knows of only through the shop's pin record in the cache.
func TestRolloutsSharingANodeCacheKeepEachOthersPins(t *testing.T) {
	c := generate(t, bigram.BuildOptions{Type: gguf.Q8_0})
	k := generate(t, bigram.BuildOptions{Type: gguf.Q8_0, Name: "kiosk"})
	cacheDir := t.TempDir()
	place := func(data []byte) string {
		t.Helper()
		digest := generateDigest(data)
		path := filepath.Join(cacheDir, "sha256", strings.TrimPrefix(digest, "sha256:"))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-time.Hour)
		if err := os.Chtimes(path, old, old); err != nil {
			t.Fatal(err)
		}
		return digest
	}
	a := place([]byte("the shop's stable model"))
	b := place([]byte("a canary that was rolled back and superseded"))
	pinsFile := func(digests ...string) string {
		t.Helper()
		raw, err := json.Marshal(config.Pins{Digests: digests})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), config.PinsKey)
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	inCache := func(digest string) bool {
		_, err := os.Stat(filepath.Join(cacheDir, "sha256", strings.TrimPrefix(digest, "sha256:")))
		return err == nil
	}

	shop := baseConfig(t, "tiny", c, origin(t, c.data, nil).URL)
	shop.CacheDir = cacheDir
	shop.Cache = config.Cache{PinsFile: pinsFile(a, c.digest), Owner: "edge.shop"}
	p := start(t, shop)
	p.waitPhase(server.PhaseReady, 30*time.Second)
	if inCache(b) || !inCache(a) || !inCache(c.digest) {
		t.Errorf("after the shop's prune: A %v, B %v, C %v in the cache; want A and C only", inCache(a), inCache(b), inCache(c.digest))
	}
	var rec struct {
		Digests []string `json:"digests"`
	}
	raw, err := os.ReadFile(filepath.Join(cacheDir, "pins", "edge.shop.json"))
	if err != nil || json.Unmarshal(raw, &rec) != nil {
		t.Fatalf("the shop's pin record: %v (%s)", err, raw)
	}
	if !slices.Contains(rec.Digests, a) || !slices.Contains(rec.Digests, c.digest) {
		t.Errorf("the shop's pin record lists %v; want A and C", rec.Digests)
	}

	kiosk := baseConfig(t, "kiosk", k, origin(t, k.data, nil).URL)
	kiosk.CacheDir = cacheDir
	kiosk.Stage = true
	kiosk.Cache = config.Cache{PinsFile: pinsFile(k.digest), Owner: "retail.kiosk"}
	s := startOn(t, "edge-test-0001", kiosk)
	s.waitPhase(server.PhaseStaged, 30*time.Second)
	if !inCache(a) || !inCache(c.digest) || !inCache(k.digest) {
		t.Errorf("after the kiosk's prune: A %v, C %v, K %v in the cache; want all three", inCache(a), inCache(c.digest), inCache(k.digest))
	}
}
