package kernels

import (
	"testing"
	"time"
)

// BenchmarkPoolRunBetweenSerialWork: 192 µs of work in 64 items, ideally 96
// µs on two threads, with 10 µs of serial work between runs, as between the
// products of a layer.
// Reports the run time alone (run-µs) and its speed-up over one thread. On
// the 2-vCPU development VM it is about 1.2x: a parked helper takes around
// 100 µs to run again (an idle vCPU wakes slowly), which is what limits
// two-thread decoding; waking helpers through a blocking system call
// instead of a channel was worse (1.1x), and spinning is ruled out.
func BenchmarkPoolRunBetweenSerialWork(b *testing.B) {
	p := NewPool(2)
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
