package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Pool runs row ranges of a product on a fixed set of goroutines. Workers
// block on a channel between tasks (they never spin), and there are never
// more of them than GOMAXPROCS, which since Go 1.25 follows the container's
// CPU quota: a pod limited to 2 CPUs on an 8-core node runs 2 workers, and
// another process taking a core slows a product down instead of leaving
// spinning threads fighting for it.
type Pool struct {
	workers int
	tasks   chan task
	once    sync.Once
}

type task struct {
	fn         func(start, end int)
	start, end int
	wg         *sync.WaitGroup
}

// NewPool returns a pool of threads workers; 0 (or more than GOMAXPROCS)
// means GOMAXPROCS.
func NewPool(threads int) *Pool {
	n := runtime.GOMAXPROCS(0)
	if threads > 0 && threads < n {
		n = threads
	}
	p := &Pool{workers: n, tasks: make(chan task, 4*n)}
	for range n {
		go func() {
			for t := range p.tasks {
				t.fn(t.start, t.end)
				t.wg.Done()
			}
		}()
	}
	return p
}

// Workers is how many goroutines the pool runs.
func (p *Pool) Workers() int { return p.workers }

// Run calls fn over [0, n) split into ranges, in parallel, and returns when
// all are done. The caller works too: it takes ranges from the same counter
// as the workers it wakes, so a product starts at once and one wake-up
// fewer sits on the critical path. Ranges are at least grain long, and
// there are a few more of them than workers so that one slow worker (or a
// core taken by another process) does not hold the rest.
func (p *Pool) Run(n, grain int, fn func(start, end int)) {
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	chunks := min(p.workers*4, (n+grain-1)/grain)
	if p.workers == 1 || chunks <= 1 {
		fn(0, n)
		return
	}
	size := (n + chunks - 1) / chunks
	chunks = (n + size - 1) / size
	var next atomic.Int64
	work := func(int, int) {
		for {
			c := int(next.Add(1) - 1)
			if c >= chunks {
				return
			}
			fn(c*size, min(n, (c+1)*size))
		}
	}
	helpers := min(p.workers-1, chunks-1)
	var wg sync.WaitGroup
	wg.Add(helpers)
	for range helpers {
		p.tasks <- task{fn: work, wg: &wg}
	}
	work(0, 0)
	wg.Wait()
}

// Close stops the workers.
func (p *Pool) Close() { p.once.Do(func() { close(p.tasks) }) }

// Job is one matrix product of MatMuls.
type Job struct {
	Type TypeInfo
	W    []byte
	Rows int
	Acts []*Act
	Out  [][]float32
}

// MatMuls runs several products as one parallel pass (the query, key and
// value projections, or the gate and up projections, which read the same
// activations), so the workers meet once instead of once per product.
func MatMuls(p *Pool, jobs ...Job) {
	total := 0
	for _, j := range jobs {
		total += j.Rows
	}
	p.Run(total, 16, func(start, end int) {
		base := 0
		for _, j := range jobs {
			lo, hi := max(start, base), min(end, base+j.Rows)
			if lo < hi {
				matRows(j.Type, j.W, j.Acts, j.Out, lo-base, hi-base)
			}
			base += j.Rows
		}
	})
}

// MatMul computes out[t][r] = row r of w · acts[t] for the rows of a
// rows x cols weight matrix of type typ, in parallel over rows. With several
// activations (a batch of prompt tokens) each row is read from memory once
// and used for all of them, which is what makes prompt processing faster
// than token by token.
func MatMul(p *Pool, typ TypeInfo, w []byte, rows int, acts []*Act, out [][]float32) {
	p.Run(rows, 16, func(start, end int) { matRows(typ, w, acts, out, start, end) })
}

// MatRows computes rows [start, end) of a product on the calling goroutine,
// for callers that split the work themselves.
func MatRows(typ TypeInfo, w []byte, acts []*Act, out [][]float32, start, end int) {
	matRows(typ, w, acts, out, start, end)
}

// matRows computes rows [start, end) of a product.
func matRows(typ TypeInfo, w []byte, acts []*Act, out [][]float32, start, end int) {
	rowBytes := typ.RowBytes
	if len(acts) == 1 && rowsFast(typ.Type, w[start*rowBytes:end*rowBytes], rowBytes, acts[0], out[0][start:end]) {
		return
	}
	if len(acts) > 1 && !hasDot4(typ.Type) && rowsFast(typ.Type, w[start*rowBytes:(start+1)*rowBytes], rowBytes, acts[0], out[0][start:start+1]) {
		// No four-token kernel for this type, but a row kernel: run it per
		// token over small tiles of rows, so a tile's weights stay in cache
		// for all the tokens instead of coming from memory once per token.
		const tile = 16
		for r0 := start; r0 < end; r0 += tile {
			r1 := min(end, r0+tile)
			for t, a := range acts {
				rowsFast(typ.Type, w[r0*rowBytes:r1*rowBytes], rowBytes, a, out[t][r0:r1])
			}
		}
		return
	}
	// The four-token kernels, bound once to each group of four
	// activations (nil where a group cannot use them).
	var batched []dot4Func
	for t := 0; t+4 <= len(acts); t += 4 {
		k := dot4Kernel(typ.Type, acts[t:t+4])
		if k == nil {
			break
		}
		batched = append(batched, k)
	}
	// Tiles of rows: a tile's weights and one group's activations stay in
	// the first-level cache while the group runs over the tile, instead of
	// every row streaming every token's activation from the second level.
	const tile = 16
	var four [4]float32
	for r0 := start; r0 < end; r0 += tile {
		r1 := min(end, r0+tile)
		t := 0
		for _, k := range batched {
			for r := r0; r < r1; r++ {
				row := w[r*rowBytes : (r+1)*rowBytes]
				if !k(row, acts[t:t+4], &four) {
					for i := range 4 {
						four[i] = Dot(typ.Type, row, acts[t+i])
					}
				}
				out[t][r], out[t+1][r], out[t+2][r], out[t+3][r] = four[0], four[1], four[2], four[3]
			}
			t += 4
		}
		for r := r0; r < r1; r++ {
			row := w[r*rowBytes : (r+1)*rowBytes]
			for tt := t; tt < len(acts); tt++ {
				out[tt][r] = Dot(typ.Type, row, acts[tt])
			}
		}
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
