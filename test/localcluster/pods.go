package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// observe starts a pod once kwok has handed it over (Running, bound, not
// deleting), and passes later versions to its process. A pod of an offline
// node is left alone: reconnect passes on what changed meanwhile.
func (k *ProcessKubelet) observe(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if p := k.pods[pod.UID]; p != nil {
		if k.offline[p.node] != nil {
			return
		}
		p.latest.Store(pod)
		switch {
		case pod.DeletionTimestamp != nil:
			p.terminate()
		case p.drifted(pod):
			p.requestResync()
		}
		return
	}
	if k.ctx.Err() != nil || pod.Spec.NodeName == "" || pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning {
		return
	}
	if len(k.nodes) > 0 && !k.nodes[pod.Spec.NodeName] {
		return // kwok's
	}
	if k.offline[pod.Spec.NodeName] != nil {
		return // started when its node returns
	}
	p := &podProcess{k: k, uid: pod.UID, namespace: pod.Namespace, name: pod.Name, node: pod.Spec.NodeName,
		dir: filepath.Join(k.opts.Root, "pods", string(pod.UID)), done: make(chan struct{}), resync: make(chan struct{}, 1)}
	p.latest.Store(pod)
	k.pods[pod.UID] = p
	k.running.Add(1)
	go func() {
		defer k.running.Done()
		p.run(k.ctx)
	}()
}

// forget ends the process of a pod that is gone.
func (k *ProcessKubelet) forget(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if p := k.pods[pod.UID]; p != nil && k.offline[p.node] == nil {
		p.terminate()
	}
}

// observeNode notes a node going offline or coming back, and syncs the pods
// of one that came back.
func (k *ProcessKubelet) observeNode(obj any) {
	node, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	_, offline := node.Annotations[OfflineAnnotation]
	k.mu.Lock()
	back, was := k.offline[node.Name]
	switch {
	case offline && !was:
		k.offline[node.Name] = make(chan struct{})
		k.mu.Unlock()
		k.logf("node %s is offline: its processes keep running, nothing reaches them", node.Name)
	case !offline && was:
		delete(k.offline, node.Name)
		close(back)
		k.mu.Unlock()
		k.logf("node %s is back: syncing its pods", node.Name)
		k.reconnect(node.Name)
	default:
		k.mu.Unlock()
	}
}

// forgetNode ends the offline state of a node that was deleted, so that its
// pods (which the pod garbage collector deletes) do not wait for it.
func (k *ProcessKubelet) forgetNode(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	node, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	node = node.DeepCopy()
	delete(node.Annotations, OfflineAnnotation)
	k.observeNode(node)
}

// reconnect passes what the API server did while the node was offline to its
// pods, as a kubelet does when it sees the API server again: a pod that was
// deleted (or is being deleted) is stopped, a pod created for the node starts,
// and every other pod writes the status it holds.
func (k *ProcessKubelet) reconnect(node string) {
	k.mu.Lock()
	for _, p := range k.pods {
		if p.node != node {
			continue
		}
		pod, err := k.podLister.Pods(p.namespace).Get(p.name)
		if err != nil || pod.UID != p.uid || pod.DeletionTimestamp != nil {
			p.terminate()
			continue
		}
		p.latest.Store(pod)
		p.requestResync()
	}
	k.mu.Unlock()
	pods, err := k.podLister.List(labels.Everything())
	if err != nil {
		k.logf("node %s: list its pods: %v", node, err)
		return
	}
	for _, pod := range pods {
		if pod.Spec.NodeName == node {
			k.observe(pod)
		}
	}
}

// nodeOffline is the channel that is closed when node returns, or nil when
// it is not offline.
func (k *ProcessKubelet) nodeOffline(node string) chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.offline[node]
}

// podProcess runs the container of one pod, restarting it until the pod goes.
type podProcess struct {
	k                     *ProcessKubelet
	uid                   types.UID
	namespace, name, node string
	dir                   string
	latest                atomic.Pointer[corev1.Pod]
	done                  chan struct{}
	doneOnce              sync.Once
	resync                chan struct{} // the pod's status is not what was reported

	// writeMu serializes status writes, so that the last one carries the
	// latest status; reportMu guards what was reported.
	writeMu   sync.Mutex
	reportMu  sync.Mutex
	reported  *corev1.ContainerStatus
	desired   []byte // the strategic merge patch of reported
	ipPatched string

	// Owned by run's goroutine.
	waiting        string // the last waiting reason and message reported
	ip             string
	restarts       int32
	lastTerminated *corev1.ContainerStateTerminated
	ready          bool
	readySince     metav1.Time
	cpuMillis      int64  // the process's CPU bound, 0 for none
	cgroup         string // the process's cpu cgroup, "" for none
}

func (p *podProcess) terminate() { p.doneOnce.Do(func() { close(p.done) }) }

// requestResync asks resyncStatus to write the status again.
func (p *podProcess) requestResync() {
	select {
	case p.resync <- struct{}{}:
	default: // one is pending
	}
}

// online waits while the pod's node is offline, and reports whether ctx is
// still live.
func (p *podProcess) online(ctx context.Context) bool {
	for back := p.k.nodeOffline(p.node); back != nil; back = p.k.nodeOffline(p.node) {
		select {
		case <-back:
		case <-ctx.Done():
			return false
		}
	}
	return ctx.Err() == nil
}

func (p *podProcess) String() string { return p.namespace + "/" + p.name }

// errConfig is a pod the process kubelet cannot run as it is.
type errConfig struct{ error }

func (p *podProcess) run(parent context.Context) {
	// The pod's other goroutines (status resync, configMap refresh) end with
	// ctx, which is canceled first.
	var helpers sync.WaitGroup
	defer helpers.Wait()
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()

	// A pod seen a moment before its node went offline starts when it
	// returns.
	if !p.online(ctx) {
		return
	}
	pod := p.latest.Load()
	if len(pod.Spec.Containers) != 1 {
		p.reportWaiting(ctx, pod, "CreateContainerConfigError", "the process kubelet runs pods of one container")
		return
	}
	ctr := &pod.Spec.Containers[0]
	probe, err := p.readinessTarget(ctr)
	if err != nil {
		p.reportWaiting(ctx, pod, "CreateContainerConfigError", err.Error())
		return
	}
	var port int32
	if len(ctr.Ports) > 0 {
		port = ctr.Ports[0].ContainerPort
	}
	if p.ip, err = allocateLoopbackIP(port); err != nil {
		p.reportWaiting(ctx, pod, "CreateContainerError", err.Error())
		return
	}
	p.writeStatus(ctx, true)
	helpers.Add(1)
	go func() {
		defer helpers.Done()
		p.resyncStatus(ctx)
	}()

	// Volumes live as long as the pod, across restarts.
	var mounts []mount
	var configMaps []configMapVolume
	var projected []*projectedVolume
	for {
		if mounts, configMaps, projected, err = p.prepareVolumes(ctx, pod, ctr); err == nil {
			break
		}
		p.reportWaiting(ctx, pod, "ContainerCreating", err.Error())
		if !sleep(ctx, configMapRefresh) {
			return
		}
	}
	if !p.boundCPU(ctx, pod, ctr) {
		return
	}
	if p.cgroup != "" {
		defer func() {
			if err := os.Remove(p.cgroup); err != nil {
				p.k.logf("%s: remove cpu cgroup: %v", p, err)
			}
		}()
	}
	if len(configMaps) > 0 || len(projected) > 0 {
		helpers.Add(1)
		go func() {
			defer helpers.Done()
			p.refreshVolumes(ctx, configMaps, projected)
		}()
	}

	backoff := restartBackoffMin
	for p.online(ctx) {
		cmd, logStart, err := p.start(ctx, ctr, mounts)
		if err != nil {
			reason := "CreateContainerError"
			if errors.As(err, new(errConfig)) {
				reason = "CreateContainerConfigError"
			}
			p.reportWaiting(ctx, p.latest.Load(), reason, err.Error())
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, restartBackoffMax)
			continue
		}
		began := time.Now()
		exit := p.supervise(ctx, cmd, ctr, probe)
		ran := time.Since(began)
		p.k.logf("%s on %s (pid %d) exited with code %d after %s", p, p.node, cmd.Process.Pid, exit, ran.Round(time.Millisecond))
		if ctx.Err() != nil {
			return
		}
		if ran >= backoffResetAfter {
			backoff = restartBackoffMin
		}
		p.reportExit(ctx, ctr, cmd.Process.Pid, began, exit, logStart, backoff)
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, restartBackoffMax)
	}
}

// boundCPU works out the CPU bound of the pod's process and makes its cpu
// cgroup, and reports whether ctx is still live. The node's bound is read
// once, when the pod starts, as a kubelet reads its capacity.
func (p *podProcess) boundCPU(ctx context.Context, pod *corev1.Pod, ctr *corev1.Container) bool {
	for {
		node, _ := p.k.nodeLister.Get(p.node)
		nodeMillis, ctrMillis, err := cpuMillis(node, ctr)
		if err == nil {
			p.cpuMillis = boundMillis(nodeMillis, ctrMillis)
			if p.k.cpu == nil || p.cpuMillis == 0 {
				return true
			}
			if p.cgroup, err = p.k.cpu.podGroup(p.node, nodeMillis, string(p.uid), p.cpuMillis); err == nil {
				return true
			}
		}
		p.reportWaiting(ctx, pod, "CreateContainerConfigError", err.Error())
		if !sleep(ctx, configMapRefresh) {
			return false
		}
	}
}

// start starts the container's process once.
func (p *podProcess) start(ctx context.Context, ctr *corev1.Container, mounts []mount) (*exec.Cmd, int64, error) {
	pod := p.latest.Load()
	env, err := p.environment(ctx, pod, ctr, mounts)
	if err != nil {
		return nil, 0, errConfig{err}
	}
	termLog := filepath.Join(p.dir, "termination-log")
	if err := os.Remove(termLog); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, 0, err
	}
	args := make([]string, 0, len(ctr.Args)+2)
	for _, a := range ctr.Args {
		args = append(args, onPodIP(translate(a, mounts), p.ip))
	}
	if !p.k.opts.ArgsAsGiven {
		if len(ctr.Ports) > 0 {
			args = append(args, "--listen="+net.JoinHostPort(p.ip, strconv.Itoa(int(ctr.Ports[0].ContainerPort))))
		}
		args = append(args, "--termination-log="+termLog)
	}
	var user *syscall.Credential
	if p.k.opts.RunAsUser {
		if user, err = runAs(pod, ctr); err != nil {
			return nil, 0, errConfig{err}
		}
	}

	logFile, err := os.OpenFile(filepath.Join(p.dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, 0, err
	}
	defer logFile.Close()
	info, err := logFile.Stat()
	if err != nil {
		return nil, 0, err
	}
	if p.cpuMillis > 0 {
		// First, so that the container's own GOMAXPROCS wins.
		env = append([]string{"GOMAXPROCS=" + strconv.Itoa(gomaxprocs(p.cpuMillis))}, env...)
	}
	cmd := exec.Command(p.k.opts.Binary, args...)
	if user != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: user}
	}
	if binds := secretMounts(mounts); len(binds) > 0 {
		// Service account tokens also at the path compiled into clients.
		if sh, err := privateMounts(); err == nil {
			upper, work, err := overlayFolders(p.dir)
			if err != nil {
				return nil, 0, err
			}
			cmd = privateMountCommand(sh, upper, work, binds, user, p.k.opts.Binary, args...)
		} else {
			p.k.privateMountsOnce.Do(func() {
				p.k.logf("service account tokens only at translated paths, not at /var/run/secrets: %v", err)
			})
		}
	}
	cmd.Env, cmd.Dir = env, p.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so that a signal reaches what it starts; killed
	// when the test dies. (sh execs the binary: the pid stays.)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid, cmd.SysProcAttr.Pdeathsig = true, syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	if p.cgroup != "" {
		if err := join(p.cgroup, cmd.Process.Pid); err != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			return nil, 0, fmt.Errorf("move pid %d into cpu cgroup %s: %w", cmd.Process.Pid, p.cgroup, err)
		}
	}
	p.k.started.Add(1)
	p.k.logf("%s on %s started as pid %d on %s (restarts %d)", p, p.node, cmd.Process.Pid, p.ip, p.restarts)
	return cmd, info.Size(), nil
}

// supervise reports the process running and its readiness until it exits or
// the pod goes, and returns its exit code.
func (p *podProcess) supervise(ctx context.Context, cmd *exec.Cmd, ctr *corev1.Container, probe *readinessTarget) int32 {
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	startedAt := metav1.Now()
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: startedAt}}
	probeCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	readiness := make(chan bool)
	if probe != nil {
		go p.probe(probeCtx, probe, readiness)
	}
	dead := make(chan int, 1)
	if live, err := p.livenessTarget(ctr); err != nil {
		p.k.logf("%s: liveness probe not run: %v", p, err)
	} else if live != nil {
		go p.live(probeCtx, live, dead)
	}
	p.reportContainer(ctx, ctr, cmd.Process.Pid, running, probe == nil)
	stop := func() int32 {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(processGrace):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		return exitCode(cmd.ProcessState)
	}
	for {
		select {
		case <-exited:
			return exitCode(cmd.ProcessState)
		case ready := <-readiness:
			p.reportContainer(ctx, ctr, cmd.Process.Pid, running, ready)
		case failures := <-dead:
			p.k.logf("%s on %s (pid %d) failed its liveness probe %d times: restarting it", p, p.node, cmd.Process.Pid, failures)
			return stop()
		case <-ctx.Done():
			return stop()
		}
	}
}

// exitCode is the process's exit code, or 128 plus the signal that killed it,
// as a container runtime reports it.
func exitCode(state *os.ProcessState) int32 {
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int32(ws.Signal())
	}
	return int32(state.ExitCode())
}

// sleep waits d and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// hostless is an address that names only a port (":8081") or every address
// ("0.0.0.0:8081", "[::]:8081"), alone or as a flag's value.
var hostless = regexp.MustCompile(`^(.*=)?(0\.0\.0\.0|\[::\])?:([0-9]+)$`)

// onPodIP rewrites an address without a host in arg to the pod IP's, as the
// pod's own network namespace would make it.
func onPodIP(arg, ip string) string {
	m := hostless.FindStringSubmatch(arg)
	if m == nil {
		return arg
	}
	return m[1] + net.JoinHostPort(ip, m[3])
}

// runAs is the user and group the container runs as under its
// securityContext (or the pod's), nil for the process kubelet's own; an
// error when runAsNonRoot cannot hold, as a kubelet refuses such a
// container.
func runAs(pod *corev1.Pod, ctr *corev1.Container) (*syscall.Credential, error) {
	var uid, gid *int64
	var nonRoot *bool
	if sc := pod.Spec.SecurityContext; sc != nil {
		uid, gid, nonRoot = sc.RunAsUser, sc.RunAsGroup, sc.RunAsNonRoot
	}
	if sc := ctr.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
		if sc.RunAsNonRoot != nil {
			nonRoot = sc.RunAsNonRoot
		}
	}
	if nonRoot != nil && *nonRoot && (uid == nil || *uid == 0) {
		// The image's user is unknown here: as for an image that runs as root.
		return nil, errors.New("container has runAsNonRoot and no non-root runAsUser: it would run as root")
	}
	if uid == nil {
		return nil, nil
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("runAsUser %d needs the process kubelet to run as root", *uid)
	}
	cred := &syscall.Credential{Uid: uint32(*uid), Gid: uint32(*uid), NoSetGroups: false}
	if gid != nil {
		cred.Gid = uint32(*gid)
	}
	return cred, nil
}

// loopback hands out pod IPs 127.2.x.y, never the same twice in a test
// binary. It starts at a random x so that test binaries that run at the same
// time rarely meet, and skips an address whose port is taken.
var loopback = struct {
	sync.Mutex
	next uint32
}{next: rand.Uint32N(256) << 8}

func allocateLoopbackIP(port int32) (string, error) {
	loopback.Lock()
	defer loopback.Unlock()
	for range 1 << 10 {
		n := loopback.next
		loopback.next = (loopback.next + 1) % (1 << 16)
		if y := n & 0xff; y == 0 || y == 255 {
			continue
		}
		ip := fmt.Sprintf("127.2.%d.%d", n>>8, n&0xff)
		if port == 0 {
			return ip, nil
		}
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(int(port))))
		if err != nil {
			continue
		}
		_ = l.Close()
		return ip, nil
	}
	return "", errors.New("no free loopback address in 127.2.0.0/16")
}
