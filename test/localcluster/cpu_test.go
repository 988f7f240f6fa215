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

// TestStatFieldsAndCPUSeconds: a stat line is split after its command name
// even when the name holds spaces and parentheses, utime and stime are
// summed in ticks of 1/100 s, and a short or garbled line reads as 0.
func TestStatFieldsAndCPUSeconds(t *testing.T) {
	line := "4242 (kube (api) server) S 1 4242 4242 0 -1 4194560 9001 0 12 0 1234 567 0 0 20 0 9 0 100 1000 200 18446744073709551615\n"
	f := statFields(line)
	if len(f) == 0 || f[0] != "S" {
		t.Fatalf("statFields(%q) = %q, want the state S first", line, f)
	}
	if got := statCPUSeconds(f); got != 18.01 {
		t.Errorf("CPU seconds of utime 1234 and stime 567 ticks = %v, want 18.01", got)
	}
	for _, bad := range []string{"", "4242 no parenthesis", "4242 (x) S 1 2", "4242 (x) S 1 4242 4242 0 -1 4194560 9001 0 12 0 many 567 0"} {
		if got := statCPUSeconds(statFields(bad)); got != 0 {
			t.Errorf("CPU seconds of %q = %v, want 0", bad, got)
		}
	}
	if s := CPUSeconds(1 << 30); s != 0 {
		t.Errorf("CPUSeconds of a pid that does not exist = %v, want 0", s)
	}
}

// TestCPUSecondsCountsWork: the CPU time read from /proc grows while a
// child burns CPU (it runs until it is killed, so how fast the machine is
// does not matter).
func TestCPUSecondsCountsWork(t *testing.T) {
	cmd := exec.Command("sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	first := CPUSeconds(cmd.Process.Pid)
	deadline := time.Now().Add(time.Minute)
	for CPUSeconds(cmd.Process.Pid) < first+0.05 {
		if time.Now().After(deadline) {
			t.Fatalf("a child burning CPU for a minute: CPUSeconds stayed at %.2f (from %.2f)", CPUSeconds(cmd.Process.Pid), first)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
