package kernels

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestRunnableTasksReadsLoadavg(t *testing.T) {
	for in, want := range map[string]int{
		"0.13 0.04 0.01 1/80 1649\n": 1,
		"3.50 2.04 0.85 4/99 14713":  4,
	} {
		if got, ok := runnableTasks([]byte(in)); !ok || got != want {
			t.Errorf("runnableTasks(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "0.1 0.2 0.3", "0.1 0.2 0.3 x/80 1", "0.1 0.2 0.3 80 1", "0.1 0.2 0.3 0/80 1"} {
		if got, ok := runnableTasks([]byte(in)); ok {
			t.Errorf("runnableTasks(%q) = %d, true; want a refusal", in, got)
		}
	}
}

// TestGovernorTellsStealFromContention: a gap while the runnable tasks and
// the pool's sleeping threads are no more than the CPUs is steal time, and
// polling goes on; with more, polling pauses (a core taken by another
// process shows as one runnable task while a pool thread sleeps); one
// reading answers for a millisecond; without a reading, or under a CPU
// quota, a gap is contention.
func TestGovernorTellsStealFromContention(t *testing.T) {
	loadavg, reads := "0.50 0.40 0.30 2/100 123", 0
	rq := &runQueue{cpus: 2, read: func() ([]byte, error) { reads++; return []byte(loadavg), nil }}
	g := &governor{rq: rq}
	pauses0, stolen0 := AdaptiveGaps()
	now := int64(1e9)
	// Both pool threads run (or one runs and one poller is this thread).
	if g.gap(now, 0) {
		t.Fatal("a gap with 2 runnable tasks on 2 CPUs, no pool thread asleep, paused polling")
	}
	if !g.polling(now) {
		t.Fatal("after steal time the governor does not poll")
	}
	// The same reading, now with a pool thread asleep: the second runnable
	// task is not the pool's, and the sleeper would need its core.
	if !g.gap(now+1, 1) {
		t.Fatal("a gap with 2 runnable tasks and a sleeping pool thread on 2 CPUs did not pause polling")
	}
	if g.polling(now + 1) {
		t.Fatal("the governor polls after a contended gap")
	}
	loadavg = "0.50 0.40 0.30 1/100 123"
	if !g.gap(now+runQueueRecheck-1, 1) {
		t.Fatal("the run queue was read again within a millisecond")
	}
	if g.gap(now+runQueueRecheck, 1) {
		t.Fatal("a gap with this thread alone runnable and one asleep on 2 CPUs paused polling")
	}
	pauses, stolen := AdaptiveGaps()
	if pauses, stolen := pauses-pauses0, stolen-stolen0; pauses != 2 || stolen != 2 || reads != 2 {
		t.Fatalf("pauses %d, stolen %d, reads %d; want 2, 2, 2", pauses, stolen, reads)
	}

	failing := &governor{rq: &runQueue{cpus: 2, read: func() ([]byte, error) { return nil, errors.New("no /proc") }}}
	if !failing.gap(now, 0) {
		t.Fatal("without a reading of the run queue a gap did not pause polling")
	}
	quota := &governor{rq: &runQueue{cpus: 64, quota: true, read: func() ([]byte, error) { return []byte(loadavg), nil }}}
	if !quota.gap(now, 0) {
		t.Fatal("under a CPU quota a gap did not pause polling")
	}
	if !(&governor{}).gap(now, 0) {
		t.Fatal("a governor without a run queue did not pause polling")
	}
}

func TestCPUQuotaReadsTheCgroups(t *testing.T) {
	write := func(t *testing.T, path, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name, cgroup string
		files        map[string]string
		want         bool
	}{
		{"v2 without a limit", "0::/kubepods/pod1/c1\n", map[string]string{
			"kubepods/pod1/c1/cpu.max": "max 100000\n", "kubepods/pod1/cpu.max": "max 100000\n"}, false},
		{"v2 limit on the pod", "0::/kubepods/pod1/c1\n", map[string]string{
			"kubepods/pod1/c1/cpu.max": "max 100000\n", "kubepods/pod1/cpu.max": "50000 100000\n"}, true},
		{"v2 in a cgroup namespace", "0::/\n", map[string]string{"cpu.max": "200000 100000\n"}, true},
		{"v1 without a quota", "4:cpu,cpuacct:/kubepods/pod1\n", map[string]string{
			"cpu,cpuacct/kubepods/pod1/cpu.cfs_quota_us": "-1\n"}, false},
		{"v1 quota", "4:cpu,cpuacct:/kubepods/pod1\n", map[string]string{
			"cpu,cpuacct/kubepods/pod1/cpu.cfs_quota_us": "50000\n"}, true},
		{"no cpu controller files", "0::/user.slice\n", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "cgroup")
			write(t, filepath.Join(dir, "self-cgroup"), c.cgroup)
			if err := os.MkdirAll(root, 0o755); err != nil {
				t.Fatal(err)
			}
			for p, text := range c.files {
				write(t, filepath.Join(root, p), text)
			}
			if got := cpuQuota(filepath.Join(dir, "self-cgroup"), root); got != c.want {
				t.Fatalf("cpuQuota = %v, want %v", got, c.want)
			}
		})
	}
	if cpuQuota(filepath.Join(t.TempDir(), "missing"), "/sys/fs/cgroup") {
		t.Fatal("without /proc/self/cgroup, a quota was found")
	}
}
