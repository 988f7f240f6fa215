package fetch

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// origin is a real HTTP server for one model file that counts what it serves
// and can misbehave on chosen requests.
type origin struct {
	*httptest.Server
	data     []byte
	requests atomic.Int64
	served   atomic.Int64
	mu       sync.Mutex
	ranges   []string
	// behave decides request n (1-based): "" serves normally (with Range
	// support), "cut" sends 40% of the body and drops the connection,
	// "503" and "404" answer that status, "norange" ignores Range.
	behave func(n int64) string
}

func newOrigin(t *testing.T, data []byte, behave func(n int64) string) *origin {
	t.Helper()
	o := &origin{data: data, behave: behave}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := o.requests.Add(1)
		o.mu.Lock()
		o.ranges = append(o.ranges, r.Header.Get("Range"))
		o.mu.Unlock()
		mode := ""
		if o.behave != nil {
			mode = o.behave(n)
		}
		switch mode {
		case "503":
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case "404":
			http.Error(w, "no such model", http.StatusNotFound)
		case "cut":
			w.Header().Set("Content-Length", itoa(len(o.data)))
			w.WriteHeader(http.StatusOK)
			part := o.data[:len(o.data)*4/10]
			o.served.Add(int64(len(part))) // before the client can have them
			_, _ = w.Write(part)
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // drops the connection mid-body
		default:
			if mode == "norange" {
				r.Header.Del("Range")
			}
			cw := &countingWriter{ResponseWriter: w, n: &o.served}
			http.ServeContent(cw, r, "model.gguf", time.Unix(0, 0), bytes.NewReader(o.data))
		}
	}))
	t.Cleanup(o.Close)
	return o
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

// Write counts the bytes before it sends them: counted after, the client
// could have read them and its test looked at the count first (a fetch
// returns as soon as the last byte arrives).
func (c *countingWriter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n - len(p)))
	return n, err
}

func itoa(n int) string { return strconv.Itoa(n) }

func model(t *testing.T, size int) ([]byte, string) {
	t.Helper()
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return data, "sha256:" + hex.EncodeToString(sum[:])
}

func fetcher(t *testing.T) *Fetcher {
	return &Fetcher{CacheDir: t.TempDir(), Backoff: time.Millisecond}
}

func TestFetchVerifiesAndCaches(t *testing.T) {
	data, digest := model(t, 1<<20)
	o := newOrigin(t, data, nil)
	f := fetcher(t)
	res, err := f.Fetch(context.Background(), o.URL+"/m.gguf", digest, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(res.Path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("cached file differs from the model (%v)", err)
	}
	if res.CacheHit || res.Downloaded != int64(len(data)) || res.Path != filepath.Join(f.CacheDir, "sha256", strings.TrimPrefix(digest, "sha256:")) {
		t.Errorf("first fetch: %+v", res)
	}
	old := time.Now().Add(-24 * time.Hour)
	if err := os.Chtimes(res.Path, old, old); err != nil {
		t.Fatal(err)
	}
	again, err := f.Fetch(context.Background(), o.URL+"/m.gguf", digest, 0)
	if err != nil || !again.CacheHit || o.requests.Load() != 1 {
		t.Errorf("second fetch: %+v, %v, %d requests; want a cache hit with no request", again, err, o.requests.Load())
	}
	// A cache hit marks the model as used, for Prune.
	if st, err := os.Stat(res.Path); err != nil || st.ModTime().Before(time.Now().Add(-time.Hour)) {
		t.Errorf("a cache hit did not mark the model as used: %v", err)
	}
}

func TestFetchResumesAfterACutConnection(t *testing.T) {
	data, digest := model(t, 1<<20)
	o := newOrigin(t, data, func(n int64) string {
		if n == 1 {
			return "cut"
		}
		return ""
	})
	res, err := fetcher(t).Fetch(context.Background(), o.URL, digest, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts != 2 {
		t.Errorf("attempts = %d, want 2", res.Attempts)
	}
	if o.ranges[1] != "bytes="+itoa(len(data)*4/10)+"-" {
		t.Errorf("second request Range = %q, want a resume from byte %d", o.ranges[1], len(data)*4/10)
	}
	// The cut part is not downloaded twice.
	if served := o.served.Load(); served != int64(len(data)) {
		t.Errorf("origin served %d bytes for a %d-byte model", served, len(data))
	}
}

func TestAWrongDigestNeverReachesTheCache(t *testing.T) {
	data, _ := model(t, 64<<10)
	_, other := model(t, 64<<10)
	o := newOrigin(t, data, nil)
	f := fetcher(t)
	_, err := f.Fetch(context.Background(), o.URL, other, 0)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("got %v, want ErrDigestMismatch", err)
	}
	path, _ := f.Path(other)
	if exists(path) {
		t.Error("a file that failed verification is in the cache")
	}
	if entries, _ := os.ReadDir(filepath.Join(f.CacheDir, "partial")); len(entries) > 1 { // the lock file stays
		t.Errorf("partial download left behind: %v", entries)
	}
}

func TestATruncatedBodyNeverServes(t *testing.T) {
	data, digest := model(t, 256<<10)
	// Every answer is cut short and the server ignores Range.
	o := newOrigin(t, data, func(int64) string { return "cut" })
	f := fetcher(t)
	f.Attempts = 3
	_, err := f.Fetch(context.Background(), o.URL, digest, 0)
	if err == nil {
		t.Fatal("a truncated download was accepted")
	}
	if path, _ := f.Path(digest); exists(path) {
		t.Error("a truncated file is in the cache")
	}
	if o.requests.Load() != 3 {
		t.Errorf("requests = %d, want 3 attempts", o.requests.Load())
	}
}

func TestPermanentErrorsFailFastAndTransientOnesRetry(t *testing.T) {
	data, digest := model(t, 32<<10)
	notFound := newOrigin(t, data, func(int64) string { return "404" })
	f := fetcher(t)
	f.Authorization = "Bearer s3cr3t-token"
	_, err := f.Fetch(context.Background(), notFound.URL+"/m.gguf?sig=abc", digest, 0)
	if !errors.Is(err, ErrPermanent) || notFound.requests.Load() != 1 {
		t.Errorf("404: got %v after %d requests, want ErrPermanent after 1", err, notFound.requests.Load())
	}
	if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "sig=abc") {
		t.Errorf("the error leaks a secret: %v", err)
	}

	busy := newOrigin(t, data, func(n int64) string {
		if n <= 2 {
			return "503"
		}
		return ""
	})
	res, err := fetcher(t).Fetch(context.Background(), busy.URL, digest, 0)
	if err != nil || res.Attempts != 3 {
		t.Errorf("503, 503, 200: got %+v, %v", res, err)
	}
}

func TestConcurrentFetchersShareOneDownload(t *testing.T) {
	data, digest := model(t, 2<<20)
	o := newOrigin(t, data, nil)
	dir := t.TempDir()
	var wg sync.WaitGroup
	results := make([]Result, 4)
	errs := make([]error, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Separate Fetchers, as separate inferd pods on one node would be.
			f := &Fetcher{CacheDir: dir, BytesPerSecond: 8 << 20}
			results[i], errs[i] = f.Fetch(context.Background(), o.URL, digest, 0)
		}()
	}
	wg.Wait()
	hits := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if results[i].CacheHit {
			hits++
		}
	}
	if hits != 3 || o.served.Load() != int64(len(data)) {
		t.Errorf("%d cache hits, %d bytes served for a %d-byte model; want one download shared by four", hits, o.served.Load(), len(data))
	}
}

func TestFetchChecksFreeSpaceFirst(t *testing.T) {
	data, digest := model(t, 1024)
	o := newOrigin(t, data, nil)
	_, err := fetcher(t).Fetch(context.Background(), o.URL, digest, 1<<60)
	if !errors.Is(err, ErrNoSpace) || o.requests.Load() != 0 {
		t.Errorf("got %v after %d requests, want ErrNoSpace before any request", err, o.requests.Load())
	}
}

func TestBadDigestsAreRefused(t *testing.T) {
	for _, d := range []string{"", "sha256:xyz", "md5:" + strings.Repeat("0", 32), "sha256:" + strings.Repeat("A", 64)} {
		if _, err := fetcher(t).Fetch(context.Background(), "http://127.0.0.1:1", d, 0); err == nil {
			t.Errorf("digest %q accepted", d)
		}
	}
}

// TestAPartialFileFromARestartIsResumedAndVerified: inferd restarted in the
// middle of a download; the new process resumes from the partial file and
// hashes it too, so a poisoned partial file is caught, removed, and the next
// fetch starts clean.
func TestAPartialFileFromARestartIsResumedAndVerified(t *testing.T) {
	data, digest := model(t, 512<<10)
	o := newOrigin(t, data, nil)
	f := fetcher(t)
	f.Attempts = 1
	hexDigest := strings.TrimPrefix(digest, "sha256:")
	partial := filepath.Join(f.CacheDir, "partial", hexDigest)
	if err := os.MkdirAll(filepath.Dir(partial), 0o755); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(partial, data[:100<<10], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Fetch(context.Background(), o.URL, digest, 0); err != nil {
		t.Fatalf("resume from a good partial file: %v", err)
	}
	if o.ranges[0] != "bytes=102400-" || o.served.Load() != int64(len(data)-100<<10) {
		t.Errorf("Range %q, %d bytes served; want only the missing part", o.ranges[0], o.served.Load())
	}

	poisoned := append(bytes.Repeat([]byte{0xAB}, 100<<10), data[100<<10:]...)
	f2 := fetcher(t)
	f2.Attempts = 1
	partial2 := filepath.Join(f2.CacheDir, "partial", hexDigest)
	if err := os.MkdirAll(filepath.Dir(partial2), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(partial2, poisoned[:100<<10], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f2.Fetch(context.Background(), o.URL, digest, 0); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("poisoned partial file: got %v, want ErrDigestMismatch", err)
	}
	if exists(partial2) {
		t.Error("the poisoned partial file was kept")
	}
	if _, err := f2.Fetch(context.Background(), o.URL, digest, 0); err != nil {
		t.Errorf("the next fetch after a mismatch: %v", err)
	}
}

// TestACachedFileThatRottedIsFetchedAgain: a cache hit is verified too. A
// cached file with a flipped byte, or cut short, is replaced by a fresh,
// verified download, by Fetch and by FetchVia alike.
func TestACachedFileThatRottedIsFetchedAgain(t *testing.T) {
	data, digest := model(t, 256<<10)
	o := newOrigin(t, data, nil)
	f := fetcher(t)
	ctx := context.Background()
	res, err := f.Fetch(ctx, o.URL, digest, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for name, damage := range map[string]func(path string) error{
		"a flipped byte": func(path string) error {
			file, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer file.Close()
			_, err = file.WriteAt([]byte{data[1000] ^ 0x40}, 1000)
			return err
		},
		"cut short": func(path string) error { return os.Truncate(path, int64(len(data)/2)) },
	} {
		for _, via := range []bool{false, true} {
			if err := damage(res.Path); err != nil {
				t.Fatal(err)
			}
			before := o.served.Load()
			var got Result
			if via {
				got, _, err = f.FetchVia(ctx, nil, HTTPSource(f, o.URL), digest, int64(len(data)))
			} else {
				got, err = f.Fetch(ctx, o.URL, digest, int64(len(data)))
			}
			if err != nil {
				t.Fatalf("%s (FetchVia %v): %v", name, via, err)
			}
			on, _ := os.ReadFile(got.Path)
			if got.CacheHit || !got.Replaced || !bytes.Equal(on, data) || o.served.Load()-before != int64(len(data)) {
				t.Errorf("%s (FetchVia %v): cache hit %v, replaced %v, intact %v, %d bytes fetched; want a fresh, verified copy",
					name, via, got.CacheHit, got.Replaced, bytes.Equal(on, data), o.served.Load()-before)
			}
		}
	}
	// An intact cached file is a hit, with nothing fetched.
	before := o.served.Load()
	if got, err := f.Fetch(ctx, o.URL, digest, int64(len(data))); err != nil || !got.CacheHit || got.Replaced || o.served.Load() != before {
		t.Errorf("intact file: %+v, %v, %d bytes fetched; want a cache hit", got, err, o.served.Load()-before)
	}
}
