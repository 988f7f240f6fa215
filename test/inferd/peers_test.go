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
	if got := st.Model.PeerRejects[liar.URL]; got != 1 || len(st.Model.PeerRejects) != 1 {
		t.Errorf("node B's /status counts peer rejects %v; want 1 for the liar", st.Model.PeerRejects)
	}
	if got := b.metric("slmops_inferd_peer_rejects_total"); got != 1 {
		t.Errorf("slmops_inferd_peer_rejects_total = %v; want 1", got)
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

// exitOf waits until a stager exits and returns its exit code and
// termination message.
func exitOf(t *testing.T, p *inferd) (int, string) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("the stager did not exit\n%s", p.Logs())
	}
	msg, _ := os.ReadFile(p.terminationLog)
	return p.cmd.ProcessState.ExitCode(), string(msg)
}

// TestAStagerThatCannotFetchExitsWithTheReason: an origin that does not
// have the file rejects the request for every node; the stager exits after
// that one request with OriginRejected in its termination message (the
// kubelet's back-off then paces its retries, and the operator fails the
// rollout on one node's word), naming the URL without its signature.
func TestAStagerThatCannotFetchExitsWithTheReason(t *testing.T) {
	m := generate(t, bigram.BuildOptions{Type: gguf.Q8_0})
	var requests atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.NotFound(w, r)
	}))
	defer origin.Close()
	signed := strings.Replace(origin.URL, "http://", "http://user:PASS@", 1) + "/gone.gguf?X-Amz-Signature=SECRET"
	cfg := baseConfig(t, "tiny", m, signed)
	cfg.Stage = true
	p := startOn(t, "edge-offline", cfg)
	code, msg := exitOf(t, p)
	want := daemon.ReasonOriginRejected + ": origin answered 404 Not Found for " + origin.URL + "/gone.gguf?REDACTED"
	if code != 1 || strings.TrimSpace(msg) != want {
		t.Errorf("exit code %d, termination message %q; want 1 and %q", code, msg, want)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("the origin got %d requests; want 1 (a rejection is final)", n)
	}
	for what, out := range map[string]string{"the log": p.Logs(), "the termination message": msg} {
		if strings.Contains(out, "SECRET") || strings.Contains(out, "PASS") {
			t.Errorf("%s leaks the URL's secrets:\n%s", what, out)
		}
	}
}

// TestAStagerAgainstAnOriginWithTheWrongFileExitsWithDigestMismatch: the
// origin serves bytes that do not hash to spec.digest, round after round;
// the stager exits with DigestMismatch, the reason the operator fails the
// rollout with.
func TestAStagerAgainstAnOriginWithTheWrongFileExitsWithDigestMismatch(t *testing.T) {
	m := generate(t, bigram.BuildOptions{Type: gguf.Q8_0})
	wrong := bytes.Clone(m.data)
	wrong[len(wrong)/2] ^= 0xff
	var requests atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.ServeContent(w, r, "model.gguf", time.Unix(0, 0), bytes.NewReader(wrong))
	}))
	defer origin.Close()
	cfg := baseConfig(t, "tiny", m, origin.URL+"/m.gguf")
	cfg.Stage = true
	p := startOn(t, "edge-wrong", cfg)
	code, msg := exitOf(t, p)
	if code != 1 || !strings.HasPrefix(msg, daemon.ReasonDigestMismatch+": ") {
		t.Errorf("exit code %d, termination message %q; want 1 and %s: ...", code, msg, daemon.ReasonDigestMismatch)
	}
	t.Logf("%d requests; %s", requests.Load(), strings.TrimSpace(msg))
}

// TestAStagerWhoseFileRotsGoesUnreadyAndFetchesItAgain: the staged file is
// changed on disk; the stager stops serving it, is unready (so the
// operator drops it from the peer directory), fetches it again and is
// ready once more.
func TestAStagerWhoseFileRotsGoesUnreadyAndFetchesItAgain(t *testing.T) {
	m := generate(t, bigram.BuildOptions{Type: gguf.Q8_0})
	var originRequests atomic.Int64
	again := make(chan struct{}) // holds the second fetch until the test saw the stager unready
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if originRequests.Add(1) > 1 {
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
	cfg.Stage, cfg.Peers.Serve = true, true
	p := start(t, cfg)
	p.waitPhase(server.PhaseStaged, 30*time.Second)
	path := filepath.Join(cfg.CacheDir, "sha256", strings.TrimPrefix(m.digest, "sha256:"))
	rotten := bytes.Clone(m.data)
	rotten[100] ^= 0x01
	if err := os.WriteFile(path, rotten, 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Second)
	_ = os.Chtimes(path, later, later)

	st := p.waitPhase(server.PhaseFetching, 20*time.Second)
	if p.readyz() == http.StatusOK || !strings.Contains(st.Message, "no longer hashes to its digest") {
		t.Errorf("after its file rotted the stager is %s (%s: %s), readyz %d; want unready, saying why", st.Phase, st.Reason, st.Message, p.readyz())
	}
	resp, err := http.Get(p.url + fetch.BlobPath + m.digest)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Error("the stager serves its rotted file")
	}
	close(again)
	p.waitPhase(server.PhaseStaged, 20*time.Second)
	if p.readyz() != http.StatusOK || originRequests.Load() != 2 {
		t.Errorf("readyz %d after %d origin requests; want ready again after a second fetch", p.readyz(), originRequests.Load())
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, m.data) {
		t.Error("the cached file is not the model after the fetch")
	}
}
