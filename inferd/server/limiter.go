package server

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// limiter bounds how many generations run at once (the model's
// maxConcurrentRequests) and how many wait for a slot. A request that finds
// both full is refused at once, so overload costs the node a 429, not
// memory or a growing latency for everyone.
type limiter struct {
	slots    chan struct{}
	maxQueue int64
	waiting  atomic.Int64
	timeout  time.Duration

	mu   sync.Mutex
	ewma float64 // seconds a request holds a slot, smoothed
}

func newLimiter(concurrency, queue int, timeout time.Duration) *limiter {
	return &limiter{slots: make(chan struct{}, max(concurrency, 1)), maxQueue: int64(max(queue, 0)), timeout: timeout}
}

// acquire takes a slot, waiting in the queue when there is room in it. The
// release function records how long the slot was held.
func (l *limiter) acquire(ctx context.Context) (func(), error) {
	select {
	case l.slots <- struct{}{}:
		return l.releaser(), nil
	default:
	}
	if l.waiting.Add(1) > l.maxQueue {
		l.waiting.Add(-1)
		return nil, errOverloaded
	}
	defer l.waiting.Add(-1)
	timer := time.NewTimer(l.timeout)
	defer timer.Stop()
	select {
	case l.slots <- struct{}{}:
		return l.releaser(), nil
	case <-timer.C:
		return nil, errOverloaded
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *limiter) releaser() func() {
	start := time.Now()
	var once sync.Once
	return func() {
		once.Do(func() {
			held := time.Since(start).Seconds()
			l.mu.Lock()
			if l.ewma == 0 {
				l.ewma = held
			} else {
				l.ewma = 0.8*l.ewma + 0.2*held
			}
			l.mu.Unlock()
			<-l.slots
		})
	}
}

// retryAfter estimates, in whole seconds, when a slot is likely free: the
// queue ahead drained at the observed pace.
func (l *limiter) retryAfter() int {
	l.mu.Lock()
	avg := l.ewma
	l.mu.Unlock()
	s := avg * float64(l.waiting.Load()+1) / float64(cap(l.slots))
	return int(min(max(math.Ceil(s), 1), 60))
}

func (l *limiter) running() int { return len(l.slots) }
func (l *limiter) queued() int  { return int(l.waiting.Load()) }
