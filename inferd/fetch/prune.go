package fetch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// Prune evicts the files of the node cache that no rollout on the node may
// return to, least recently used first, until those left take at most
// p.MaxBytes. It keeps, whatever their age or size:
//   - every digest of a fresh pin record on the node (the stable and canary
//     artifacts of every rollout with pods here), this rollout's refreshed
//     first from p.PinsFile;
//   - current, the digest this process serves or stages;
//   - a file that a process holds (Hold) or downloads (its download lock).
//
// When it cannot tell what is pinned (no pins file or owner configured, the
// pins file not mounted yet, a pin record it cannot read) it evicts nothing:
// a file kept too long costs disk, a file evicted wrongly costs a rollback.
// It returns the digests it removed. Fetch marks a file as used whenever it
// returns it.
func (f *Fetcher) Prune(current string, p CachePolicy) ([]string, error) {
	currentHex, err := parseDigest(current)
	if err != nil {
		return nil, err
	}
	if _, err := f.RefreshPins(current, p); err != nil {
		return nil, err
	}
	// One prune at a time on the node: two would each count the same
	// unpinned bytes and evict twice as much.
	unlock, ok, err := tryLockFile(filepath.Join(f.pinsDir(), ".prune.lock"))
	if err != nil || !ok {
		return nil, err
	}
	defer unlock()
	keep, err := f.pinnedOnNode(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPinsUnknown, err)
	}
	keep[currentHex] = true

	dir := filepath.Join(f.CacheDir, "sha256")
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	type file struct {
		hex  string
		size int64
		used time.Time
	}
	var unpinned []file
	var total int64
	for _, e := range entries {
		if keep[e.Name()] || !e.Type().IsRegular() {
			continue
		}
		if _, err := parseDigest("sha256:" + e.Name()); err != nil {
			continue // not a cache file; not ours to remove
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		unpinned = append(unpinned, file{e.Name(), info.Size(), info.ModTime()})
		total += info.Size()
	}
	sort.Slice(unpinned, func(i, j int) bool {
		if !unpinned[i].used.Equal(unpinned[j].used) {
			return unpinned[i].used.Before(unpinned[j].used)
		}
		return unpinned[i].hex < unpinned[j].hex
	})
	var removed []string
	for _, u := range unpinned {
		if total <= p.MaxBytes {
			break
		}
		// Kept or not, it no longer counts: a file in use cannot make
		// room, and is evicted by a later prune once it is let go.
		total -= u.size
		gone, err := f.evict(u.hex)
		if err != nil {
			return removed, err
		}
		if gone {
			removed = append(removed, "sha256:"+u.hex)
		}
	}
	return removed, nil
}

// evict removes the cached file hexDigest unless a process downloads,
// replaces or holds it; it reports whether it removed it.
func (f *Fetcher) evict(hexDigest string) (bool, error) {
	partial := filepath.Join(f.CacheDir, "partial")
	if err := os.MkdirAll(partial, 0o755); err != nil {
		return false, err
	}
	// The download lock: a fetch that places or replaces the file holds it.
	unlock, ok, err := tryLockFile(filepath.Join(partial, hexDigest+".lock"))
	if err != nil || !ok {
		return false, err
	}
	defer unlock()
	path := filepath.Join(f.CacheDir, "sha256", hexDigest)
	file, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer file.Close()
	// A process that serves or stages the file holds it shared (Hold).
	if err := syscall.Flock(int(file.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return false, nil
		}
		return false, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("evict sha256:%s: %w", hexDigest, err)
	}
	return true, nil
}

// touch marks a cached model as used now.
func touch(path string) {
	now := time.Now()
	_ = os.Chtimes(path, now, now)
}
