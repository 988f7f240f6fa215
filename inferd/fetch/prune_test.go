package fetch

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPruneKeepsTheCurrentAndThePreviousModel(t *testing.T) {
	f := fetcher(t)
	digest := func(i int) string { return fmt.Sprintf("sha256:%064x", i) }
	base := time.Now().Add(-time.Hour)
	for i := 1; i <= 4; i++ {
		path, _ := f.Path(digest(i))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
		// Model 4 is the newest, 1 the oldest.
		at := base.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(path, at, at); err != nil {
			t.Fatal(err)
		}
	}
	// Model 2 is current: 4 is the most recently used other one and stays.
	removed, err := f.Prune(digest(2))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(removed)
	if diff := cmp.Diff([]string{digest(1), digest(3)}, removed); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	for i, want := range map[int]bool{1: false, 2: true, 3: false, 4: true} {
		path, _ := f.Path(digest(i))
		if exists(path) != want {
			t.Errorf("model %d kept = %v, want %v", i, exists(path), want)
		}
	}
	// Pruning an empty cache is fine.
	if removed, err := fetcher(t).Prune(digest(9)); err != nil || len(removed) != 0 {
		t.Errorf("empty cache: %v, %v", removed, err)
	}
}
