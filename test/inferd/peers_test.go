package inferd

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/inferd/daemon"
	"github.com/slmops/slmops/inferd/engine/bigram"
	"github.com/slmops/slmops/inferd/fetch"
	"github.com/slmops/slmops/inferd/gguf"
	"github.com/slmops/slmops/inferd/server"
)

// TestNodesOfASiteShareTheModel runs two inferd processes as two nodes of a
// site: the first fetches from the origin and serves its verified copy; the
// second is pointed at a peer that corrupts what it sends, then at the
// first. The second skips the liar, takes the first's copy, verifies and
// serves it; the origin sent the model once for the two nodes.
func TestNodesOfASiteShareTheModel(t *testing.T) {
	m := generate(t, bigram.BuildOptions{Type: gguf.Q8_0})
	var originBytes atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(&counting{ResponseWriter: w, n: &originBytes}, r, "model.gguf", time.Unix(0, 0), bytes.NewReader(m.data))
	}))
	defer origin.Close()
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bad := bytes.Clone(m.data)
		bad[len(bad)/2] ^= 0xff
		http.ServeContent(w, r, "", time.Unix(0, 0), bytes.NewReader(bad))
	}))
	defer liar.Close()

	cfgA := baseConfig(t, "tiny", m, origin.URL)
	cfgA.Peers.Serve = true
	a := start(t, cfgA)
	a.waitPhase(server.PhaseReady, 30*time.Second)

	cfgB := baseConfig(t, "tiny", m, origin.URL)
	cfgB.Peers = config.Peers{From: []string{liar.URL, a.url}}
	b := start(t, cfgB)
	st := b.waitPhase(server.PhaseReady, 30*time.Second)

	if got := originBytes.Load(); got != int64(len(m.data)) {
		t.Errorf("the origin sent %d bytes for two nodes; want one copy, %d", got, len(m.data))
	}
	if st.Model.DownloadBytes != 0 || st.Model.PeerDownloadBytes != 2*int64(len(m.data)) {
		t.Errorf("node B: %d bytes from the origin, %d from peers; want 0 and two copies (the liar's, thrown away, and A's)",
			st.Model.DownloadBytes, st.Model.PeerDownloadBytes)
	}
	logs := b.Logs()
	if !strings.Contains(logs, "Skipped a peer") || !strings.Contains(logs, fetch.ErrDigestMismatch.Error()) {
		t.Errorf("node B's log does not say it skipped the corrupting peer:\n%s", logs)
	}
	// A node that does not share serves no blobs.
	resp, err := http.Get(b.url + fetch.BlobPath + m.digest)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Error("node B serves its cache without peers.serve")
	}
}

type counting struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *counting) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// TestStagersShareWithinTheirSite runs inferd as a stager (config.stage) on
// three nodes: A fetches from the origin; B and C read the operator's peer
// directory, where A is B's site peer and C sits in another site. B takes
// A's copy; C, with no peer in its site, goes to the origin. A stager is
// ready with the verified file in its cache, loads no model and serves no
// completions.
func TestStagersShareWithinTheirSite(t *testing.T) {
	m := generate(t, bigram.BuildOptions{Type: gguf.Q8_0})
	var originBytes atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(&counting{ResponseWriter: w, n: &originBytes}, r, "model.gguf", time.Unix(0, 0), bytes.NewReader(m.data))
	}))
	defer origin.Close()

	stager := func(node string, dir *config.PeerDirectory) *inferd {
		cfg := baseConfig(t, "tiny", m, origin.URL)
		cfg.Stage, cfg.Peers.Serve = true, true
		if dir != nil {
			b, err := json.Marshal(dir)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Peers.File = filepath.Join(t.TempDir(), config.PeerDirectoryKey)
			if err := os.WriteFile(cfg.Peers.File, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return startOn(t, node, cfg)
	}
	a := stager("edge-a", nil)
	stA := a.waitPhase(server.PhaseStaged, 30*time.Second)
	if a.readyz() != http.StatusOK || stA.Model.DownloadBytes != int64(len(m.data)) {
		t.Fatalf("stager A: readyz %d, %d bytes from the origin; want 200 and one copy", a.readyz(), stA.Model.DownloadBytes)
	}
	resp, err := http.Post(a.url+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"tiny","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a stager answered a completion with %d; want 503", resp.StatusCode)
	}
	if strings.Contains(a.Logs(), "Model loaded") {
		t.Error("a stager loaded the model")
	}

	dir := &config.PeerDirectory{
		Nodes: map[string]string{"edge-a": "site-1", "edge-b": "site-1", "edge-c": "site-2"},
		Blobs: map[string]map[string][]config.PeerEntry{m.digest: {"site-1": {{Node: "edge-a", URL: a.url}}}},
	}
	b := stager("edge-b", dir)
	stB := b.waitPhase(server.PhaseStaged, 30*time.Second)
	if stB.Model.DownloadBytes != 0 || stB.Model.PeerDownloadBytes != int64(len(m.data)) {
		t.Errorf("stager B: %d bytes from the origin, %d from peers; want 0 and one copy from A", stB.Model.DownloadBytes, stB.Model.PeerDownloadBytes)
	}
	c := stager("edge-c", dir)
	stC := c.waitPhase(server.PhaseStaged, 30*time.Second)
	if stC.Model.PeerDownloadBytes != 0 || stC.Model.DownloadBytes != int64(len(m.data)) {
		t.Errorf("stager C (another site): %d bytes from peers, %d from the origin; want 0 and one copy", stC.Model.PeerDownloadBytes, stC.Model.DownloadBytes)
	}
	if got := originBytes.Load(); got != 2*int64(len(m.data)) {
		t.Errorf("the origin sent %d bytes for three stagers in two sites; want two copies, %d", got, 2*len(m.data))
	}
}

// TestAStagerThatCannotHoldTheModelExits gives a stager a disk headroom no
// filesystem has: it exits at once, before any download, with a termination
// message that names the reason the operator reports.
func TestAStagerThatCannotHoldTheModelExits(t *testing.T) {
	m := generate(t, bigram.BuildOptions{Type: gguf.Q8_0})
	var requests atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.ServeContent(w, r, "model.gguf", time.Unix(0, 0), bytes.NewReader(m.data))
	}))
	defer origin.Close()
	cfg := baseConfig(t, "tiny", m, origin.URL)
	cfg.Stage = true
	cfg.Download.DiskHeadroomBytes = 1 << 60
	p := startOn(t, "edge-small", cfg)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("the stager did not exit\n%s", p.Logs())
	}
	msg, _ := os.ReadFile(p.terminationLog)
	if code := p.cmd.ProcessState.ExitCode(); code != 1 || !strings.HasPrefix(string(msg), daemon.ReasonInsufficientDisk+": ") {
		t.Errorf("exit code %d, termination message %q; want 1 and %s: ...", code, msg, daemon.ReasonInsufficientDisk)
	}
	if requests.Load() != 0 {
		t.Errorf("the origin got %d requests; want none before the disk check", requests.Load())
	}
}

// TestAStagerThatCannotFetchExitsWithTheReason: an origin that does not
// have the file is a permanent failure; the stager exits with FetchFailed
// in its termination message at once (the kubelet's back-off then paces
// its retries), instead of staying unready without a word.
func TestAStagerThatCannotFetchExitsWithTheReason(t *testing.T) {
	m := generate(t, bigram.BuildOptions{Type: gguf.Q8_0})
	origin := httptest.NewServer(http.NotFoundHandler())
	defer origin.Close()
	cfg := baseConfig(t, "tiny", m, origin.URL+"/gone.gguf")
	cfg.Stage = true
	p := startOn(t, "edge-offline", cfg)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("the stager did not exit\n%s", p.Logs())
	}
	msg, _ := os.ReadFile(p.terminationLog)
	if code := p.cmd.ProcessState.ExitCode(); code != 1 || !strings.HasPrefix(string(msg), daemon.ReasonFetchFailed+": ") || !strings.Contains(string(msg), "404") {
		t.Errorf("exit code %d, termination message %q; want 1 and %s: ... 404 ...", code, msg, daemon.ReasonFetchFailed)
	}
}
