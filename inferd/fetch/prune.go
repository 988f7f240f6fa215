package fetch

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Prune keeps the model with digest current and the most recently used other
// one (the previous model, for an instant rollback on the node) and removes
// the older ones. It returns the digests it removed. Fetch marks a file as
// used whenever it returns it.
func (f *Fetcher) Prune(current string) ([]string, error) {
	keep, err := f.Path(current)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(keep)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	type file struct {
		name string
		used time.Time
	}
	var others []file
	for _, e := range entries {
		if e.Name() == filepath.Base(keep) || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		others = append(others, file{e.Name(), info.ModTime()})
	}
	sort.Slice(others, func(i, j int) bool { return others[i].used.After(others[j].used) })
	var removed []string
	for i, o := range others {
		if i == 0 {
			continue // the previous model
		}
		if err := os.Remove(filepath.Join(dir, o.name)); err != nil && !os.IsNotExist(err) {
			return removed, fmt.Errorf("remove old model sha256:%s: %w", o.name, err)
		}
		removed = append(removed, "sha256:"+o.name)
	}
	return removed, nil
}

// touch marks a cached model as used now.
func touch(path string) {
	now := time.Now()
	_ = os.Chtimes(path, now, now)
}
