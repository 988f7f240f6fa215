package kernels

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// A gap in a polling thread's clock checks has two causes that look the
// same from inside: the kernel ran another task on the core (another
// process wants the CPU: polling should give it back), or the hypervisor
// held the virtual CPU back, or an interrupt ran long (steal time: nobody
// on this machine gains from a pause, and the pool loses the hand-over
// polling buys). runQueue tells them apart by asking the kernel how many
// tasks are runnable right now. Those, and the pool's threads that sleep
// for want of work (they would run with the next product), more than the
// machine's CPUs: another task holds a core the pool needs.
//
// Under a CPU quota (a container's limit) a throttled thread leaves the run
// queue, so the count cannot see it; there every gap counts as contention,
// which also keeps polling from spending the quota.
type runQueue struct {
	cpus  int
	quota bool
	read  func() ([]byte, error) // /proc/loadavg

	checked atomic.Int64 // nanotime of the last read
	running atomic.Int64 // what it said; 0: no reading
}

// runQueueRecheck is how long one reading of the run queue answers for:
// gaps come in bursts while a core is taken, and a read costs microseconds.
const runQueueRecheck = int64(time.Millisecond)

func newRunQueue() *runQueue {
	return &runQueue{
		cpus:  runtime.NumCPU(),
		quota: cpuQuota("/proc/self/cgroup", "/sys/fs/cgroup"),
		read:  func() ([]byte, error) { return os.ReadFile("/proc/loadavg") },
	}
}

// contended says whether a gap seen at now, while sleeping of the pool's
// threads slept for want of work, was another task taking the core.
// Without a way to tell (no /proc), it was.
func (q *runQueue) contended(now int64, sleeping int) bool {
	if q == nil || q.quota {
		return true
	}
	running := q.running.Load()
	if last := q.checked.Load(); last == 0 || now-last >= runQueueRecheck {
		running = 0
		if b, err := q.read(); err == nil {
			if n, ok := runnableTasks(b); ok {
				running = int64(n)
			}
		}
		q.running.Store(running)
		q.checked.Store(now)
	}
	return running == 0 || int(running)+sleeping > q.cpus
}

// runnableTasks is the running/total field of /proc/loadavg's text: the
// tasks runnable at the moment of the read, this one included.
func runnableTasks(loadavg []byte) (int, bool) {
	fields := bytes.Fields(loadavg)
	if len(fields) < 4 {
		return 0, false
	}
	running, _, ok := bytes.Cut(fields[3], []byte("/"))
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(string(running))
	return n, err == nil && n > 0
}

// cpuQuota says whether this process runs under a CPU quota: a cgroup v2
// cpu.max other than "max" in its cgroup or an ancestor, or a cgroup v1
// cfs quota. proc is /proc/self/cgroup, root the cgroup mount.
func cpuQuota(proc, root string) bool {
	b, err := os.ReadFile(proc)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			// cgroup v2: the path is relative to the mount, or "/" inside
			// a cgroup namespace, where the mount is the container's own.
			for dir := filepath.Join(root, parts[2]); strings.HasPrefix(dir, root); dir = filepath.Dir(dir) {
				if v, err := os.ReadFile(filepath.Join(dir, "cpu.max")); err == nil {
					if f := strings.Fields(string(v)); len(f) > 0 && f[0] != "max" {
						return true
					}
				}
				if dir == root {
					break // filepath.Dir of "/" is "/" itself
				}
			}
		case slices.Contains(strings.Split(parts[1], ","), "cpu"):
			for _, dir := range []string{filepath.Join(root, parts[1], parts[2]), filepath.Join(root, "cpu")} {
				if v, err := os.ReadFile(filepath.Join(dir, "cpu.cfs_quota_us")); err == nil {
					if q, err := strconv.Atoi(strings.TrimSpace(string(v))); err == nil && q > 0 {
						return true
					}
				}
			}
		}
	}
	return false
}
