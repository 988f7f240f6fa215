package fetch

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/slmops/slmops/inferd/config"
)

// The node cache is shared by every rollout whose pods run on the node, and
// each knows only its own pins (the operator's <rollout>-cache ConfigMap,
// mounted into its pods). So every inferd process writes its rollout's pin
// record into the cache, <cache>/pins/<owner>.json, when it reads its pins
// file (at start, before each prune, and every minute), and a prune keeps
// the union of the fresh records on the node. A record that nobody
// refreshed for PinRecordTTL belongs to a rollout that no longer runs here.
//
// A file in use is protected apart from the records: the process that
// serves or stages it holds a shared flock on it (Hold), which the kernel
// drops when the process dies; a prune removes a file only under an
// exclusive flock on it and under the download lock of its digest.

// PinRecordTTL is how long a pin record counts after its last refresh (and
// at least this long after the node booted, so that the records of a node
// that was off for days are not all stale when its pods start again).
const PinRecordTTL = 24 * time.Hour

// ErrPinsUnknown means inferd cannot tell what its rollout may return to (its
// pins file is not mounted yet, or not readable), so it evicts nothing.
var ErrPinsUnknown = errors.New("the rollout's pins are unknown")

// CachePolicy is how one inferd process shares the node cache.
type CachePolicy struct {
	config.Cache
	// TTL is PinRecordTTL when 0.
	TTL time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Boot is when the node booted; read from /proc/stat when zero.
	Boot time.Time
}

func (p CachePolicy) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p CachePolicy) ttl() time.Duration {
	if p.TTL > 0 {
		return p.TTL
	}
	return PinRecordTTL
}

func (p CachePolicy) boot() time.Time {
	if !p.Boot.IsZero() {
		return p.Boot
	}
	return nodeBootTime()
}

// pinRecord is one rollout's pins as written into the node cache.
type pinRecord struct {
	Owner   string   `json:"owner"`
	Digests []string `json:"digests"`
}

// ownerPattern: "<namespace>.<rollout>", both DNS names.
var ownerPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)

// recordName is the file name of owner's pin record: the owner itself when
// it fits a file name, else a prefix and a hash.
func recordName(owner string) (string, error) {
	if !ownerPattern.MatchString(owner) {
		return "", fmt.Errorf("cache owner %q is not <namespace>.<rollout>", owner)
	}
	if len(owner) > 200 {
		sum := sha256.Sum256([]byte(owner))
		owner = owner[:183] + "-" + hex.EncodeToString(sum[:])[:16]
	}
	return owner + ".json", nil
}

func (f *Fetcher) pinsDir() string { return filepath.Join(f.CacheDir, "pins") }

// RefreshPins reads the rollout's pins file and writes its pin record into
// the node cache: the pinned digests and current, the digest this process
// serves or stages. It returns the digests recorded. An error wrapping
// ErrPinsUnknown means no record was written.
func (f *Fetcher) RefreshPins(current string, p CachePolicy) ([]string, error) {
	if p.PinsFile == "" || p.Owner == "" {
		return nil, fmt.Errorf("%w: no pins file or owner configured", ErrPinsUnknown)
	}
	name, err := recordName(p.Owner)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPinsUnknown, err)
	}
	var pins config.Pins
	raw, err := os.ReadFile(p.PinsFile)
	if err == nil {
		if perr := json.Unmarshal(raw, &pins); perr != nil {
			err = fmt.Errorf("parse %s: %w", p.PinsFile, perr)
		}
	}
	if err != nil {
		// The pins this process last recorded are still the best
		// knowledge of what its rollout needs: keep them fresh while it
		// lives, so that they do not age out under the other pods'
		// prunes.
		now := p.now()
		_ = os.Chtimes(filepath.Join(f.pinsDir(), name), now, now)
		return nil, fmt.Errorf("%w: %w", ErrPinsUnknown, err)
	}
	seen := map[string]bool{}
	var digests []string
	for _, d := range append(pins.Digests, current) {
		if _, err := parseDigest(d); err != nil || seen[d] {
			continue
		}
		seen[d] = true
		digests = append(digests, d)
	}
	b, err := json.Marshal(pinRecord{Owner: p.Owner, Digests: digests})
	if err != nil {
		return nil, err
	}
	if err := writeAtomically(f.pinsDir(), name, b); err != nil {
		return nil, fmt.Errorf("write the pin record of %s: %w", p.Owner, err)
	}
	return digests, nil
}

// writeAtomically replaces dir/name with b: readers see the old record or
// the new one, never a part; the rename also refreshes its modification time.
func writeAtomically(dir, name string, b []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+name+"-")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(b)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return nil
}

// pinnedOnNode is the union of the fresh pin records in the node cache, as
// hex digests. A fresh record that cannot be read is an error: what it pins
// is unknown, so nothing may be evicted.
func (f *Fetcher) pinnedOnNode(p CachePolicy) (map[string]bool, error) {
	entries, err := os.ReadDir(f.pinsDir())
	if err != nil {
		return nil, err
	}
	now, boot, ttl := p.now(), p.boot(), p.ttl()
	pinned := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, err
		}
		refreshed := info.ModTime()
		if boot.After(refreshed) {
			refreshed = boot
		}
		if now.Sub(refreshed) > ttl {
			continue // a rollout that no longer runs on this node
		}
		raw, err := os.ReadFile(filepath.Join(f.pinsDir(), name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read pin record %s: %w", name, err)
		}
		var rec pinRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			return nil, fmt.Errorf("parse pin record %s: %w", name, err)
		}
		for _, d := range rec.Digests {
			if h, err := parseDigest(d); err == nil {
				pinned[h] = true
			}
		}
	}
	return pinned, nil
}

// Hold is a shared lock on a cached model file, held for as long as the
// process serves or stages it: Prune never removes a held file. The kernel
// drops it when the process dies.
type Hold struct {
	path string
	file *os.File
}

// Hold opens the cached file of digest and holds it. It fails (wrapping
// os.ErrNotExist) when the file is not in the cache, or was removed while
// Hold waited for a prune to finish with it: then fetch it again.
func (f *Fetcher) Hold(digest string) (*Hold, error) {
	path, err := f.Path(digest)
	if err != nil {
		return nil, err
	}
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	// Blocks only while a prune holds the file exclusively, for the
	// moment it takes to remove it.
	if err := syscall.Flock(int(file.Fd()), syscall.LOCK_SH); err != nil {
		_ = file.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	h := &Hold{path: path, file: file}
	if !h.Present() {
		_ = file.Close()
		return nil, fmt.Errorf("hold %s: removed from the cache meanwhile: %w", path, os.ErrNotExist)
	}
	return h, nil
}

// Present reports whether the held file is still the one at its path in
// the cache, whole: not removed, replaced or truncated.
func (h *Hold) Present() bool {
	held, err := h.file.Stat()
	if err != nil {
		return false
	}
	now, err := os.Stat(h.path)
	if err != nil {
		return false
	}
	return os.SameFile(held, now) && held.Size() == now.Size()
}

// Close lets the file go.
func (h *Hold) Close() error {
	return h.file.Close()
}

// tryLockFile takes an exclusive flock on path if nobody holds one.
func tryLockFile(path string) (unlock func(), ok bool, err error) {
	file, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, false, err
	}
	if err := syscall.Flock(int(file.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = file.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(file.Fd()), syscall.LOCK_UN)
		_ = file.Close()
	}, true, nil
}

var (
	bootOnce sync.Once
	bootAt   time.Time
)

// nodeBootTime is when the node booted (btime of /proc/stat, which a
// container sees as the host's); the zero time when unknown.
func nodeBootTime() time.Time {
	bootOnce.Do(func() {
		file, err := os.Open("/proc/stat")
		if err != nil {
			return
		}
		defer file.Close()
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
				if s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
					bootAt = time.Unix(s, 0)
				}
				return
			}
		}
	})
	return bootAt
}
