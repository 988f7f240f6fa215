package fetch

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/slmops/slmops/test/skip"
)

// endless is a hostile peer: it answers 200 without a Content-Length and
// streams bytes until it has sent max (a real one would never stop) or the
// client hangs up; sent counts them.
func endless(t *testing.T, max int64, sent *atomic.Int64) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		chunk := bytes.Repeat([]byte{0x5a}, 64<<10)
		for sent.Load() < max {
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// partialsLeft are the partial downloads (not lock files) in a cache.
func partialsLeft(t *testing.T, dir string) []string {
	t.Helper()
	var left []string
	entries, _ := os.ReadDir(filepath.Join(dir, "partial"))
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".lock") {
			left = append(left, e.Name())
		}
	}
	return left
}

// TestAPeerThatSendsEndlessBytesIsCutAtTheModelsSize: a peer that never
// stops sending writes at most the model's size to the disk; its bytes are
// thrown away and the origin serves the file.
func TestAPeerThatSendsEndlessBytesIsCutAtTheModelsSize(t *testing.T) {
	data, digest := model(t, 256<<10)
	o := newOrigin(t, data, nil)
	var sent atomic.Int64
	flood := endless(t, 64<<20, &sent)
	f := fetcher(t)
	res, tried, err := f.FetchVia(context.Background(), []Source{PeerSource(f, flood.URL, digest)}, HTTPSource(f, o.URL), digest, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(res.Path); !bytes.Equal(got, data) {
		t.Fatal("the cached file is not the model")
	}
	t.Logf("the endless peer wrote %d bytes to disk for a %d-byte model (it had sent %d)", tried[0].Downloaded, len(data), sent.Load())
	if len(tried) != 1 || !errors.Is(tried[0].Err, ErrTooLarge) || tried[0].Downloaded > int64(len(data)) {
		t.Errorf("peer attempt %+v; want ErrTooLarge after at most %d bytes", tried, len(data))
	}
	if left := partialsLeft(t, f.CacheDir); len(left) != 0 {
		t.Errorf("the flood's bytes were kept: %v", left)
	}
}

// TestABodyIsCutAtTheSizeTheSourceDeclares: with no model size given, the
// size the source declares (Content-Length) bounds the body, and one that
// declares more than the model's size sends nothing at all.
func TestABodyIsCutAtTheSizeTheSourceDeclares(t *testing.T) {
	data, digest := model(t, 64<<10)
	big := newOrigin(t, append(bytes.Clone(data), make([]byte, 1<<20)...), nil)
	f := fetcher(t)
	res, err := f.Fetch(context.Background(), big.URL, digest, int64(len(data)))
	if !errors.Is(err, ErrTooLarge) || res.Downloaded != 0 || big.requests.Load() != 1 {
		t.Errorf("Content-Length past the model's size: %v, %d bytes, %d requests; want ErrTooLarge before any byte, no retry", err, res.Downloaded, big.requests.Load())
	}
	if left := partialsLeft(t, f.CacheDir); len(left) != 0 {
		t.Errorf("bytes were kept: %v", left)
	}
}

// TestAnOriginThatSendsMoreThanTheModelsSizeFails: an origin whose body
// (chunked, with no Content-Length) runs past spec.sizeBytes fails at that
// byte, is not retried, and leaves nothing behind.
func TestAnOriginThatSendsMoreThanTheModelsSizeFails(t *testing.T) {
	data, digest := model(t, 128<<10)
	var sent atomic.Int64
	var requests atomic.Int64
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusOK)
		for range 8 { // the model, then seven times as much
			n, _ := w.Write(data)
			sent.Add(int64(n))
			w.(http.Flusher).Flush()
		}
	}))
	defer o.Close()
	f := fetcher(t)
	res, err := f.Fetch(context.Background(), o.URL+"/m.gguf", digest, int64(len(data)))
	t.Logf("the origin sent %d bytes; %d were written for a %d-byte model", sent.Load(), res.Downloaded, len(data))
	if !errors.Is(err, ErrTooLarge) || res.Downloaded > int64(len(data)) || requests.Load() != 1 {
		t.Errorf("got %v after %d bytes and %d requests; want ErrTooLarge after at most %d bytes, no retry", err, res.Downloaded, requests.Load(), len(data))
	}
	if path, _ := f.Path(digest); exists(path) {
		t.Error("a file was placed")
	}
	if left := partialsLeft(t, f.CacheDir); len(left) != 0 {
		t.Errorf("bytes were kept: %v", left)
	}
}

// TestWithNoSizeKnownTheDiskHeadroomBoundsAPeer: neither the model nor the
// peer says how big the file is; the headroom check cuts the flood, and the
// round goes on to the origin.
func TestWithNoSizeKnownTheDiskHeadroomBoundsAPeer(t *testing.T) {
	data, digest := model(t, 256<<10)
	o := newOrigin(t, data, nil)
	var sent atomic.Int64
	flood := endless(t, 512<<20, &sent)
	f := fetcher(t)
	// A disk of its own: 1 GiB, less what the cache folder holds, so that
	// other tests writing to the machine's disk meanwhile change nothing.
	const disk = 1 << 30
	real := freeBytes
	freeBytes = func(dir string) (int64, error) { return disk - du(t, f.CacheDir), nil }
	t.Cleanup(func() { freeBytes = real })
	// 48 MiB may be written above the headroom: room for the model, not for the flood.
	f.DiskHeadroom = disk - 48<<20
	res, tried, err := f.FetchVia(context.Background(), []Source{PeerSource(f, flood.URL, digest)}, HTTPSource(f, o.URL), digest, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(res.Path); !bytes.Equal(got, data) {
		t.Fatal("the cached file is not the model")
	}
	t.Logf("the endless peer wrote %d bytes with 48 MiB above the headroom", tried[0].Downloaded)
	if len(tried) != 1 || !errors.Is(tried[0].Err, ErrNoSpace) || tried[0].Downloaded > 48<<20 {
		t.Errorf("peer attempt %+v; want ErrNoSpace within 48 MiB", tried)
	}
	if left := partialsLeft(t, f.CacheDir); len(left) != 0 {
		t.Errorf("the flood's bytes were kept: %v", left)
	}
}

// TestADeadOrStalledPeerCostsSeconds runs each kind of broken peer with
// the default peer timeouts: the round goes on to the origin within the
// timeout, not the origin's half-hour attempt timeout.
func TestADeadOrStalledPeerCostsSeconds(t *testing.T) {
	data, digest := model(t, 256<<10)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := silent.Accept() // and never read or answer
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(data[:len(data)*4/10])
		w.(http.Flusher).Flush()
		<-r.Context().Done() // and never another byte
	}))
	t.Cleanup(stall.Close)
	trickle := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		for i := 0; i < len(data); i += 1024 { // 1 KiB a second
			if _, err := w.Write(data[i : i+1024]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Second):
			}
		}
	}))
	t.Cleanup(trickle.Close)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	unreachable := silentAddress(t)

	// Each case must reach the origin inside the test's 40 s context (the
	// origin's own attempt timeout is half an hour); the seconds each costs
	// are logged as figures, not asserted.
	for name, tc := range map[string]struct {
		peer string
		want error
	}{
		"a peer that accepts and never answers": {"http://" + silent.Addr().String(), nil},
		"a peer that stalls in the middle":      {stall.URL, ErrStalled},
		"a peer that trickles 1 KiB a second":   {trickle.URL, ErrStalled},
		"a peer that is gone":                   {deadURL, nil},
		"a peer whose connect never completes":  {"http://" + unreachable, nil},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o := newOrigin(t, data, nil)
			f := fetcher(t)
			f.AttemptTimeout = 30 * time.Minute // inferd's origin default
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			start := time.Now()
			res, tried, err := f.FetchVia(ctx, []Source{PeerSource(f, tc.peer, digest)}, HTTPSource(f, o.URL), digest, int64(len(data)))
			took := time.Since(start)
			if err != nil {
				t.Fatalf("after %s: %v", took, err)
			}
			t.Logf("%s cost %.1f s: %v", name, took.Seconds(), tried[0].Err)
			if got, _ := os.ReadFile(res.Path); !bytes.Equal(got, data) || res.Downloaded != int64(len(data)) {
				t.Error("the origin did not serve the model")
			}
			if len(tried) != 1 || tried[0].Err == nil || (tc.want != nil && !errors.Is(tried[0].Err, tc.want)) {
				t.Errorf("peer attempts %+v; want one failed attempt (%v) before the origin", tried, tc.want)
			}
		})
	}
}

// silentAddress is an address where a TCP connect never completes, as at a
// node that is gone from the network: a socket that listens with a backlog
// of one, already taken, and never accepts (Linux drops the SYNs).
func silentAddress(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", itoa(sa.(*syscall.SockaddrInet4).Port))
	c, err := net.DialTimeout("tcp", addr, time.Second) // fills the backlog
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if c2, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
		c2.Close()
		skip.Because(t, "the peer connect timeout against a peer that never accepts: this kernel completes connects past the listen backlog",
			"a Linux kernel that leaves connects past the backlog pending (the default on Debian)")
	}
	return addr
}

// TestTwoFetchersOnOneCacheCheckTheCachedFileUnderTheLock: the cached file
// rotted; two processes find it at once. One replaces it, the other waits
// for the lock and finds the good copy: the origin sends the model once,
// and the new file is never removed by the other process.
func TestTwoFetchersOnOneCacheCheckTheCachedFileUnderTheLock(t *testing.T) {
	data, digest := model(t, 2<<20)
	o := newOrigin(t, data, nil)
	dir := t.TempDir()
	path, _ := (&Fetcher{CacheDir: dir}).Path(digest)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	rotten := bytes.Clone(data)
	rotten[12345] ^= 0x01
	if err := os.WriteFile(path, rotten, 0o644); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]Result, 2)
	errs := make([]error, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := &Fetcher{CacheDir: dir, BytesPerSecond: 8 << 20, Backoff: time.Millisecond}
			results[i], errs[i] = f.Fetch(context.Background(), o.URL, digest, int64(len(data)))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Fatal("the cached file is not the model")
	}
	hits, replaced := 0, 0
	for _, r := range results {
		if r.CacheHit {
			hits++
		}
		if r.Replaced {
			replaced++
		}
	}
	if o.served.Load() != int64(len(data)) || hits != 1 || replaced != 1 {
		t.Errorf("the origin served %d bytes for a %d-byte model; %d cache hits, %d replaced; want one download, one hit",
			o.served.Load(), len(data), hits, replaced)
	}
}

// TestACanceledVerificationReturnsPromptly: hashing a multi-gigabyte cached
// file stops when the context is canceled (SIGTERM during the check), and
// a canceled check removes nothing.
func TestACanceledVerificationReturnsPromptly(t *testing.T) {
	_, digest := model(t, 16)
	f := fetcher(t)
	path, _ := f.Path(digest)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	file, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := file.Truncate(8 << 30); err != nil { // sparse: 8 GiB of zeros, no disk
		t.Fatal(err)
	}
	file.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = f.Fetch(ctx, "http://127.0.0.1:1/m.gguf", digest, 8<<30)
	took := time.Since(start)
	t.Logf("a verification of an 8 GiB file canceled after 100 ms returned after %s", took)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v after %s; want context.Canceled", err, took)
	}
	if !exists(path) {
		t.Error("a canceled check removed the cached file")
	}
}

// du is the bytes of the regular files under dir.
func du(t *testing.T, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return nil // a partial file renamed or removed meanwhile
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
