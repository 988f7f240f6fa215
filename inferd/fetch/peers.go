package fetch

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// BlobPath is where an inferd serves the verified files of its cache to the
// other nodes of its site: BlobPath + "sha256:<hex>".
const BlobPath = "/v1/blobs/"

// PeerSource is the verified copy of a model file that another node's
// inferd serves at baseURL + BlobPath + digest. It sends no credentials (the
// origin's token never goes to a peer) and is never trusted: what it sends
// is kept only if the whole file hashes to the digest.
//
// A peer is a node of the site, and a node that is gone or hostile must
// cost seconds: it gets f's PeerConnectTimeout, PeerFirstByteTimeout and
// PeerStallTimeout, and no redirect is followed (a peer cannot send the
// node elsewhere).
func PeerSource(f *Fetcher, baseURL, digest string) Source {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if f.Client != nil {
		if base, ok := f.Client.Transport.(*http.Transport); ok {
			tr = base.Clone()
		}
	}
	connect := orDefault(f.PeerConnectTimeout, 3*time.Second)
	tr.DialContext = (&net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = connect
	tr.ResponseHeaderTimeout = orDefault(f.PeerFirstByteTimeout, 5*time.Second)
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &httpSource{
		url: strings.TrimRight(baseURL, "/") + BlobPath + digest, role: "peer", client: client,
		stall: orDefault(f.PeerStallTimeout, 10*time.Second), transport: tr,
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
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
// empty partial file (emptied under the file's lock): bytes of a peer that
// failed or lied are thrown away, never resumed by the next source, so a bad
// peer costs a download but cannot poison the cache. Whatever a peer does
// (an error, a stall, more bytes than the file, a partial that fills the
// disk, a wrong digest) the next peer is tried, then the origin; only ctx
// ends the round early. The origin gets the usual retries and resume.
// Result.Downloaded counts the origin's bytes (zero when a peer served).
func (f *Fetcher) FetchVia(ctx context.Context, peers []Source, origin Source, digest string, sizeHint int64) (Result, []PeerAttempt, error) {
	final, err := f.Path(digest)
	if err != nil {
		return Result{}, nil, err
	}
	hit, replaced, err := f.checkLocked(ctx, final)
	if err != nil {
		return Result{}, nil, err
	}
	if hit {
		return Result{Path: final, CacheHit: true}, nil, nil
	}
	once := *f
	once.Attempts, once.fresh = 1, true
	var tried []PeerAttempt
	for _, p := range peers {
		res, err := once.FetchFrom(ctx, p, digest, sizeHint)
		tried = append(tried, PeerAttempt{Peer: p.String(), Downloaded: res.Downloaded, Err: err})
		if err == nil {
			res.Downloaded = 0
			res.Replaced = res.Replaced || replaced
			return res, tried, nil
		}
		if ctx.Err() != nil {
			return Result{}, tried, err
		}
	}
	// After a peer, the origin starts clean too (its own retries resume).
	fromOrigin := *f
	fromOrigin.fresh = len(tried) > 0
	res, err := fromOrigin.FetchFrom(ctx, origin, digest, sizeHint)
	res.Replaced = res.Replaced || replaced
	if err != nil && len(tried) > 0 {
		return res, tried, fmt.Errorf("%w (after %d peers)", err, len(tried))
	}
	return res, tried, err
}

// checkLocked is checkCached under the file's lock.
func (f *Fetcher) checkLocked(ctx context.Context, final string) (hit, replaced bool, err error) {
	if !exists(final) {
		return false, false, nil
	}
	if err := os.MkdirAll(filepath.Join(f.CacheDir, "partial"), 0o755); err != nil {
		return false, false, err
	}
	unlock, err := lockFile(ctx, f.lockPath(filepath.Base(final)))
	if err != nil {
		return false, false, err
	}
	defer unlock()
	return checkCached(ctx, final, filepath.Base(final))
}
