package gguf_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"

	"github.com/slmops/slmops/inferd/gguf"
	"github.com/slmops/slmops/inferd/gguf/gguftest"
)

// allocated is how many heap bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestCraftedFilesAreRefused: every file of the crafted corpus is invalid
// GGUF for Read and for Open, reading it allocates no more than a small
// multiple of its own size, whatever counts and lengths its header claims,
// and the error (which inferd logs and puts in its termination message)
// quotes no name from the file whole.
func TestCraftedFilesAreRefused(t *testing.T) {
	valid := gguftest.Valid()
	if _, err := gguf.Read(bytes.NewReader(valid), int64(len(valid))); err != nil {
		t.Fatalf("the file the corpus is made from does not read: %v", err)
	}
	dir := t.TempDir()
	for _, c := range gguftest.Crafted() {
		t.Run(c.Name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = gguf.Read(bytes.NewReader(c.Data), int64(len(c.Data))) })
			if !errors.Is(err, gguf.ErrInvalid) {
				t.Fatalf("Read: %v; want ErrInvalid (%s)", err, c.Why)
			}
			if len(err.Error()) > 512 {
				t.Errorf("a %d-byte error: %.200s...", len(err.Error()), err)
			}
			if limit := 64<<10 + 4*uint64(len(c.Data)); n > limit {
				t.Errorf("Read of a %d-byte file allocated %d bytes; want at most %d", len(c.Data), n, limit)
			}
			path := filepath.Join(dir, c.Name+".gguf")
			if err := os.WriteFile(path, c.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			if m, err := gguf.Open(path); !errors.Is(err, gguf.ErrInvalid) {
				if err == nil {
					m.Close()
				}
				t.Errorf("Open: %v; want ErrInvalid", err)
			}
		})
	}
}

// TestEveryPrefixIsRefused: the valid file's last tensor ends the file, so
// a cut anywhere (header, metadata, tensor infos, padding, data) loses
// something a loader needs.
func TestEveryPrefixIsRefused(t *testing.T) {
	valid := gguftest.Valid()
	for n := range len(valid) {
		if _, err := gguf.Read(bytes.NewReader(valid[:n]), int64(n)); !errors.Is(err, gguf.ErrInvalid) {
			t.Errorf("the first %d of %d bytes: %v; want ErrInvalid", n, len(valid), err)
		}
	}
}

// TestMetadataCostsItsSizeInTheFile: arrays are read into slices of their
// element type, so the heap a header costs is bounded by the file's size:
// numbers cost what they take in the file, strings at most about twice
// (a string header per length prefix).
func TestMetadataCostsItsSizeInTheFile(t *testing.T) {
	const n = 1 << 18
	for name, tc := range map[string]struct {
		typ  gguf.ValueType
		elem any
		want any
	}{
		"uint8":             {gguf.TypeUint8, uint8(7), make([]uint8, 4*n)},
		"int32 token types": {gguf.TypeInt32, int32(1), make([]int32, n)},
		"float32 scores":    {gguf.TypeFloat32, float32(-1), make([]float32, n)},
		"bool":              {gguf.TypeBool, true, make([]bool, n)},
		"empty strings":     {gguf.TypeString, "", make([]string, n)},
		"short strings":     {gguf.TypeString, "ab", make([]string, n)},
	} {
		t.Run(name, func(t *testing.T) {
			// gguf.Array holds []any, which writers built before Write took
			// typed slices (and the code this test was written against) use.
			count := reflect.ValueOf(tc.want).Len()
			values := make([]any, count)
			for i := range values {
				values[i] = tc.elem
			}
			value := gguf.Array{Type: tc.typ, Values: values}
			var buf bytes.Buffer
			meta := []gguf.KV{{Key: "general.architecture", Type: gguf.TypeString, Value: "x"}, {Key: "big", Type: gguf.TypeArray, Value: value}}
			if err := gguf.Write(&buf, meta, nil); err != nil {
				t.Fatal(err)
			}
			data := buf.Bytes()
			var f *gguf.File
			var err error
			got := allocated(func() { f, err = gguf.Read(bytes.NewReader(data), int64(len(data))) })
			if err != nil {
				t.Fatal(err)
			}
			v, _ := f.Get("big")
			if reflect.TypeOf(v) != reflect.TypeOf(tc.want) || reflect.ValueOf(v).Len() != count {
				t.Errorf("the array reads as %T; want %T of %d", v, tc.want, count)
			}
			if limit := 64<<10 + 2*uint64(len(data)); got > limit {
				t.Errorf("reading a %d-byte file allocated %d bytes (%.1fx); want at most %d", len(data), got, float64(got)/float64(len(data)), limit)
			}
		})
	}
}
