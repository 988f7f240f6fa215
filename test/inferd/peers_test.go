package inferd

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slmops/slmops/inferd/config"
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
