package fetch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// peerNode is another node's inferd serving its cache, as ServeBlob does,
// and remembering the Authorization headers it was sent.
type peerNode struct {
	*httptest.Server
	mu   sync.Mutex
	auth []string
}

// newPeer serves a cache that holds data (verified, as placed by a fetch),
// or nothing when data is nil. corrupt flips one byte on the wire, as a
// broken disk or a malicious peer would.
func newPeer(t *testing.T, data []byte, digest string, corrupt bool) *peerNode {
	t.Helper()
	f := fetcher(t)
	if data != nil {
		path, _ := f.Path(digest)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		// A node serves only what it verified (placing it does that).
		if err := f.Check(context.Background(), digest); err != nil {
			t.Fatal(err)
		}
	}
	p := &peerNode{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.auth = append(p.auth, r.Header.Get("Authorization"))
		p.mu.Unlock()
		if corrupt {
			w = &flipper{ResponseWriter: w, at: int64(len(data) / 2)}
		}
		f.ServeBlob(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

// flipper flips the byte at offset at of the body.
type flipper struct {
	http.ResponseWriter
	at, n int64
}

func (f *flipper) Write(p []byte) (int, error) {
	if f.at >= f.n && f.at < f.n+int64(len(p)) {
		p = bytes.Clone(p)
		p[f.at-f.n] ^= 0xff
	}
	f.n += int64(len(p))
	return f.ResponseWriter.Write(p)
}

// TestABadPeerIsSkippedAndTheNodeEndsWithTheRightModel: a peer that does not
// have the file and a peer that sends one corrupted byte are skipped; the
// node takes the file from a good peer, verified, and the origin serves
// nothing. The origin's token never reaches a peer.
func TestABadPeerIsSkippedAndTheNodeEndsWithTheRightModel(t *testing.T) {
	data, digest := model(t, 300<<10)
	o := newOrigin(t, data, nil)
	empty, liar, good := newPeer(t, nil, digest, false), newPeer(t, data, digest, true), newPeer(t, data, digest, false)
	f := fetcher(t)
	f.Authorization = "Bearer origin-secret"
	peers := []Source{PeerSource(f, empty.URL, digest), PeerSource(f, liar.URL, digest), PeerSource(f, good.URL, digest)}
	res, tried, err := f.FetchVia(context.Background(), peers, HTTPSource(f, o.URL), digest, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(res.Path)
	if !bytes.Equal(got, data) {
		t.Fatal("the cached file is not the model")
	}
	if o.served.Load() != 0 || res.Downloaded != 0 {
		t.Errorf("the origin served %d bytes; a good peer had the file", o.served.Load())
	}
	if len(tried) != 3 || !errors.Is(tried[0].Err, ErrPermanent) || !errors.Is(tried[1].Err, ErrDigestMismatch) || tried[2].Err != nil {
		t.Fatalf("peer attempts: %+v; want not found, digest mismatch, served", tried)
	}
	if tried[1].Downloaded != int64(len(data)) || tried[2].Downloaded != int64(len(data)) {
		t.Errorf("the liar sent %d and the good peer %d bytes; want the whole file each (no resume across peers)", tried[1].Downloaded, tried[2].Downloaded)
	}
	for _, p := range []*peerNode{empty, liar, good} {
		for _, a := range p.auth {
			if a != "" {
				t.Errorf("a peer was sent the origin's Authorization header")
			}
		}
	}
	entries, _ := os.ReadDir(filepath.Join(f.CacheDir, "partial"))
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".lock") {
			t.Errorf("left a partial download: %s", e.Name())
		}
	}
}

// TestWithoutAGoodPeerTheOriginServes: only a lying peer; the origin
// serves the whole file once, and the liar's bytes are not resumed.
func TestWithoutAGoodPeerTheOriginServes(t *testing.T) {
	data, digest := model(t, 200<<10)
	o := newOrigin(t, data, nil)
	liar := newPeer(t, data, digest, true)
	f := fetcher(t)
	res, tried, err := f.FetchVia(context.Background(), []Source{PeerSource(f, liar.URL, digest)}, HTTPSource(f, o.URL), digest, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(res.Path)
	if !bytes.Equal(got, data) || len(tried) != 1 || !errors.Is(tried[0].Err, ErrDigestMismatch) {
		t.Fatalf("tried %+v; the file matches: %v", tried, bytes.Equal(got, data))
	}
	if o.served.Load() != int64(len(data)) || res.Downloaded != int64(len(data)) {
		t.Errorf("the origin served %d bytes (result says %d); want the whole file once, %d", o.served.Load(), res.Downloaded, len(data))
	}
	// A second fetch is a cache hit: nobody is asked.
	res, tried, err = f.FetchVia(context.Background(), []Source{PeerSource(f, liar.URL, digest)}, HTTPSource(f, o.URL), digest, 0)
	if err != nil || !res.CacheHit || len(tried) != 0 {
		t.Errorf("second fetch: %+v %v %v; want a cache hit", res, tried, err)
	}
}

// TestServeBlobServesOnlyVerifiedFiles: ranges work (a peer's download can
// resume), a partial download is never served, and a malformed digest is a
// 400, not a path.
func TestServeBlobServesOnlyVerifiedFiles(t *testing.T) {
	data, digest := model(t, 64<<10)
	f := fetcher(t)
	srv := httptest.NewServer(http.HandlerFunc(f.ServeBlob))
	defer srv.Close()
	get := func(path, rng string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	// Only a partial download so far.
	partial := filepath.Join(f.CacheDir, "partial", strings.TrimPrefix(digest, "sha256:"))
	_ = os.MkdirAll(filepath.Dir(partial), 0o755)
	_ = os.WriteFile(partial, data[:1000], 0o644)
	if code, _ := get(BlobPath+digest, ""); code != http.StatusNotFound {
		t.Errorf("a partial download was served: %d", code)
	}
	o := newOrigin(t, data, nil)
	if _, err := f.Fetch(context.Background(), o.URL, digest, 0); err != nil {
		t.Fatal(err)
	}
	if code, b := get(BlobPath+digest, "bytes=1000-"); code != http.StatusPartialContent || !bytes.Equal(b, data[1000:]) {
		t.Errorf("range request: %d, %d bytes", code, len(b))
	}
	if code, b := get(BlobPath+digest, ""); code != http.StatusOK || !bytes.Equal(b, data) {
		t.Errorf("whole file: %d, %d bytes", code, len(b))
	}
	for _, bad := range []string{"sha256:../../etc/passwd", "md5:abc", "sha256:" + strings.Repeat("A", 64), ""} {
		if code, _ := get(BlobPath+bad, ""); code != http.StatusBadRequest {
			t.Errorf("%q: %d; want 400", bad, code)
		}
	}
}

// TestTheOriginDoesNotResumeAPeersBytes: a peer that sends a corrupted 40%
// and drops the connection leaves a partial file; the origin then starts
// from byte 0 (no Range), so the node ends with the right file after one
// download from the origin.
func TestTheOriginDoesNotResumeAPeersBytes(t *testing.T) {
	data, digest := model(t, 200<<10)
	o := newOrigin(t, data, nil)
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		part := bytes.Clone(data[:len(data)*4/10])
		part[len(part)/2] ^= 0xff
		w.Header().Set("Content-Length", itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(part)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	defer cut.Close()
	f := fetcher(t)
	res, tried, err := f.FetchVia(context.Background(), []Source{PeerSource(f, cut.URL, digest)}, HTTPSource(f, o.URL), digest, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(tried) != 1 || tried[0].Err == nil || tried[0].Downloaded == 0 {
		t.Fatalf("peer attempts %+v; want one that failed after sending bytes", tried)
	}
	got, _ := os.ReadFile(res.Path)
	if !bytes.Equal(got, data) {
		t.Fatal("the cached file is not the model")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.ranges) != 1 || o.ranges[0] != "" || o.served.Load() != int64(len(data)) {
		t.Errorf("the origin saw ranges %q and served %d bytes; want one request from byte 0 for all %d", o.ranges, o.served.Load(), len(data))
	}
}
