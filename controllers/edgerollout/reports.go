package edgerollout

import (
	"sync"

	"github.com/slmops/slmops/controllers/edgerollout/plan"
	"github.com/slmops/slmops/inferd/config"
)

// reportCache remembers the reports parsed from pods' report annotations,
// by the annotation's text: a report changes only when inferd writes a new
// one, while every reconcile observes every pod of the rollout, and at
// 5,000 nodes parsing them all each time was a large part of the operator's
// garbage. The parsed reports are shared and never written (the plan only
// reads them).
//
// It holds two generations: a lookup moves an entry into the current one,
// and when that has grown to limit entries it becomes the previous one and
// the entries not looked up since are dropped. So it holds at most 2 x
// limit reports, and what pods no longer carry goes within two turns.
type reportCache struct {
	mu        sync.Mutex
	cur, prev map[string]*config.Report
	limit     int
}

// reportCacheLimit is the size of a generation: more than the pods of any
// fleet the operator is measured at (two a node while they switch, 5,000
// nodes), so that a reconcile of one rollout does not turn it over.
const reportCacheLimit = 16384

// parse is plan.ParseReport, from the cache when it can be.
func (c *reportCache) parse(v string) *config.Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.cur[v]; ok {
		return r
	}
	r, ok := c.prev[v]
	if !ok {
		r = plan.ParseReport(v)
	}
	limit := c.limit
	if limit == 0 {
		limit = reportCacheLimit
	}
	if c.cur == nil || len(c.cur) >= limit {
		c.prev, c.cur = c.cur, make(map[string]*config.Report, min(limit, 1024))
	}
	c.cur[v] = r
	return r
}

// len is how many reports the cache holds.
func (c *reportCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.prev)
}
