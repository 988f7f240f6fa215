package fetch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/slmops/slmops/inferd/config"
)

func digestN(i int) string { return fmt.Sprintf("sha256:%064x", i) }

// put places a cache file for digest i of size bytes, last used at.
func put(t *testing.T, f *Fetcher, i, size int, at time.Time) {
	t.Helper()
	path, _ := f.Path(digestN(i))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}

func cached(f *Fetcher, i int) bool {
	path, _ := f.Path(digestN(i))
	return exists(path)
}

// rollout is one rollout's view of the node: the pins file the operator
// mounted into its pods, and its owner name.
type rollout struct {
	t     *testing.T
	owner string
	file  string
}

func newRollout(t *testing.T, owner string, pinned ...int) *rollout {
	r := &rollout{t: t, owner: owner, file: filepath.Join(t.TempDir(), config.PinsKey)}
	r.pin(pinned...)
	return r
}

// pin is the operator updating the rollout's <rollout>-cache ConfigMap.
func (r *rollout) pin(digests ...int) {
	r.t.Helper()
	pins := config.Pins{Digests: []string{}}
	for _, i := range digests {
		pins.Digests = append(pins.Digests, digestN(i))
	}
	b, _ := json.Marshal(pins)
	if err := os.WriteFile(r.file, b, 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rollout) policy(maxBytes int64) CachePolicy {
	return CachePolicy{Cache: config.Cache{PinsFile: r.file, Owner: r.owner, MaxBytes: maxBytes}}
}

// prune is what one inferd process of r does after its fetch of current.
func (r *rollout) prune(f *Fetcher, current int) []string {
	r.t.Helper()
	removed, err := f.Prune(digestN(current), r.policy(0))
	if err != nil {
		r.t.Fatalf("prune for %s: %v", r.owner, err)
	}
	sort.Strings(removed)
	return removed
}

func digests(is ...int) []string {
	var out []string
	for _, i := range is {
		out = append(out, digestN(i))
	}
	sort.Strings(out)
	return out
}

// TestARollbackThenANewAttemptKeepsTheStableModel replays issue 14: stable
// A, canary B rolled back, then a new attempt C staged on the same node.
// Staging C must not delete A, which the stable pods serve and every node
// returns to; the old policy (the current file and the most recently used
// other one) kept B, the newer, and deleted A. No process holds A here: the
// stable pod may be restarting, evicted or on a node that just booted, so
// the pins alone must keep it.
func TestARollbackThenANewAttemptKeepsTheStableModel(t *testing.T) {
	const a, b, c = 1, 2, 3
	f := fetcher(t)
	base := time.Now().Add(-time.Hour)
	shop := newRollout(t, "edge.shop", a)
	put(t, f, a, 10, base)
	if removed := shop.prune(f, a); len(removed) != 0 {
		t.Fatalf("the stable pod pruned %v", removed)
	}

	// Canary B on this node, then rolled back (B stays pinned: a retry may
	// return to it).
	shop.pin(a, b)
	put(t, f, b, 10, base.Add(time.Minute))
	if removed := shop.prune(f, b); len(removed) != 0 {
		t.Fatalf("the canary pod pruned %v", removed)
	}
	if removed := shop.prune(f, a); len(removed) != 0 {
		t.Fatalf("the stable pod, back after the rollback, pruned %v", removed)
	}

	// A new attempt: the stager of C fetches C.
	shop.pin(a, c)
	put(t, f, c, 10, base.Add(2*time.Minute))
	removed := shop.prune(f, c)
	if diff := cmp.Diff(digests(b), removed); diff != "" {
		t.Errorf("staging C removed (-want +got):\n%s", diff)
	}
	if !cached(f, a) {
		t.Fatal("staging C deleted A, the stable model every node returns to")
	}
	if !cached(f, c) {
		t.Error("staging C deleted C")
	}
}

// TestTwoRolloutsSharingANodeKeepEachOthersFiles: each rollout's pods pin
// only their own digests, and see the other's through its pin record in
// the node cache.
func TestTwoRolloutsSharingANodeKeepEachOthersFiles(t *testing.T) {
	const shopStable, kioskStable, kioskCanary, old = 1, 2, 3, 4
	f := fetcher(t)
	base := time.Now().Add(-time.Hour)
	put(t, f, old, 10, base)
	put(t, f, shopStable, 10, base.Add(time.Minute))
	put(t, f, kioskStable, 10, base.Add(2*time.Minute))
	put(t, f, kioskCanary, 10, base.Add(3*time.Minute))
	shop := newRollout(t, "edge.shop", shopStable)
	kiosk := newRollout(t, "retail.kiosk", kioskStable, kioskCanary)
	// Each pod writes its rollout's record when it starts.
	if _, err := f.RefreshPins(digestN(shopStable), shop.policy(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.RefreshPins(digestN(kioskCanary), kiosk.policy(0)); err != nil {
		t.Fatal(err)
	}

	// The kiosk's canary pod prunes: the shop's stable file stays.
	if diff := cmp.Diff(digests(old), kiosk.prune(f, kioskCanary)); diff != "" {
		t.Errorf("the kiosk removed (-want +got):\n%s", diff)
	}
	// The shop's pod prunes: the kiosk's stable and canary files stay.
	if removed := shop.prune(f, shopStable); len(removed) != 0 {
		t.Errorf("the shop removed %v", removed)
	}
	for _, i := range []int{shopStable, kioskStable, kioskCanary} {
		if !cached(f, i) {
			t.Errorf("model %d, pinned by one of the two rollouts, was deleted", i)
		}
	}
}

// TestPruneKeepsTheUnionOfTheFreshRecords: records from two owners, one of
// them not refreshed for longer than the TTL since the node booted (a
// deleted rollout); a record older than the TTL but from before a recent
// boot still counts (its pods have not started again yet).
func TestPruneKeepsTheUnionOfTheFreshRecords(t *testing.T) {
	now := time.Now()
	cases := map[string]struct {
		boot     time.Time
		wantGone []string
	}{
		"a record not refreshed for a day while the node ran is ignored": {
			boot: now.Add(-30 * 24 * time.Hour), wantGone: digests(3),
		},
		"a record from before a boot an hour ago still counts": {
			boot: now.Add(-time.Hour),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := fetcher(t)
			for i := 1; i <= 3; i++ {
				put(t, f, i, 10, now.Add(-time.Hour))
			}
			shop, kiosk, gone := newRollout(t, "edge.shop", 1), newRollout(t, "edge.kiosk", 2), newRollout(t, "edge.gone", 3)
			for _, r := range []*rollout{kiosk, gone} {
				if _, err := f.RefreshPins(digestN(0), r.policy(0)); err != nil {
					t.Fatal(err)
				}
			}
			stale := now.Add(-25 * time.Hour)
			if err := os.Chtimes(filepath.Join(f.pinsDir(), "edge.gone.json"), stale, stale); err != nil {
				t.Fatal(err)
			}
			p := shop.policy(0)
			p.Boot = tc.boot
			removed, err := f.Prune(digestN(1), p)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantGone, removed); diff != "" {
				t.Errorf("removed (-want +got):\n%s", diff)
			}
			if !cached(f, 1) || !cached(f, 2) {
				t.Error("a file of a fresh record was removed")
			}
		})
	}
}

// TestAPodWhosePinsFileWentKeepsItsLastRecordFresh: a pod whose pins file
// is gone (its ConfigMap deleted under it) cannot write a new record; the
// one it wrote last stays fresh while it runs, and keeps its pins.
func TestAPodWhosePinsFileWentKeepsItsLastRecordFresh(t *testing.T) {
	f := fetcher(t)
	now := time.Now()
	put(t, f, 1, 10, now.Add(-time.Hour))
	put(t, f, 2, 10, now.Add(-time.Hour))
	shop, kiosk := newRollout(t, "edge.shop", 1), newRollout(t, "edge.kiosk")
	if _, err := f.RefreshPins(digestN(0), shop.policy(0)); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(f.pinsDir(), "edge.shop.json")
	old := now.Add(-25 * time.Hour)
	if err := os.Chtimes(record, old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(shop.file); err != nil {
		t.Fatal(err)
	}
	p := shop.policy(0)
	p.Boot = now.Add(-30 * 24 * time.Hour)
	if _, err := f.RefreshPins(digestN(0), p); !errors.Is(err, ErrPinsUnknown) {
		t.Fatalf("refresh without a pins file: %v; want ErrPinsUnknown", err)
	}
	p = kiosk.policy(0)
	p.Boot = now.Add(-30 * 24 * time.Hour)
	removed, err := f.Prune(digestN(2), p)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 0 || !cached(f, 1) {
		t.Errorf("the other rollout removed %v; want the shop's last pins kept", removed)
	}
}

// TestPruneEvictsTheLeastRecentlyUsedFirstWithinMaxBytes: unpinned files
// go oldest first until those left fit MaxBytes; pinned ones never count.
func TestPruneEvictsTheLeastRecentlyUsedFirstWithinMaxBytes(t *testing.T) {
	base := time.Now().Add(-time.Hour)
	cases := map[string]struct {
		maxBytes int64
		wantGone []string
	}{
		"0 keeps only what is pinned":                     {0, digests(2, 3, 4)},
		"room for the newest unpinned file":               {300, digests(2, 3)},
		"room for two but not three":                      {550, digests(2)},
		"room for all of them":                            {600, nil},
		"a bound smaller than the newest file evicts all": {100, digests(2, 3, 4)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := fetcher(t)
			// 1 is pinned and the oldest and biggest; 2, 3, 4 are unpinned,
			// used in that order.
			put(t, f, 1, 1000, base)
			put(t, f, 2, 100, base.Add(1*time.Minute))
			put(t, f, 3, 200, base.Add(2*time.Minute))
			put(t, f, 4, 300, base.Add(3*time.Minute))
			put(t, f, 5, 10, base.Add(4*time.Minute))
			r := newRollout(t, "edge.shop", 1)
			removed, err := f.Prune(digestN(5), r.policy(tc.maxBytes))
			if err != nil {
				t.Fatal(err)
			}
			sort.Strings(removed)
			if diff := cmp.Diff(tc.wantGone, removed); diff != "" {
				t.Errorf("removed (-want +got):\n%s", diff)
			}
			if !cached(f, 1) || !cached(f, 5) {
				t.Error("the pinned or the current file was removed")
			}
		})
	}
}

// TestPruneDeletesNothingWhenItCannotTellWhatIsPinned: no pins file
// configured (an operator from before the pins), a pins file not mounted
// yet or not JSON, or another rollout's fresh record unreadable.
func TestPruneDeletesNothingWhenItCannotTellWhatIsPinned(t *testing.T) {
	cases := map[string]func(t *testing.T, f *Fetcher, p *CachePolicy){
		"no pins file configured": func(_ *testing.T, _ *Fetcher, p *CachePolicy) { p.PinsFile = "" },
		"no owner configured":     func(_ *testing.T, _ *Fetcher, p *CachePolicy) { p.Owner = "" },
		"an owner that is no name": func(_ *testing.T, _ *Fetcher, p *CachePolicy) {
			p.Owner = "../../etc"
		},
		"the pins file is missing": func(t *testing.T, _ *Fetcher, p *CachePolicy) {
			p.PinsFile = filepath.Join(t.TempDir(), config.PinsKey)
		},
		"the pins file is not JSON": func(t *testing.T, _ *Fetcher, p *CachePolicy) {
			if err := os.WriteFile(p.PinsFile, []byte("{"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"another rollout's fresh record is unreadable": func(t *testing.T, f *Fetcher, _ *CachePolicy) {
			if err := os.MkdirAll(f.pinsDir(), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(f.pinsDir(), "edge.kiosk.json"), []byte("not json"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, breakIt := range cases {
		t.Run(name, func(t *testing.T) {
			f := fetcher(t)
			base := time.Now().Add(-time.Hour)
			for i := 1; i <= 3; i++ {
				put(t, f, i, 10, base.Add(time.Duration(i)*time.Minute))
			}
			p := newRollout(t, "edge.shop", 1).policy(0)
			breakIt(t, f, &p)
			removed, err := f.Prune(digestN(3), p)
			if len(removed) != 0 {
				t.Errorf("removed %v", removed)
			}
			if !errors.Is(err, ErrPinsUnknown) {
				t.Errorf("err = %v; want one wrapping ErrPinsUnknown", err)
			}
			for i := 1; i <= 3; i++ {
				if !cached(f, i) {
					t.Errorf("model %d was deleted", i)
				}
			}
		})
	}
}

// TestPruneKeepsHeldAndDownloadingFiles: a file that a process serves or
// stages (Hold), or whose download lock a fetch holds, is never removed,
// pinned or not; let go, it is evicted by the next prune.
func TestPruneKeepsHeldAndDownloadingFiles(t *testing.T) {
	f := fetcher(t)
	base := time.Now().Add(-time.Hour)
	for i := 1; i <= 4; i++ {
		put(t, f, i, 10, base.Add(time.Duration(i)*time.Minute))
	}
	r := newRollout(t, "edge.shop")
	held, err := f.Hold(digestN(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(f.CacheDir, "partial"), 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockFile(context.Background(), filepath.Join(f.CacheDir, "partial", fmt.Sprintf("%064x.lock", 2)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(digests(3), r.prune(f, 4)); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	if !cached(f, 1) || !cached(f, 2) || !held.Present() {
		t.Fatal("a held or downloading file was removed")
	}
	_ = held.Close()
	unlock()
	if diff := cmp.Diff(digests(1, 2), r.prune(f, 4)); diff != "" {
		t.Errorf("once let go, removed (-want +got):\n%s", diff)
	}
}

// TestHoldSeesTheFileGo: a stager's hold tells it that its file was removed
// or replaced, and a hold on a file that is gone fails.
func TestHoldSeesTheFileGo(t *testing.T) {
	f := fetcher(t)
	put(t, f, 1, 10, time.Now())
	h, err := f.Hold(digestN(1))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if !h.Present() {
		t.Fatal("a held file in place is not present")
	}
	path, _ := f.Path(digestN(1))
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if h.Present() {
		t.Error("a removed file is still present")
	}
	put(t, f, 1, 10, time.Now())
	if h.Present() {
		t.Error("a file put in its place by someone else counts as the held one")
	}
	if _, err := f.Hold(digestN(9)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("holding a file not in the cache: %v; want not exist", err)
	}
}
