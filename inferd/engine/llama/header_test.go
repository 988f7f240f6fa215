package llama

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/engine/llama/llamatest"
	"github.com/slmops/slmops/inferd/gguf"
)

// TestAHugeBlockCountCostsNothing: llama.block_count is a number in the
// header, not a promise; a file that claims 65536 layers and holds one
// fails at the second layer's first tensor without building the 65535
// layers it does not have.
func TestAHugeBlockCountCostsNothing(t *testing.T) {
	path := writeSpec(t, llamatest.RandomSpec{Embd: 32, Layers: 1, Heads: 2, KVHeads: 1, FF: 32, Vocab: 300, Context: 64, Type: gguf.F32, Seed: 3})
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The uint32 value follows the key and its 4-byte type.
	key := []byte("llama.block_count")
	at := bytes.Index(data, key) + len(key) + 4
	if at < len(key)+4 || binary.LittleEndian.Uint32(data[at:]) != 1 {
		t.Fatal("llama.block_count 1 not found in the file")
	}
	binary.LittleEndian.PutUint32(data[at:], 1<<16)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = engine.Load(path, engine.Expect{}, engine.Options{Threads: 1})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, engine.ErrUnsupported) || !strings.Contains(err.Error(), "blk.1.") {
		t.Errorf("err = %v; want ErrUnsupported about blk.1", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 4<<20 {
		t.Errorf("loading a file with 1 of its 65536 layers allocated %d bytes; want at most 4 MiB", n)
	}
}
