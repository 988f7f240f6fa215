package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slmops/slmops/inferd/fetch"
	"github.com/slmops/slmops/inferd/server"
)

// The node cache is shared with the other revisions and rollouts on the
// node (see fetch.Prune): inferd holds the file it serves or stages, keeps
// its rollout's pin record fresh, and prunes before and after it fetches.

const (
	// pinsRefresh is how often the rollout's pin record is rewritten, so
	// that it reflects the operator's pins file (which the kubelet updates in
	// place) and stays fresh for the other pods' prunes.
	pinsRefresh = time.Minute
	// stagedCheck is how often a stager checks that its file is still in
	// the cache; with the stager's readiness probe (every 2 s) it is unready
	// within seconds of losing it.
	stagedCheck = 2 * time.Second
	// reasonModelMissing: a stager's verified file left the cache.
	reasonModelMissing = "ModelMissing"
)

func (d *Daemon) cachePolicy() fetch.CachePolicy {
	return fetch.CachePolicy{Cache: d.cfg.Cache}
}

// pruneCache evicts what no rollout on the node may return to. Not knowing
// the pins is normal for a pod that started before its ConfigMap exists;
// it only means that nothing is evicted.
func (d *Daemon) pruneCache(f *fetch.Fetcher) {
	log := d.opts.Log
	removed, err := f.Prune(d.cfg.Model.Digest, d.cachePolicy())
	switch {
	case errors.Is(err, fetch.ErrPinsUnknown):
		log.V(1).Info("Not pruning the model cache", "reason", err.Error())
	case err != nil:
		log.Error(err, "Pruning the model cache failed")
	case len(removed) > 0:
		log.Info("Pruned the model cache", "removed", removed)
	}
}

// refreshPins rewrites the rollout's pin record every pinsRefresh until ctx
// is done.
func (d *Daemon) refreshPins(ctx context.Context) {
	if d.cfg.Cache.PinsFile == "" {
		return
	}
	f := &fetch.Fetcher{CacheDir: d.cfg.CacheDir}
	t := time.NewTicker(pinsRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := f.RefreshPins(d.cfg.Model.Digest, d.cachePolicy()); err != nil {
			d.opts.Log.V(1).Info("Cannot refresh the pin record", "error", err.Error())
		}
	}
}

// holdModel holds the fetched file, so that no prune on the node removes it
// while inferd serves or stages it. It fails when the file went between
// the fetch and the hold; the fetch loop then fetches it again.
func (d *Daemon) holdModel(f *fetch.Fetcher) error {
	h, err := f.Hold(d.cfg.Model.Digest)
	if err != nil {
		return fmt.Errorf("hold the cached model: %w", err)
	}
	d.mu.Lock()
	old := d.held
	d.held = h
	d.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	return nil
}

// releaseModel lets the held file go.
func (d *Daemon) releaseModel() {
	d.mu.Lock()
	h := d.held
	d.held = nil
	d.mu.Unlock()
	if h != nil {
		_ = h.Close()
	}
}

// keepStaged watches a stager's held file until ctx is done (false) or the
// file is gone, replaced, truncated or no longer verifies (true; see
// stagedFileRotted): the stager is then unready at
// once, and prepare fetches the file again; it is ready again once it holds
// the verified file. It re-fetches in place rather than exiting: a
// restarted stager counts as a failed one for the operator, which would
// exclude the node.
func (d *Daemon) keepStaged(ctx context.Context) bool {
	t := time.NewTicker(stagedCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		d.mu.Lock()
		present := d.held != nil && d.held.Present()
		d.mu.Unlock()
		why := "the staged model left the node cache"
		if present {
			if why = d.stagedFileRotted(ctx); why == "" {
				continue
			}
		}
		d.srv.SetPhase(server.PhaseFetching, reasonModelMissing, why+"; fetching it again")
		d.opts.Log.Info("The staged model left the node cache or no longer verifies; fetching it again", "digest", d.cfg.Model.Digest, "reason", why)
		d.releaseModel()
		return true
	}
}
