package kernels

import (
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestGovernorPausesPollingWhileContended: the adaptive pool's measure, on a
// clock of its own. A poll that lost its core stops polling for 10 ms, the
// next for twice as long, up to a second; polls that keep their core bring
// the pause back down, not below 10 ms.
func TestGovernorPausesPollingWhileContended(t *testing.T) {
	var g governor
	if !g.polling(0) {
		t.Fatal("a new governor does not poll")
	}
	now := int64(1e9)
	g.contended(now)
	if g.polling(now+minPause-1) || !g.polling(now+minPause) {
		t.Fatalf("after contention at %d: polling until %d, want %d", now, g.until.Load(), now+minPause)
	}
	want := minPause
	for range 12 {
		now = g.until.Load()
		want = min(2*want, maxPause)
		g.contended(now)
		if got := g.until.Load() - now; got != want {
			t.Fatalf("pause %v, want %v", time.Duration(got), time.Duration(want))
		}
	}
	if got := g.pause.Load(); got != maxPause {
		t.Fatalf("the next pause is %v after a long contention, want the cap %v", time.Duration(got), time.Duration(maxPause))
	}
	for range cleanPolls - 1 {
		g.paid()
	}
	if got := g.pause.Load(); got != maxPause {
		t.Fatalf("the pause came down to %v before %d clean polls", time.Duration(got), cleanPolls)
	}
	g.paid()
	if got := g.pause.Load(); got != maxPause/2 {
		t.Fatalf("after %d clean polls the pause is %v, want %v", cleanPolls, time.Duration(got), time.Duration(maxPause/2))
	}
	for range 20 * cleanPolls {
		g.paid()
	}
	if got := g.pause.Load(); got != minPause {
		t.Fatalf("after many clean polls the pause is %v, want the floor %v", time.Duration(got), time.Duration(minPause))
	}
	// A contention in the middle of clean polls starts their count again.
	for range cleanPolls - 1 {
		g.paid()
	}
	g.contended(now)
	g.paid()
	if got := g.pause.Load(); got != 2*minPause {
		t.Fatalf("pause %v, want %v: the clean polls before a contention must not count", time.Duration(got), time.Duration(2*minPause))
	}
}

// TestAdaptivePoolStopsPollingWhenAnotherProcessTakesTheCPUs: fault
// injection with real contention. Other processes burn every CPU of the
// machine while an adaptive pool runs products; its polling threads lose
// their cores, see it, and the pool pauses polling. The products stay
// complete throughout.
func TestAdaptivePoolStopsPollingWhenAnotherProcessTakesTheCPUs(t *testing.T) {
	// A shell loop, not this binary: under qemu-user (make test-arm64) a
	// test binary cannot exec itself.
	for range runtime.NumCPU() {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	p := NewAdaptivePool(2)
	defer p.Close()
	if p.Workers() < 2 {
		t.Fatalf("the pool has %d worker; the test needs 2 (GOMAXPROCS %d)", p.Workers(), runtime.GOMAXPROCS(0))
	}
	deadline := time.Now().Add(60 * time.Second)
	runs, paused := 0, false
	for !paused && time.Now().Before(deadline) {
		var sum atomic.Int64
		p.Run(64, 1, func(s, e int) {
			spinFor(time.Duration(e-s) * 3 * time.Microsecond)
			sum.Add(int64(e - s))
		})
		if sum.Load() != 64 {
			t.Fatalf("run %d covered %d of 64 items", runs, sum.Load())
		}
		spinFor(10 * time.Microsecond)
		runs++
		paused = p.Paused()
	}
	if !paused {
		t.Fatalf("with every CPU taken by other processes, the pool never paused polling in %d runs", runs)
	}
	t.Logf("the pool paused polling after %d runs", runs)
}

func spinFor(d time.Duration) {
	t := time.Now()
	for time.Since(t) < d {
	}
}
