package kernels

import (
	"runtime"
	"sync"
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
// all are done. Ranges are at least grain long, and there are a few more of
// them than workers so that one slow worker does not hold the rest.
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
	var wg sync.WaitGroup
	for start := 0; start < n; start += size {
		wg.Add(1)
		p.tasks <- task{fn: fn, start: start, end: min(n, start+size), wg: &wg}
	}
	wg.Wait()
}

// Close stops the workers.
func (p *Pool) Close() { p.once.Do(func() { close(p.tasks) }) }

// MatMul computes out[t][r] = row r of w · acts[t] for the rows of a
// rows x cols weight matrix of type typ, in parallel over rows. With several
// activations (a batch of prompt tokens) each row is read from memory once
// and used for all of them, which is what makes prompt processing faster
// than token by token.
func MatMul(p *Pool, typ TypeInfo, w []byte, rows int, acts []*Act, out [][]float32) {
	rowBytes := typ.RowBytes
	p.Run(rows, 16, func(start, end int) {
		if len(acts) == 1 && rowsFast(typ.Type, w[start*rowBytes:end*rowBytes], rowBytes, acts[0], out[0][start:end]) {
			return
		}
		var four [4]float32
		for r := start; r < end; r++ {
			row := w[r*rowBytes : (r+1)*rowBytes]
			t := 0
			for ; t+4 <= len(acts) && dot4Fast(typ.Type, row, acts[t:t+4], &four); t += 4 {
				out[t][r], out[t+1][r], out[t+2][r], out[t+3][r] = four[0], four[1], four[2], four[3]
			}
			for ; t < len(acts); t++ {
				out[t][r] = Dot(typ.Type, row, acts[t])
			}
		}
	})
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
