// Package fetch downloads a model file into inferd's node-local,
// content-addressed cache: <cache>/sha256/<hex>. A file reaches that path only
// after every byte was hashed and the sha256 matched the digest the SLMModel
// declares, so a truncated, corrupt or substituted download never serves.
//
// Downloads resume after a cut connection with an HTTP Range request, retry
// with backoff, can be rate-limited, and are shared: two inferd processes on
// one node (a stable and a canary pod) that want the same file hold a file
// lock, and the second finds the first's verified result.
package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/time/rate"
)

// Errors a caller tells apart. Each wraps the detail.
var (
	// ErrDigestMismatch: the downloaded bytes do not hash to the digest.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrNoSpace: the cache's filesystem cannot hold the file.
	ErrNoSpace = errors.New("not enough free disk space")
	// ErrPermanent: the source answered in a way a retry will not change (404, 403, ...).
	ErrPermanent = errors.New("permanent fetch failure")
)

// Fetcher downloads model files into a cache directory.
type Fetcher struct {
	// CacheDir is the node-local cache.
	CacheDir string
	// Client does the requests; its TLS configuration carries the source's CA
	// bundle. http.DefaultClient when nil.
	Client *http.Client
	// Authorization, when set, is sent as the Authorization header. It is
	// never logged or put into an error.
	Authorization string
	// BytesPerSecond limits the download rate; 0 is unlimited.
	BytesPerSecond int64
	// DiskHeadroom is how many bytes must stay free on the cache's
	// filesystem once the file is in place; checked before a download starts.
	DiskHeadroom int64
	// Attempts is how many times a download is tried (resuming each time); 5 when 0.
	Attempts int
	// Backoff is the wait before the first retry, doubling after each; 1 s when 0.
	Backoff time.Duration
	// AttemptTimeout bounds one attempt; unbounded when 0.
	AttemptTimeout time.Duration
	// Progress, when set, is told how many bytes each attempt transferred.
	Progress func(transferred int64)

	// fresh starts from an empty partial file instead of resuming one, for
	// a source that must not continue another source's bytes. It is applied
	// under the file's lock: another process's download is never cut.
	fresh bool
}

// Result describes a fetched file.
type Result struct {
	// Path of the verified file in the cache.
	Path string
	// CacheHit: the file was already in the cache, and still hashes to its
	// digest; nothing was downloaded.
	CacheHit bool
	// Replaced: a file was in the cache but no longer hashed to its digest
	// (the disk or someone changed it); it was removed and fetched again.
	Replaced bool
	// Downloaded is how many bytes came over the network in this call.
	Downloaded int64
	// Attempts is how many requests were made.
	Attempts int
}

// Path is where the file with digest lives in the cache.
func (f *Fetcher) Path(digest string) (string, error) {
	hexDigest, err := parseDigest(digest)
	if err != nil {
		return "", err
	}
	return filepath.Join(f.CacheDir, "sha256", hexDigest), nil
}

func parseDigest(digest string) (string, error) {
	hexDigest, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hexDigest) != 64 || strings.Trim(hexDigest, "0123456789abcdef") != "" {
		return "", fmt.Errorf("digest %q is not sha256:<64 lowercase hex>", digest)
	}
	return hexDigest, nil
}

// Fetch makes sure the file with digest is in the cache, downloading it from
// an http(s) url when it is not, and returns its path. sizeHint, when
// positive, is checked against the free disk space before the download starts.
func (f *Fetcher) Fetch(ctx context.Context, url, digest string, sizeHint int64) (Result, error) {
	return f.FetchFrom(ctx, &httpSource{url: url, fetcher: f}, digest, sizeHint)
}

// Source is where the bytes of one model file come from.
type Source interface {
	// Open starts reading the file at offset when it can resume there, or at
	// 0 when it cannot; start says which. An error that wraps ErrPermanent
	// is not retried.
	Open(ctx context.Context, offset int64) (body io.ReadCloser, start int64, err error)
	// String names the source for errors and logs, without secrets.
	String() string
}

// FetchFrom is Fetch from any Source: the same lock, resume, retries,
// verification and placement.
func (f *Fetcher) FetchFrom(ctx context.Context, src Source, digest string, sizeHint int64) (Result, error) {
	final, err := f.Path(digest)
	if err != nil {
		return Result{}, err
	}
	hexDigest := filepath.Base(final)
	for _, dir := range []string{filepath.Dir(final), filepath.Join(f.CacheDir, "partial")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return Result{}, err
		}
	}
	replaced := false
	if exists(final) {
		ok, err := intact(final, hexDigest)
		if err != nil {
			return Result{}, err
		}
		if ok {
			touch(final)
			return Result{Path: final, CacheHit: true}, nil
		}
		replaced = true
	}

	// One download per file per node: the lock is held until the file is in
	// place or the attempt gave up.
	unlock, err := lockFile(ctx, filepath.Join(f.CacheDir, "partial", hexDigest+".lock"))
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	if replaced {
		// Removed under the lock: no other process of this node is
		// writing it; one that maps it keeps its (bad) copy until it
		// restarts, and then finds this one.
		if err := os.Remove(final); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Result{}, fmt.Errorf("remove the corrupted cached model: %w", err)
		}
	} else if exists(final) { // another process finished it while we waited
		touch(final)
		return Result{Path: final, CacheHit: true}, nil
	}

	partial := filepath.Join(f.CacheDir, "partial", hexDigest)
	if f.fresh {
		_ = os.Remove(partial)
	}
	if sizeHint > 0 {
		have := fileSize(partial)
		if err := checkFreeSpace(f.CacheDir, sizeHint-have, f.DiskHeadroom); err != nil {
			return Result{}, err
		}
	}
	res := Result{Path: final, Replaced: replaced}
	attempts, backoff := f.Attempts, f.Backoff
	if attempts <= 0 {
		attempts = 5
	}
	if backoff <= 0 {
		backoff = time.Second
	}
	// The digest is computed while the bytes stream in, so a finished
	// download needs no second read of a multi-gigabyte file.
	h := &streamHash{Hash: sha256.New()}
	var last error
	for attempt := 1; attempt <= attempts; attempt++ {
		res.Attempts = attempt
		n, err := f.attempt(ctx, src, partial, h)
		res.Downloaded += n
		if f.Progress != nil {
			f.Progress(n)
		}
		if err == nil {
			last = nil
			break
		}
		if errors.Is(err, syscall.ENOSPC) {
			// The disk filled up under the download (no size was given to
			// check first, or something else wrote to it).
			err = fmt.Errorf("%w: %w", ErrNoSpace, err)
		}
		last = err
		if errors.Is(err, ErrPermanent) || errors.Is(err, ErrNoSpace) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(backoff):
		}
		backoff *= 2
	}
	if last != nil {
		return res, fmt.Errorf("fetch %s: %w", src, last)
	}
	if err := h.catchUp(partial); err != nil {
		return res, err
	}
	if err := place(partial, final, hexDigest, hex.EncodeToString(h.Sum(nil))); err != nil {
		return res, err
	}
	return res, nil
}

// streamHash is a running sha256 of the partial file and how many of its
// bytes it has seen.
type streamHash struct {
	hash.Hash
	n int64
}

func (s *streamHash) Write(p []byte) (int, error) {
	n, err := s.Hash.Write(p)
	s.n += int64(n)
	return n, err
}

// catchUp makes the hash cover exactly the partial file: after a restart of
// inferd (a partial file from before) or a failed write, it rehashes it.
func (s *streamHash) catchUp(partial string) error {
	if s.n == fileSize(partial) {
		return nil
	}
	s.Reset()
	s.n = 0
	file, err := os.Open(partial)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer file.Close()
	_, err = io.Copy(s, file)
	return err
}

// attempt downloads the rest of the file into partial, resuming from its
// current size when the source can; it returns the bytes it received.
func (f *Fetcher) attempt(ctx context.Context, src Source, partial string, h *streamHash) (int64, error) {
	if f.AttemptTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.AttemptTimeout)
		defer cancel()
	}
	offset := fileSize(partial)
	body, start, err := src.Open(ctx, offset)
	if errors.Is(err, errComplete) {
		// The partial file is already complete (or longer than the file):
		// verification decides.
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer body.Close()

	flags := os.O_CREATE | os.O_WRONLY
	switch start {
	case offset:
		if offset > 0 {
			flags |= os.O_APPEND
			if err := h.catchUp(partial); err != nil {
				return 0, err
			}
		} else {
			flags |= os.O_TRUNC
			h.Reset()
			h.n = 0
		}
	case 0:
		flags |= os.O_TRUNC // no resume support: the whole body again
		h.Reset()
		h.n = 0
	default:
		// The source resumed elsewhere than asked: start over next time.
		_ = os.Remove(partial)
		return 0, fmt.Errorf("source resumed at byte %d, not %d", start, offset)
	}

	out, err := os.OpenFile(partial, flags, 0o644)
	if err != nil {
		return 0, err
	}
	var r io.Reader = body
	if f.BytesPerSecond > 0 {
		r = &limitedReader{ctx: ctx, r: body, lim: rate.NewLimiter(rate.Limit(f.BytesPerSecond), int(min(f.BytesPerSecond, 64<<10)))}
	}
	n, copyErr := io.Copy(io.MultiWriter(out, h), r)
	syncErr := out.Sync()
	closeErr := out.Close()
	return n, errors.Join(copyErr, syncErr, closeErr)
}

// errComplete tells attempt that there is nothing left to read at offset.
var errComplete = errors.New("nothing left to read")

// HTTPSource is a model file at an http(s) url, fetched with f's client and
// Authorization and resumed with Range requests.
func HTTPSource(f *Fetcher, url string) Source { return &httpSource{url: url, fetcher: f} }

// httpSource is a model file at an http(s) URL, resumed with Range requests.
type httpSource struct {
	url     string
	fetcher *Fetcher
}

func (s *httpSource) String() string { return redact(s.url) }

func (s *httpSource) Open(ctx context.Context, offset int64) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	if s.fetcher.Authorization != "" {
		req.Header.Set("Authorization", s.fetcher.Authorization)
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	client := s.fetcher.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		return resp.Body, contentRangeStart(resp.Header.Get("Content-Range")), nil
	case resp.StatusCode == http.StatusOK:
		return resp.Body, 0, nil
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && offset > 0:
		return nil, 0, errComplete
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return nil, 0, fmt.Errorf("server answered %s", resp.Status)
	default:
		return nil, 0, fmt.Errorf("%w: server answered %s", ErrPermanent, resp.Status)
	}
}

// place renames the partial file into the cache when its hash matches; a
// mismatch removes it, so the next attempt starts clean.
// intact reports whether the cached file at path still hashes to wantHex. A
// cache hit is verified too: a file that rotted on disk, was truncated or was
// edited never serves, and is never served to peers.
func intact(path, wantHex string) (bool, error) {
	file, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer file.Close()
	h := sha256.New()
	if _, err := io.Copy(h, file); err != nil {
		return false, fmt.Errorf("verify the cached model: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)) == wantHex, nil
}

func place(partial, final, wantHex, gotHex string) error {
	if gotHex != wantHex {
		_ = os.Remove(partial)
		return fmt.Errorf("%w: the download hashes to sha256:%s, the model declares sha256:%s", ErrDigestMismatch, gotHex, wantHex)
	}
	if err := os.Rename(partial, final); err != nil {
		return err
	}
	return syncDir(filepath.Dir(final))
}

func contentRangeStart(v string) int64 {
	// "bytes 100-199/200"
	v = strings.TrimPrefix(v, "bytes ")
	start, _, ok := strings.Cut(v, "-")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(start, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// checkFreeSpace fails when writing need more bytes into dir would leave
// less than headroom free.
func checkFreeSpace(dir string, need, headroom int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return err
	}
	free := int64(st.Bavail) * int64(st.Bsize) //nolint:unconvert // field types differ by platform
	if need+headroom > free {
		if headroom > 0 {
			return fmt.Errorf("%w: %s has %d bytes free; the model needs %d more and %d must stay free", ErrNoSpace, dir, free, need, headroom)
		}
		return fmt.Errorf("%w: %s has %d bytes free, the model needs %d more", ErrNoSpace, dir, free, need)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// lockFile takes an exclusive flock on path, waiting until ctx is done.
func lockFile(ctx context.Context, path string) (func(), error) {
	file, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(file.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(file.Fd()), syscall.LOCK_UN)
				_ = file.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = file.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			_ = file.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// redact drops the query of a URL, where signed URLs carry their secrets.
func redact(url string) string {
	if i := strings.IndexByte(url, '?'); i >= 0 {
		return url[:i] + "?<redacted>"
	}
	return url
}

// limitedReader paces reads to a byte rate.
type limitedReader struct {
	ctx context.Context
	r   io.Reader
	lim *rate.Limiter
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if len(p) > l.lim.Burst() {
		p = p[:l.lim.Burst()]
	}
	n, err := l.r.Read(p)
	if n > 0 {
		if werr := l.lim.WaitN(l.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}
