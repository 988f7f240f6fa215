package llama

import (
	"context"
	"testing"
	"unsafe"

	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/gguf"
)

// TestKVBytesPerValueIsTheCache's: after n positions each layer's keys and
// values hold n x KV heads x head size elements of KVBytesPerValue bytes,
// which is what memory estimates (package check) count.
func TestKVBytesPerValueIsTheCaches(t *testing.T) {
	md := load(t, writeSpec(t, tiny(gguf.Q8_0)), engine.Options{})
	e, err := md.NewSequence()
	if err != nil {
		t.Fatal(err)
	}
	s := e.(*sequence)
	const n = 5
	if _, err := s.Forward(context.Background(), []int32{1, 2, 3, 4, 5}); err != nil {
		t.Fatal(err)
	}
	want := n * md.cfg.KVHeads * md.cfg.HeadDim
	for li := range md.cfg.Layers {
		if len(s.k[li]) != want || len(s.v[li]) != want {
			t.Fatalf("layer %d holds %d keys and %d values after %d positions; want %d each", li, len(s.k[li]), len(s.v[li]), n, want)
		}
	}
	if size := int(unsafe.Sizeof(s.k[0][0])); size != KVBytesPerValue {
		t.Fatalf("a cached value is %d bytes; KVBytesPerValue says %d", size, KVBytesPerValue)
	}
}
