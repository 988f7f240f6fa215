package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Pool runs row ranges of a product on a fixed set of goroutines, never
// more of them than GOMAXPROCS, which since Go 1.25 follows the container's
// CPU quota: a pod limited to 2 CPUs on an 8-core node runs 2 workers.
//
// How a waiting thread waits is the pool's policy. A sleeping pool
// (NewPool) blocks on a channel at once, so another process taking a core
// slows a product down instead of leaving polling threads fighting for it;
// the price is a wake-up per product, and on a small VM a sleeping thread
// takes tens of microseconds to run again, for dozens of products a token.
// A spinning pool (NewSpinningPool) polls for a short while first, for CPUs
// that nothing else uses. An adaptive pool (NewAdaptivePool, the engine's
// default) polls while that pays and sleeps at once while the CPUs are
// contended.
type Pool struct {
	workers int
	spin    time.Duration // how long a waiting thread polls before it sleeps
	auto    *governor     // for an adaptive pool: whether polling pays now
	// sleeping counts an adaptive pool's threads blocked for want of work
	// (they run again with the next product), for the governor.
	sleeping atomic.Int32
	tasks    chan task
	once     sync.Once
}

type task struct {
	fn         func(start, end int)
	start, end int
	wg         *sync.WaitGroup
	left       *atomic.Int32 // helpers not done yet, for a polling caller
}

// NewPool returns a pool of threads workers; 0 (or more than GOMAXPROCS)
// means GOMAXPROCS. Its threads never spin: they sleep as soon as they wait.
func NewPool(threads int) *Pool { return newPool(threads, 0, nil) }

// SpinBudget is how long a waiting thread of a spinning pool polls before it
// sleeps: longer than the serial work between two products of a layer and
// than one range of a product (what the caller waits for at the end), far
// shorter than a person waits between two requests, so an idle pool sleeps.
// 50 µs was too short for Q8_0's ranges on the development VM.
const SpinBudget = 200 * time.Microsecond

// NewSpinningPool is NewPool for CPUs that nothing else uses (a Guaranteed
// pod under the kubelet's static CPU manager policy, a node that runs only
// inferd): a thread that waits for the next product, or for the others to
// finish one, polls for up to SpinBudget before it sleeps. Generation is
// much faster there; on CPUs shared with another busy process it is much
// slower, because a polling thread keeps a core the other needs.
func NewSpinningPool(threads int) *Pool { return newPool(threads, SpinBudget, nil) }

// NewAdaptivePool is a spinning pool that stops polling while the CPUs are
// contended, and polls again once they are not (cpuPolicy Auto): on CPUs of
// its own it is as fast as NewSpinningPool, and when another process takes
// a core it sleeps as NewPool does instead of keeping that core from it.
//
// A thread that polls checks the clock every few dozen loads. On a CPU
// nothing else wants, the checks come a fraction of a microsecond apart; a
// gap of more than PreemptionGap between two of them means the kernel gave
// the core to another thread while this one only waited, which is the cost
// of polling on a contended CPU, or that the hypervisor held the virtual CPU
// back (steal time), which a pause gives nobody. The pool asks the kernel's
// run queue which (runQueue): when the runnable tasks and the pool's
// sleeping threads outnumber the CPUs, or under a CPU quota, it sleeps at
// once for a while (10 ms, doubling each time contention is seen again, up
// to a second) and tries polling again after it; polls that run without a
// gap bring the pause back down. This is the measure OpenMP runtimes and Go's own
// scheduler take, per wait rather than by a fixed spin count.
func NewAdaptivePool(threads int) *Pool {
	return newPool(threads, SpinBudget, &governor{rq: newRunQueue()})
}

func newPool(threads int, spin time.Duration, auto *governor) *Pool {
	n := runtime.GOMAXPROCS(0)
	if threads > 0 && threads < n {
		n = threads
	}
	p := &Pool{workers: n, spin: spin, auto: auto, tasks: make(chan task, 4*n)}
	goroutines := n
	if spin > 0 {
		// Polling helpers and the caller: exactly the pool's threads.
		goroutines = n - 1
	}
	for range goroutines {
		go func() {
			for {
				if p.spin > 0 {
					p.poll(func() bool { return len(p.tasks) > 0 })
				}
				if p.auto != nil {
					p.sleeping.Add(1)
				}
				t, ok := <-p.tasks
				if p.auto != nil {
					p.sleeping.Add(-1)
				}
				if !ok {
					return
				}
				t.fn(t.start, t.end)
				t.left.Add(-1)
				t.wg.Done()
			}
		}()
	}
	return p
}

// poll calls done until it returns true or the spin budget has passed; the
// caller then blocks as usual, at once if done. An adaptive pool polls only
// while its governor allows, and tells it when a poll was preempted.
func (p *Pool) poll(done func() bool) {
	start := nanotime()
	if p.auto != nil && !p.auto.polling(start) {
		return
	}
	last := start
	for i := 0; !done(); i++ {
		if i%64 == 63 {
			now := nanotime()
			if p.auto != nil && now-last > int64(PreemptionGap) && p.auto.gap(now, int(p.sleeping.Load())) {
				return
			}
			if now-start > int64(p.spin) {
				return
			}
			last = now
		}
	}
	if p.auto != nil {
		p.auto.paid()
	}
}

// PreemptionGap is the pause between two clock checks of a polling thread
// that an adaptive pool takes for the kernel running another thread on its
// core: far longer than the loads between two checks (well under a
// microsecond) or an interrupt, far shorter than a scheduler's time slice
// (milliseconds).
const PreemptionGap = 50 * time.Microsecond

// governor is an adaptive pool's measure of whether polling pays, shared by
// the pool's threads.
type governor struct {
	until atomic.Int64 // nanotime before which threads do not poll
	pause atomic.Int64 // how long the next contention stops polling
	clean atomic.Int64 // polls without a gap since the last contention

	// rq tells a core taken by another task from steal time; nil: every
	// gap is contention.
	rq *runQueue
}

// gap records a poll that saw a gap at now, and says whether the poll
// stops: when the gap was another task taking the core, polling pauses;
// when it was steal time, the poll goes on.
func (g *governor) gap(now int64, sleeping int) bool {
	if !g.rq.contended(now, sleeping) {
		allStolen.Add(1)
		return false
	}
	allPauses.Add(1)
	g.contended(now)
	return true
}

var allPauses, allStolen atomic.Int64

// AdaptiveGaps counts the gaps that the adaptive pools of this process saw
// since it started: those taken for another task on a core (each paused
// polling) and those put down to steal time (polling went on).
func AdaptiveGaps() (pauses, stolen int64) { return allPauses.Load(), allStolen.Load() }

const (
	minPause = int64(10 * time.Millisecond)
	maxPause = int64(time.Second)
	// cleanPolls without a gap halve the pause: at the pace of a decoding
	// model (a hundred waits a token), a few tokens' worth.
	cleanPolls = 512
)

// polling says whether a thread waiting at now may poll.
func (g *governor) polling(now int64) bool { return now >= g.until.Load() }

// contended records a poll that lost its core at now: threads sleep at once
// for the pause, which doubles for the next time.
func (g *governor) contended(now int64) {
	pause := max(g.pause.Load(), minPause)
	g.until.Store(now + pause)
	g.pause.Store(min(2*pause, maxPause))
	g.clean.Store(0)
}

// paid records a poll that ended without losing its core.
func (g *governor) paid() {
	if g.clean.Add(1)%cleanPolls == 0 {
		if pause := g.pause.Load(); pause > minPause {
			g.pause.Store(max(pause/2, minPause))
		}
	}
}

// Paused reports whether an adaptive pool is sleeping at once because it saw
// contention.
func (p *Pool) Paused() bool { return p.auto != nil && !p.auto.polling(nanotime()) }

// nanotime is a monotonic clock in nanoseconds.
func nanotime() int64 { return int64(time.Since(epoch)) }

var epoch = time.Now()

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
	var left atomic.Int32
	wg.Add(helpers)
	left.Store(int32(helpers))
	for range helpers {
		p.tasks <- task{fn: work, wg: &wg, left: &left}
	}
	work(0, 0)
	if p.spin > 0 {
		p.poll(func() bool { return left.Load() == 0 })
	}
	if p.auto != nil {
		p.sleeping.Add(1)
		wg.Wait()
		p.sleeping.Add(-1)
		return
	}
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
		prepareDot4(j.Type.Type, j.Acts)
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
	prepareDot4(typ.Type, acts)
	p.Run(rows, 16, func(start, end int) { matRows(typ, w, acts, out, start, end) })
}

// MatRows computes rows [start, end) of a product on the calling goroutine,
// for callers that split the work themselves; they call Prepare first, once
// for all the ranges.
func MatRows(typ TypeInfo, w []byte, acts []*Act, out [][]float32, start, end int) {
	matRows(typ, w, acts, out, start, end)
}

// Prepare readies acts for products of type typ over them through MatRows:
// the layouts some batch kernels read (see prepareDot4), made once on the
// calling goroutine rather than by every range. Without it, MatRows takes
// a slower path, with the same results.
func Prepare(typ TypeInfo, acts []*Act) { prepareDot4(typ.Type, acts) }

// matRows computes rows [start, end) of a product.
func matRows(typ TypeInfo, w []byte, acts []*Act, out [][]float32, start, end int) {
	rowBytes := typ.RowBytes
	if len(acts) == 1 && rowsFast(typ.Type, w[start*rowBytes:end*rowBytes], rowBytes, acts[0], out[0][start:end]) {
		return
	}
	// The four-token kernels, bound once to each group of four
	// activations (nil where a group cannot use them).
	var batched []dot4Func
	for t := 0; hasDot4(typ.Type) && t+4 <= len(acts); t += 4 {
		k := dot4Kernel(typ.Type, acts[t:t+4])
		if k == nil {
			break
		}
		batched = append(batched, k)
	}
	if len(acts) > 1 && len(batched) == 0 && rowsFast(typ.Type, w[start*rowBytes:(start+1)*rowBytes], rowBytes, acts[0], out[0][start:start+1]) {
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
