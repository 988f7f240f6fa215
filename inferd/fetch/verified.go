package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// defaultReverifyAfter is how long a verified file is trusted before it is
// hashed again. Hashing a 4 GB model takes a few seconds of one core; every
// six hours that is noise, and a file that rots in place stops being served
// within that time (its receivers reject it before that, by its digest).
const defaultReverifyAfter = 6 * time.Hour

// verifiedFile is what this process knows about a cache file it hashed: the
// size and modification time it had, and when.
type verifiedFile struct {
	size  int64
	mtime time.Time
	at    time.Time
}

// ledger remembers the cache files this process verified. It is one per
// process (the files are the node's, whatever Fetcher looks at them): the
// Fetcher that places a file and the one that serves it to peers agree.
type ledger struct {
	mu       sync.Mutex
	files    map[string]verifiedFile
	checking map[string]bool
}

var verified = &ledger{files: map[string]verifiedFile{}, checking: map[string]bool{}}

// record notes that the file at path, as st describes it, hashed right now.
func (l *ledger) record(path string, st os.FileInfo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.files[path] = verifiedFile{size: st.Size(), mtime: st.ModTime(), at: time.Now()}
}

// refresh takes in a change of modification time that this process made
// (marking a file as used), keeping when it was verified.
func (l *ledger) refresh(path string) {
	st, err := os.Stat(path)
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.files[path]
	if !ok {
		return
	}
	if err != nil || st.Size() != v.size {
		delete(l.files, path)
		return
	}
	v.mtime = st.ModTime()
	l.files[path] = v
}

func (l *ledger) forget(path string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.files, path)
}

// lookup is what is known of the file at path as st describes it now: ok
// when it was verified and has not changed since.
func (l *ledger) lookup(path string, st os.FileInfo) (verifiedFile, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.files[path]
	if !ok || v.size != st.Size() || !v.mtime.Equal(st.ModTime()) {
		return verifiedFile{}, false
	}
	return v, true
}

// startCheck reports whether the caller may check path now (no other check
// of it runs); the caller calls endCheck after.
func (l *ledger) startCheck(path string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.checking[path] {
		return false
	}
	l.checking[path] = true
	return true
}

func (l *ledger) endCheck(path string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.checking, path)
}

func (f *Fetcher) reverifyAfter() time.Duration {
	if f.ReverifyAfter > 0 {
		return f.ReverifyAfter
	}
	return defaultReverifyAfter
}

// Check makes sure the cached file with digest is still the verified one.
// It costs a stat while the file keeps the size and modification time it
// had when this process last verified it, within ReverifyAfter; otherwise
// it hashes the file again, with the file's lock held (a download in
// progress elsewhere is never cut). A file that no longer hashes to digest
// is removed, so that it is fetched again. The error is ErrNotCached when
// the file is gone or was removed, ctx's when the check was canceled (then
// nothing is removed).
func (f *Fetcher) Check(ctx context.Context, digest string) error {
	path, err := f.Path(digest)
	if err != nil {
		return err
	}
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		verified.forget(path)
		return fmt.Errorf("%w: %s", ErrNotCached, digest)
	}
	if err != nil {
		return err
	}
	if v, ok := verified.lookup(path, st); ok && time.Since(v.at) < f.reverifyAfter() {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(f.CacheDir, "partial"), 0o755); err != nil {
		return err
	}
	unlock, err := lockFile(ctx, f.lockPath(filepath.Base(path)))
	if err != nil {
		return err
	}
	defer unlock()
	hit, replaced, err := checkCached(ctx, path, filepath.Base(path))
	switch {
	case err != nil:
		return err
	case replaced:
		return fmt.Errorf("%w: the cached %s no longer hashes to its digest; it was removed, to be fetched again", ErrNotCached, digest)
	case !hit:
		return fmt.Errorf("%w: %s", ErrNotCached, digest)
	}
	return nil
}

// checkInBackground runs Check for digest unless one runs already.
func (f *Fetcher) checkInBackground(path, digest string) {
	if !verified.startCheck(path) {
		return
	}
	go func() {
		defer verified.endCheck(path)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		_ = f.Check(ctx, digest)
	}()
}

// ServeBlob serves a verified file of the cache under BlobPath, with Range
// support, to the other nodes of a site. A file is served only while it is
// known good: this process hashed it (when it placed it, found it, or
// checked it) and its size and modification time have not changed since. A
// file it does not know, or that changed, is checked in the background and
// answered 503 meanwhile (the peer moves on); one that no longer verifies is
// removed and is a 404 from then on. A known file verified longer than
// ReverifyAfter ago is still served while it is hashed again. A partial
// download is never served.
func (f *Fetcher) ServeBlob(w http.ResponseWriter, r *http.Request) {
	digest := strings.TrimPrefix(r.URL.Path, BlobPath)
	path, err := f.Path(digest)
	if err != nil {
		http.Error(w, "want "+BlobPath+"sha256:<64 lowercase hex>", http.StatusBadRequest)
		return
	}
	file, err := os.Open(path)
	if err != nil {
		http.Error(w, "not in this node's cache", http.StatusNotFound)
		return
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil || !st.Mode().IsRegular() {
		http.Error(w, "not in this node's cache", http.StatusNotFound)
		return
	}
	v, ok := verified.lookup(path, st)
	if !ok || time.Since(v.at) >= f.reverifyAfter() {
		f.checkInBackground(path, digest)
	}
	if !ok {
		w.Header().Set("Retry-After", "30")
		http.Error(w, "this node is verifying its copy; ask another peer", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", st.ModTime(), file)
}
