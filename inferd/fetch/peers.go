package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// BlobPath is where an inferd serves the verified files of its cache to the
// other nodes of its site: BlobPath + "sha256:<hex>".
const BlobPath = "/v1/blobs/"

// PeerSource is the verified copy of a model file that another node's
// inferd serves at baseURL + BlobPath + digest. It sends no credentials (the
// origin's token never goes to a peer) and is never trusted: what it sends
// is kept only if the whole file hashes to the digest.
func PeerSource(f *Fetcher, baseURL, digest string) Source {
	return &httpSource{url: strings.TrimRight(baseURL, "/") + BlobPath + digest, fetcher: &Fetcher{Client: f.Client}}
}

// PeerAttempt is what became of one peer in FetchVia.
type PeerAttempt struct {
	Peer string
	// Downloaded is how many bytes the peer sent.
	Downloaded int64
	// Err is why the peer was skipped; nil for the peer that served the file.
	Err error
}

// FetchVia fetches digest from the first of peers whose copy verifies, and
// from origin when none does. Each peer gets one attempt and starts from an
// empty partial file (emptied under the file's lock): bytes of a peer that failed or lied are thrown away,
// never resumed by the next source, so a bad peer costs a download but
// cannot poison the cache. The origin gets the usual retries and resume.
// Result.Downloaded counts the origin's bytes (zero when a peer served).
func (f *Fetcher) FetchVia(ctx context.Context, peers []Source, origin Source, digest string, sizeHint int64) (Result, []PeerAttempt, error) {
	final, err := f.Path(digest)
	if err != nil {
		return Result{}, nil, err
	}
	if exists(final) {
		ok, err := intact(final, filepath.Base(final))
		if err != nil {
			return Result{}, nil, err
		}
		if ok {
			touch(final)
			return Result{Path: final, CacheHit: true}, nil, nil
		}
		// It rotted: the first source's FetchFrom replaces it.
	}
	once := *f
	once.Attempts, once.fresh = 1, true
	var tried []PeerAttempt
	for _, p := range peers {
		res, err := once.FetchFrom(ctx, p, digest, sizeHint)
		tried = append(tried, PeerAttempt{Peer: p.String(), Downloaded: res.Downloaded, Err: err})
		if err == nil {
			res.Downloaded = 0
			return res, tried, nil
		}
		if ctx.Err() != nil || errors.Is(err, ErrNoSpace) {
			return Result{}, tried, err
		}
	}
	// After a peer, the origin starts clean too (its own retries resume).
	fromOrigin := *f
	fromOrigin.fresh = len(tried) > 0
	res, err := fromOrigin.FetchFrom(ctx, origin, digest, sizeHint)
	if err != nil {
		return res, tried, fmt.Errorf("%d peers, then the origin: %w", len(tried), err)
	}
	return res, tried, nil
}

// ServeBlob serves a verified file of the cache under BlobPath, with Range
// support, to the other nodes of a site. Only files that passed verification
// (the cache's final folder) are served; a partial download never is.
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
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", st.ModTime(), file)
}
