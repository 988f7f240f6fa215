package kernels

import (
	"testing"
	"time"
)

// BenchmarkPoolRunBetweenSerialWork: 192 µs of work in 64 items, ideally 96
// µs on two threads, with 10 µs of serial work between runs, as between the
// products of a layer.
// Reports the run time alone (run-µs) and its speed-up over one thread. On
// the 2-vCPU development VM the sleeping pool reaches about 1.25x: a parked
// helper takes tens of microseconds to run again (a futex wake costs the
// waker some 13 µs and the sleeper runs some 25 µs later; waking through a
// futex instead of a channel was no better), and the caller waits for it
// twice per run. The spinning pool reaches 1.8-1.9x.
func BenchmarkPoolRunBetweenSerialWork(b *testing.B) {
	b.Run("sleeping", func(b *testing.B) { benchPoolRun(b, NewPool(2)) })
	b.Run("spinning", func(b *testing.B) { benchPoolRun(b, NewSpinningPool(2)) })
}

func benchPoolRun(b *testing.B, p *Pool) {
	defer p.Close()
	var total time.Duration
	n := 0
	for b.Loop() {
		start := time.Now()
		p.Run(64, 1, func(s, e int) {
			t := time.Now()
			for time.Since(t) < time.Duration(e-s)*3*time.Microsecond {
			}
		})
		total += time.Since(start)
		n++
		// The caller's serial work between two products (norms, activation
		// quantization): about 10 µs.
		t := time.Now()
		for time.Since(t) < 10*time.Microsecond {
		}
	}
	b.ReportMetric(float64(total.Microseconds())/float64(n), "run-µs")
	b.ReportMetric(192/(float64(total.Microseconds())/float64(n)), "speedup")
}
