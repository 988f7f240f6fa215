package localcluster

import (
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCPUBound(t *testing.T) {
	node := func(cpu string) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "edge-01-0001", Labels: map[string]string{}}}
		if cpu != "" {
			n.Labels[ProcessCPULabel] = cpu
		}
		return n
	}
	limit := func(cpu string) *corev1.Container {
		c := &corev1.Container{}
		if cpu != "" {
			c.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}
		}
		return c
	}
	for name, tc := range map[string]struct {
		node      *corev1.Node
		ctr       *corev1.Container
		wantBound int64
		err       string
	}{
		"neither: unbounded":                 {node: node(""), ctr: limit("")},
		"an unknown node: its pod's limit":   {node: nil, ctr: limit("250m"), wantBound: 250},
		"the node's label":                   {node: node("500m"), ctr: limit(""), wantBound: 500},
		"a limit below the node's":           {node: node("2"), ctr: limit("750m"), wantBound: 750},
		"a limit above the node's: the node": {node: node("1"), ctr: limit("3"), wantBound: 1000},
		"a label that is no quantity":        {node: node("fast"), ctr: limit(""), err: "no positive CPU quantity"},
		"a label of zero":                    {node: node("0"), ctr: limit(""), err: "no positive CPU quantity"},
	} {
		t.Run(name, func(t *testing.T) {
			nodeMillis, ctrMillis, err := cpuMillis(tc.node, tc.ctr)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("cpuMillis error = %v, want one that says %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := boundMillis(nodeMillis, ctrMillis); got != tc.wantBound {
				t.Errorf("bound = %dm, want %dm", got, tc.wantBound)
			}
		})
	}
}

func TestGOMAXPROCSAndCgroupFigures(t *testing.T) {
	cpus := runtime.NumCPU()
	for _, tc := range []struct {
		millis        int64
		procs         int
		quota, shares int64
	}{
		{millis: 1, procs: 1, quota: 1000, shares: 2},
		{millis: 500, procs: 1, quota: 50000, shares: 512},
		{millis: 1000, procs: 1, quota: 100000, shares: 1024},
		{millis: 1500, procs: min(2, cpus), quota: 150000, shares: 1536},
		{millis: 64000, procs: cpus, quota: 6400000, shares: 65536},
	} {
		if got := gomaxprocs(tc.millis); got != tc.procs {
			t.Errorf("gomaxprocs(%dm) = %d, want %d", tc.millis, got, tc.procs)
		}
		if got := cpuQuota(tc.millis); got != tc.quota {
			t.Errorf("cpuQuota(%dm) = %d, want %d", tc.millis, got, tc.quota)
		}
		if got := cpuShares(tc.millis); got != tc.shares {
			t.Errorf("cpuShares(%dm) = %d, want %d", tc.millis, got, tc.shares)
		}
	}
}

// TestCPUSecondsCountsWork: the CPU time read from /proc grows with work a
// child does, and is 0 for a process that does not exist.
func TestCPUSecondsCountsWork(t *testing.T) {
	// A child that burns CPU for a while, then exits; its figure is read
	// while it is still alive (a zombie keeps its /proc/<pid>/stat).
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := CPUSeconds(cmd.Process.Pid)
	var last float64
	for range 200 {
		time.Sleep(20 * time.Millisecond)
		if s := CPUSeconds(cmd.Process.Pid); s > last {
			last = s
		}
		if last >= first+0.1 {
			break
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if last < first+0.1 {
		t.Errorf("a child burning CPU for seconds: CPUSeconds went from %.2f to %.2f, want at least 0.1 s more", first, last)
	}
	if s := CPUSeconds(1 << 30); s != 0 {
		t.Errorf("CPUSeconds of a pid that does not exist = %v, want 0", s)
	}
}
