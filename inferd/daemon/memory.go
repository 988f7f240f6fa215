package daemon

import (
	"fmt"

	"github.com/slmops/slmops/inferd/engine/check"
)

// memoryEstimate is what memoryFit found: the model's estimate in bytes (0
// when the file could not be read, which the load then reports) and, when
// it does not fit, why.
type memoryEstimate struct {
	bytes   int64
	message string
}

// memoryFit estimates the model's memory as `inferd check --context
// <contextLength> --concurrency <maxConcurrentRequests>` does, from the
// file's header and metadata, and says whether it fits in
// Options.MemoryLimitBytes (it does when the limit is unknown).
func (d *Daemon) memoryFit(path string) (memoryEstimate, bool) {
	r, err := check.Memory(path)
	if err != nil {
		return memoryEstimate{}, true
	}
	ctx, seqs := int(d.cfg.Runtime.ContextLength), int(d.cfg.Runtime.MaxConcurrentRequests)
	e := memoryEstimate{bytes: r.Estimate(ctx, seqs)}
	limit := d.opts.MemoryLimitBytes
	if limit <= 0 || e.bytes <= limit {
		return e, true
	}
	kv := e.bytes - r.WeightsBytes
	e.message = fmt.Sprintf("the model needs about %s (weights %s, KV cache %s: %d sequences at %d tokens), more than the %s this container may use "+
		"(its memory limit, or the node's allocatable memory without one); give it more memory, or lower spec.runtime.contextLength or maxConcurrentRequests",
		check.Human(e.bytes), check.Human(r.WeightsBytes), check.Human(kv), max(1, seqs), r.ContextFor(ctx), check.Human(limit))
	return e, false
}
