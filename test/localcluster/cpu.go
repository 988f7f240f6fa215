package localcluster

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// cfsPeriod is the CFS period of the quotas, the kernel's and the kubelet's
// default (100 ms).
const cfsPeriod = 100000

// cpuMillis is the CPU bound of a node (its ProcessCPULabel) and of a
// container (its CPU limit), in millicores, 0 for none.
func cpuMillis(node *corev1.Node, ctr *corev1.Container) (nodeMillis, ctrMillis int64, err error) {
	if node != nil {
		if v, ok := node.Labels[ProcessCPULabel]; ok {
			q, err := resource.ParseQuantity(v)
			if err != nil || q.MilliValue() <= 0 {
				return 0, 0, fmt.Errorf("node %s: label %s=%q is no positive CPU quantity", node.Name, ProcessCPULabel, v)
			}
			nodeMillis = q.MilliValue()
		}
	}
	if q, ok := ctr.Resources.Limits[corev1.ResourceCPU]; ok && q.MilliValue() > 0 {
		ctrMillis = q.MilliValue()
	}
	return nodeMillis, ctrMillis, nil
}

// boundMillis is the CPU a process may use: the smaller of the bounds that
// are set, 0 when none is.
func boundMillis(nodeMillis, ctrMillis int64) int64 {
	if nodeMillis == 0 || (ctrMillis > 0 && ctrMillis < nodeMillis) {
		return ctrMillis
	}
	return nodeMillis
}

// gomaxprocs is the GOMAXPROCS of a process bounded to millis: the bound
// rounded up, as Go's runtime rounds a cgroup's quota, and no more than this
// machine's CPUs.
func gomaxprocs(millis int64) int {
	return max(1, min(int((millis+999)/1000), runtime.NumCPU()))
}

// cpuShares is the cgroup v1 cpu.shares of millis, as a kubelet converts a
// CPU request: 1024 per core, at least 2.
func cpuShares(millis int64) int64 { return max(2, millis*1024/1000) }

// cpuQuota is the CFS quota of millis per cfsPeriod, at least the kernel's
// minimum of 1 ms.
func cpuQuota(millis int64) int64 { return max(1000, millis*cfsPeriod/1000) }

// cpuCgroups is this process kubelet's folder in the cgroup v1 cpu
// hierarchy: <root>/<node> with the node's bound, <root>/<node>/<pod UID>
// with the pod's.
type cpuCgroups struct{ root string }

// newCPUCgroups makes the kubelet's folder in the cgroup v1 cpu hierarchy,
// under the cgroup this process is in. It fails where there is none or it is
// not writable (cgroup v2 alone is not supported, see processes.go).
func newCPUCgroups(name string) (*cpuCgroups, error) {
	mountPoint, mountRoot, err := cpuHierarchy()
	if err != nil {
		return nil, err
	}
	own, err := ownCPUCgroup()
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(mountRoot, own)
	if err != nil || !filepath.IsLocal(rel) && rel != "." {
		return nil, fmt.Errorf("this process's cpu cgroup %s is outside the mount of %s", own, mountRoot)
	}
	root := filepath.Join(mountPoint, rel, fmt.Sprintf("slmops-processes-%s-%d", name, os.Getpid()))
	if err := os.Mkdir(root, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("make cpu cgroup %s: %w", root, err)
	}
	// The simulated nodes' CPU is their own, as on a real edge box: the
	// kubelet's folder gets the largest share, so that its pods get their
	// bounds (the quotas, which cap them) before this machine's other
	// processes. With the default share, a test or build running beside
	// them (the parity test takes both cores) cut 24 pods of 100m and 50m
	// to a sixth of their bounds, and self-tests measured that, not the
	// bound.
	if err := os.WriteFile(filepath.Join(root, "cpu.shares"), []byte(strconv.Itoa(maxCPUShares)), 0o644); err != nil {
		return nil, fmt.Errorf("set cpu.shares of %s: %w", root, err)
	}
	return &cpuCgroups{root: root}, nil
}

// maxCPUShares is cgroup v1's largest cpu.shares.
const maxCPUShares = 262144

// cpuHierarchy finds where the cgroup v1 cpu controller is mounted, and the
// path in the hierarchy that the mount shows.
func cpuHierarchy() (mountPoint, mountRoot string, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu"
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, super := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(super) < 3 || super[0] != "cgroup" {
			continue
		}
		if slices.Contains(strings.Split(super[2], ","), "cpu") {
			return fields[4], fields[3], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", "", err
	}
	return "", "", errors.New("no cgroup v1 cpu controller is mounted")
}

// ownCPUCgroup is the path of this process's cgroup in the cpu hierarchy.
func ownCPUCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		// "1:cpu:/" or "4:cpu,cpuacct:/a/b"
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && slices.Contains(strings.Split(parts[1], ","), "cpu") {
			return parts[2], nil
		}
	}
	return "", errors.New("this process is in no cgroup v1 cpu hierarchy")
}

// podGroup makes the cgroup of one pod's process: in the node's cgroup,
// which holds nodeMillis for all its pods, with podMillis of its own (0:
// none of its own).
func (c *cpuCgroups) podGroup(node string, nodeMillis int64, uid string, podMillis int64) (string, error) {
	nodeDir := filepath.Join(c.root, node)
	if err := os.Mkdir(nodeDir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	if nodeMillis > 0 {
		if err := limitCPU(nodeDir, nodeMillis); err != nil {
			return "", fmt.Errorf("node %s: %w", node, err)
		}
	}
	podDir := filepath.Join(nodeDir, uid)
	if err := os.Mkdir(podDir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	if podMillis > 0 {
		if err := limitCPU(podDir, podMillis); err != nil {
			return "", fmt.Errorf("pod %s: %w", uid, err)
		}
	}
	return podDir, nil
}

// limitCPU gives a cgroup a CFS quota and a share of millis.
func limitCPU(dir string, millis int64) error {
	for file, value := range map[string]int64{"cpu.cfs_period_us": cfsPeriod, "cpu.cfs_quota_us": cpuQuota(millis), "cpu.shares": cpuShares(millis)} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(strconv.FormatInt(value, 10)), 0o644); err != nil {
			return fmt.Errorf("set %s of %s: %w", file, dir, err)
		}
	}
	return nil
}

// join moves a process into a cgroup. The process ran unbounded for the
// moment between its start and this write (cgroup v1 has no way to start a
// process in a cgroup); GOMAXPROCS, set in its environment, holds from its
// start.
func join(dir string, pid int) error {
	return os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

// remove removes the kubelet's cgroups, the pods' first. A cgroup that still
// holds a process (one that outlived its pod's process group) stays.
func (c *cpuCgroups) remove() error {
	var dirs []string
	err := filepath.WalkDir(c.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var errs []error
	for _, dir := range slices.Backward(dirs) {
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
