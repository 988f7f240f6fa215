// Package fetch downloads a model file into inferd's node-local,
// content-addressed cache: <cache>/sha256/<hex>. A file reaches that path only
// after every byte was hashed and the sha256 matched the digest the SLMModel
// declares, so a truncated, corrupt or substituted download never serves.
//
// Downloads resume after a cut connection with an HTTP Range request, retry
// with backoff, can be rate-limited, and are shared: two inferd processes on
// one node (a stable and a canary pod) that want the same file hold a file
// lock, and the second finds the first's verified result.
//
// Nothing a source sends is trusted: every body is cut at the file's
// expected size (the model's size, else the size the source declares, else
// the disk headroom bounds it), peers have short timeouts of their own, and
// every error names URLs without their query or userinfo (package redact).
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
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	"github.com/slmops/slmops/inferd/fetch/redact"
)

// Errors a caller tells apart. Each wraps the detail.
var (
	// ErrDigestMismatch: the downloaded bytes do not hash to the digest.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrNoSpace: the cache's filesystem cannot hold the file.
	ErrNoSpace = errors.New("not enough free disk space")
	// ErrPermanent: the source answered in a way a retry will not change (404, 403, ...).
	ErrPermanent = errors.New("permanent fetch failure")
	// ErrRejected: the source answered that it will not serve the file
	// (404 or 410 not found, 401 or 403 denied; an OCI artifact without the
	// layer). It is permanent too. From the origin, it is the same answer for
	// every node that asks.
	ErrRejected = errors.New("the source rejected the request")
	// ErrTooLarge: the source sent, or declared, more bytes than the file
	// has; the bytes are thrown away.
	ErrTooLarge = errors.New("more bytes than the file's size")
	// ErrStalled: the source sent (almost) nothing for the stall timeout.
	ErrStalled = errors.New("the source stalled")
	// ErrNotCached: the file is not in the cache, or no longer verifies and
	// was removed from it.
	ErrNotCached = errors.New("not in the node cache")
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
	// filesystem once the file is in place; checked before a download starts
	// and, when no one knows the file's size, every 8 MiB during it.
	DiskHeadroom int64
	// Attempts is how many times a download is tried (resuming each time); 5 when 0.
	Attempts int
	// Backoff is the wait before the first retry, doubling after each; 1 s when 0.
	Backoff time.Duration
	// AttemptTimeout bounds one attempt; unbounded when 0.
	AttemptTimeout time.Duration
	// Progress, when set, is told how many bytes each attempt transferred.
	Progress func(transferred int64)

	// PeerConnectTimeout bounds the TCP connect (and TLS handshake) to a
	// peer; 3 s when 0. A node that is gone costs this much, not the
	// minutes a connect to a silent address takes.
	PeerConnectTimeout time.Duration
	// PeerFirstByteTimeout bounds the wait for a peer's answer once the
	// request is sent; 5 s when 0.
	PeerFirstByteTimeout time.Duration
	// PeerStallTimeout drops a peer that sends less than 64 KiB for this
	// long once it answered (before its first byte, or in the middle of a
	// body); 10 s when 0.
	PeerStallTimeout time.Duration
	// ReverifyAfter is how long a verified file is served to peers before
	// it is hashed again (a bit flip on disk changes neither its size nor its
	// modification time); 6 h when 0. A change of size or modification time
	// is noticed at once.
	ReverifyAfter time.Duration

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
	return f.FetchFrom(ctx, HTTPSource(f, url), digest, sizeHint)
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
// verification and placement. Its error never holds a URL's query or
// userinfo, whatever the Source put into it.
func (f *Fetcher) FetchFrom(ctx context.Context, src Source, digest string, sizeHint int64) (Result, error) {
	res, err := f.fetchFrom(ctx, src, digest, sizeHint)
	if se, ok := err.(*SourceError); ok { //nolint:errorlint // only a bare SourceError is redacted all through
		return res, se // errors.As finds it
	}
	return res, redact.Error(err)
}

func (f *Fetcher) fetchFrom(ctx context.Context, src Source, digest string, sizeHint int64) (Result, error) {
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

	// One download per file per node: the lock is held until the file is in
	// place or the attempt gave up. The cached file is checked under it
	// too, so that a process never removes as rotten the file another one
	// has just placed.
	unlock, err := lockFile(ctx, f.lockPath(hexDigest))
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	hit, replaced, err := checkCached(ctx, final, hexDigest)
	if err != nil {
		return Result{}, err
	}
	if hit {
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
		n, err := f.attempt(ctx, src, partial, h, sizeHint)
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
		if errors.Is(err, ErrNoSpace) || errors.Is(err, ErrTooLarge) {
			// Bytes past a bound are never kept, nor resumed.
			_ = os.Remove(partial)
			break
		}
		if errors.Is(err, ErrPermanent) || ctx.Err() != nil {
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
		if f.fresh {
			// A source whose bytes no other may resume leaves none behind.
			_ = os.Remove(partial)
		}
		var se *SourceError
		if errors.As(last, &se) {
			return res, last // it names the source already
		}
		return res, fmt.Errorf("fetch %s: %w", src, last)
	}
	if err := h.catchUp(ctx, partial); err != nil {
		return res, err
	}
	if err := place(partial, final, hexDigest, hex.EncodeToString(h.Sum(nil))); err != nil {
		return res, fmt.Errorf("fetch %s: %w", src, err)
	}
	return res, nil
}

func (f *Fetcher) lockPath(hexDigest string) string {
	return filepath.Join(f.CacheDir, "partial", hexDigest+".lock")
}

// checkCached verifies the cached file at final, with the file's lock held:
// hit when it hashes to its digest (it is marked as used), replaced when it
// did not and was removed. A canceled check removes nothing.
func checkCached(ctx context.Context, final, wantHex string) (hit, replaced bool, err error) {
	st, err := os.Stat(final)
	if errors.Is(err, os.ErrNotExist) {
		verified.forget(final)
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	ok, err := intact(ctx, final, wantHex)
	if err != nil {
		return false, false, err
	}
	if ok {
		verified.record(final, st)
		touch(final)
		verified.refresh(final)
		return true, false, nil
	}
	// Removed under the lock: no other process of this node is writing it;
	// one that maps it keeps its (bad) copy until it restarts, and then
	// finds a good one.
	verified.forget(final)
	if err := os.Remove(final); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, false, fmt.Errorf("remove the corrupted cached model: %w", err)
	}
	return false, true, nil
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
func (s *streamHash) catchUp(ctx context.Context, partial string) error {
	if s.n == fileSize(partial) {
		return nil
	}
	s.Reset()
	s.n = 0
	err := hashFile(ctx, s, partial)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// hashChunk is how much of a file is hashed between two looks at the
// context: about a millisecond of sha256.
const hashChunk = 1 << 20

// hashFile writes the file at path into h, a chunk at a time, and stops
// with ctx's error once ctx is done: a multi-gigabyte file never holds up a
// shutdown.
func hashFile(ctx context.Context, h io.Writer, path string) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	buf := make([]byte, hashChunk)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(file, buf)
		if n > 0 {
			_, _ = h.Write(buf[:n])
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// attempt downloads the rest of the file into partial, resuming from its
// current size when the source can; it returns the bytes it wrote. The body
// is cut at the file's size: size when positive, else the size the source
// declares; with neither, the free-space check bounds it as it goes. One
// byte more is ErrTooLarge.
func (f *Fetcher) attempt(ctx context.Context, src Source, partial string, h *streamHash, size int64) (int64, error) {
	if f.AttemptTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.AttemptTimeout)
		defer cancel()
	}
	offset := fileSize(partial)
	if size > 0 && offset > size {
		_ = os.Remove(partial)
		return 0, fmt.Errorf("%w: the partial download has %d bytes, the model %d", ErrTooLarge, offset, size)
	}
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

	limit := size
	if sized, ok := body.(interface{ Size() int64 }); ok {
		declared := sized.Size()
		switch {
		case declared > 0 && size > 0 && declared > size:
			return 0, fmt.Errorf("%w: the source declares %d bytes, the model has %d", ErrTooLarge, declared, size)
		case declared > 0 && size <= 0:
			limit = declared
			if err := checkFreeSpace(f.CacheDir, declared-start, f.DiskHeadroom); err != nil {
				return 0, err
			}
		}
	}

	flags := os.O_CREATE | os.O_WRONLY
	switch start {
	case offset:
		if offset > 0 {
			flags |= os.O_APPEND
			if err := h.catchUp(ctx, partial); err != nil {
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
	w := io.MultiWriter(out, h)
	var n int64
	var copyErr error
	if limit > 0 {
		remaining := limit - start
		n, copyErr = io.Copy(w, io.LimitReader(r, remaining))
		if copyErr == nil && n == remaining && moreToRead(r) {
			copyErr = fmt.Errorf("%w: the source sent more than the %d bytes of the file", ErrTooLarge, limit)
		}
	} else {
		n, copyErr = io.Copy(&diskGuard{w: w, dir: f.CacheDir, headroom: f.DiskHeadroom}, r)
	}
	syncErr := out.Sync()
	closeErr := out.Close()
	return n, errors.Join(copyErr, syncErr, closeErr)
}

// moreToRead reports whether r has a byte left, reading at most one.
func moreToRead(r io.Reader) bool {
	var one [1]byte
	for range 100 { // a reader may answer (0, nil) a few times
		n, err := r.Read(one[:])
		if n > 0 {
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}

// diskGuardEvery is how many bytes a download of unknown size writes
// between two looks at the free space.
const diskGuardEvery = 8 << 20

// diskGuard bounds a download of unknown size by the disk: every
// diskGuardEvery bytes it makes sure that the next diskGuardEvery fit
// above the headroom, and fails with ErrNoSpace when they do not.
type diskGuard struct {
	w             io.Writer
	dir           string
	headroom      int64
	written, next int64
}

func (g *diskGuard) Write(p []byte) (int, error) {
	if g.written >= g.next {
		if err := checkFreeSpace(g.dir, diskGuardEvery, g.headroom); err != nil {
			return 0, err
		}
		g.next = g.written + diskGuardEvery
	}
	n, err := g.w.Write(p)
	g.written += int64(n)
	return n, err
}

// errComplete tells attempt that there is nothing left to read at offset.
var errComplete = errors.New("nothing left to read")

// HTTPSource is a model file at an http(s) url, fetched with f's client and
// Authorization and resumed with Range requests.
func HTTPSource(f *Fetcher, url string) Source {
	return &httpSource{url: url, role: "origin", client: f.Client, authorization: f.Authorization}
}

// httpSource is a model file at an http(s) URL, resumed with Range requests.
type httpSource struct {
	url string
	// role names the source in errors: origin or peer.
	role          string
	client        *http.Client
	authorization string
	// stall, when positive, drops a body that sends less than
	// stallProgress bytes in that long.
	stall time.Duration
	// transport, when set, is the source's own; its idle connections are
	// closed when a body is done with.
	transport *http.Transport
}

func (s *httpSource) String() string { return redact.URL(s.url) }

func (s *httpSource) Open(ctx context.Context, offset int64) (io.ReadCloser, int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	done := func() {
		cancel()
		if s.transport != nil {
			s.transport.CloseIdleConnections()
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		done()
		return nil, 0, &SourceError{Role: s.role, URL: redact.URL(s.url), Err: redact.Error(err), permanent: true}
	}
	if s.authorization != "" {
		req.Header.Set("Authorization", s.authorization)
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	client := s.client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		done()
		// The client's *url.Error holds the URL (a redirect's target when
		// redirected) with its query: it never leaves this function.
		where, cause := s.url, err
		var ue *url.Error
		if errors.As(err, &ue) {
			where, cause = ue.URL, ue.Err
		}
		return nil, 0, &SourceError{Role: s.role, URL: redact.URL(where), Err: redact.Error(cause)}
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		start, size := contentRange(resp.Header.Get("Content-Range"))
		return s.body(resp, done, size), start, nil
	case resp.StatusCode == http.StatusOK:
		return s.body(resp, done, resp.ContentLength), 0, nil
	}
	resp.Body.Close()
	done()
	if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && offset > 0 {
		return nil, 0, errComplete
	}
	return nil, 0, answered(s.role, redact.URL(resp.Request.URL.String()), resp.StatusCode, resp.Status)
}

// body wraps resp's body: it knows the file's declared size, ends the
// request when closed, and watches for a stall.
func (s *httpSource) body(resp *http.Response, done func(), size int64) io.ReadCloser {
	b := &sourceBody{r: resp.Body, size: size, done: done}
	if s.stall > 0 {
		b.stall = s.stall
		b.timer = time.AfterFunc(s.stall, func() {
			b.stalled.Store(true)
			done()
		})
	}
	return b
}

// sourceBody is a response body that knows the size of the whole file (-1
// when the source did not say).
type sourceBody struct {
	r        io.ReadCloser
	size     int64
	done     func()
	stall    time.Duration
	timer    *time.Timer
	progress int64
	stalled  atomic.Bool
}

// stallProgress is how many bytes a watched source must send within its
// stall timeout: 64 KiB in 10 s, a rate any link of a site beats.
const stallProgress = 64 << 10

func (b *sourceBody) Size() int64 { return b.size }

func (b *sourceBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if b.timer != nil {
		// Progress is stallProgress bytes: a trickle slower than that per
		// stall timeout holds the node as a silent source would.
		b.progress += int64(n)
		if b.progress >= stallProgress {
			b.progress = 0
			b.timer.Reset(b.stall)
		}
	}
	if err != nil && b.stalled.Load() {
		err = fmt.Errorf("%w: less than %d bytes in %s", ErrStalled, stallProgress, b.stall)
	}
	return n, err
}

func (b *sourceBody) Close() error {
	if b.timer != nil {
		b.timer.Stop()
	}
	err := b.r.Close()
	b.done()
	return err
}

// SourceError is why a source did not serve the file: its HTTP answer, or
// why there was none. It never holds a URL's query or userinfo: its URL is
// redacted, and its Err is a redact.Error (errors.As does not reach a raw
// *url.Error through it).
type SourceError struct {
	// Role is origin or peer.
	Role string
	// URL is the redacted URL of the request that failed: a redirect's
	// target when the source redirected.
	URL string
	// Code and Status are the HTTP answer (404, "404 Not Found"); 0 and
	// "" when there was none.
	Code   int
	Status string
	// Err is the cause when there was no answer, or detail beside it.
	Err error

	permanent, rejected bool
}

// answered is the error for an HTTP answer that serves no file.
func answered(role, where string, code int, status string) *SourceError {
	transient := code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
	rejected := code == http.StatusNotFound || code == http.StatusGone || code == http.StatusUnauthorized || code == http.StatusForbidden
	return &SourceError{Role: role, URL: where, Code: code, Status: status, permanent: !transient, rejected: rejected}
}

func (e *SourceError) Error() string {
	var msg string
	if e.Code != 0 {
		msg = fmt.Sprintf("%s answered %s for %s", e.Role, e.Status, e.URL)
		if e.Err != nil {
			msg += ": " + e.Err.Error()
		}
	} else {
		msg = fmt.Sprintf("%s %s: %v", e.Role, e.URL, e.Err)
	}
	return redact.Text(msg)
}

func (e *SourceError) Unwrap() error { return e.Err }

// Is makes the error ErrPermanent and ErrRejected as its answer says.
func (e *SourceError) Is(target error) bool {
	switch target {
	case ErrPermanent:
		return e.permanent || e.rejected
	case ErrRejected:
		return e.rejected
	}
	return false
}

// intact reports whether the cached file at path still hashes to wantHex. A
// cache hit is verified too: a file that rotted on disk, was truncated or was
// edited never serves, and is never served to peers. It stops with ctx.
func intact(ctx context.Context, path, wantHex string) (bool, error) {
	h := sha256.New()
	if err := hashFile(ctx, h, path); err != nil {
		return false, fmt.Errorf("verify the cached model: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)) == wantHex, nil
}

// place renames the partial file into the cache when its hash matches; a
// mismatch removes it, so the next attempt starts clean. A placed file is
// known good (verified) from then on.
func place(partial, final, wantHex, gotHex string) error {
	if gotHex != wantHex {
		_ = os.Remove(partial)
		return fmt.Errorf("%w: the download hashes to sha256:%s, the model declares sha256:%s", ErrDigestMismatch, gotHex, wantHex)
	}
	if err := os.Rename(partial, final); err != nil {
		return err
	}
	if st, err := os.Stat(final); err == nil {
		verified.record(final, st)
	}
	return syncDir(filepath.Dir(final))
}

// contentRange reads "bytes 100-199/200": the first byte and the size of
// the whole file, each -1 when it does not say.
func contentRange(v string) (start, size int64) {
	start, size = -1, -1
	v = strings.TrimPrefix(v, "bytes ")
	first, rest, ok := strings.Cut(v, "-")
	if !ok {
		return -1, -1
	}
	if n, err := strconv.ParseInt(first, 10, 64); err == nil {
		start = n
	}
	if _, total, ok := strings.Cut(rest, "/"); ok {
		if n, err := strconv.ParseInt(total, 10, 64); err == nil {
			size = n
		}
	}
	return start, size
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

// freeBytes is the space free to unprivileged writers on dir's filesystem.
// Tests replace it with a disk of their own, since the machine's free space
// moves while other tests run.
var freeBytes = func(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil //nolint:unconvert // field types differ by platform
}

// checkFreeSpace fails when writing need more bytes into dir would leave
// less than headroom free.
func checkFreeSpace(dir string, need, headroom int64) error {
	free, err := freeBytes(dir)
	if err != nil {
		return err
	}
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
