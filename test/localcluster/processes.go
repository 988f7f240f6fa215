package localcluster

// The process kubelet: kwok simulates the nodes, and this file runs the one
// container of selected pods on them as local processes, so that e2e tests can
// run real inferd daemons (one per simulated node) against the real control
// plane.
//
// What a process sees. Its container's image and command are ignored: every
// pod runs opts.Binary with the container's args, then --listen=<pod IP>:<first
// containerPort> and --termination-log=<file>. The pod IP is a loopback address
// 127.2.x.y of its own. The process runs on this machine's file system, so
// volume mounts are emulated by path translation: each volumeMount's mountPath
// maps to a local folder,
//
//	hostPath   Root/nodes/<node>/hostpath/<hostPath.path>   (shared by the node's pods, kept across pods)
//	emptyDir   Root/pods/<uid>/emptydir/<volume>
//	configMap  Root/pods/<uid>/configmap/<volume>            (each key a file, refreshed every second)
//	other      Root/pods/<uid>/volume/<volume>               (an empty folder stands in)
//
// and every env value and arg is rewritten: a mountPath that stands as a path
// of its own anywhere in the string ("/data", "--dir=/data/x",
// `{"cacheDir":"/data"}`, but not "/database" or "/var/data") is replaced by its
// folder, the longest mountPath first. So the process sees the same paths as in
// the pod, rewritten to the emulated mounts; a path it builds itself from
// parts it did not get from env or args (or a path compiled into it) is not
// rewritten. TMPDIR points at the folder of a mount on /tmp, if any.
//
// Offline nodes. While a node carries OfflineAnnotation (SetNodeOffline), the
// process kubelet plays a kubelet cut off from the API server, as a K3s agent
// that lost its network: the processes of the node's pods keep running, and
// nothing passes between them and the API server. It starts no process for a
// pod created for the node meanwhile, stops none of a pod deleted meanwhile,
// restarts none that exits (a real kubelet would, locally; holding it keeps
// the node as the test left it), and writes no status for the node's pods.
// When the annotation goes, it syncs at once: the process of a pod deleted
// meanwhile gets SIGTERM (SIGKILL after the grace period), a pod created
// meanwhile starts, an exited process restarts, and the status it holds is
// written. kwok still hands a pod created for an offline node over (a Stage
// cannot see the node): that pod is Running and not Ready, with no process,
// until the node returns.
//
// What it does not emulate: liveness and startup probes, exec and gRPC
// readiness probes, $(VAR) expansion, envFrom, workingDir (a process runs in
// its pod folder), resource limits, users and security contexts, init and
// further containers, restartPolicy other than Always. Pod deletion stays
// kwok's: its delete stage removes the pod object within a second, while the
// process may still be in its grace period.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

const (
	// processStagePrefix names the kwok Stage that hands the selected pods over.
	processStagePrefix = "slmops-processes-"
	// processGrace is how long a process has between SIGTERM and SIGKILL.
	processGrace = 5 * time.Second
	// probePeriod is how often readiness is probed: faster than a kubelet's
	// seconds, so that tests do not wait.
	probePeriod = 250 * time.Millisecond
	// configMapRefresh is how often configMap volumes are rewritten; a kubelet
	// takes up to a minute, tests should not.
	configMapRefresh = time.Second
	// Restart back-off: a kubelet's 10 s doubling to 5 min, scaled down. It starts
	// over once a process ran for backoffResetAfter.
	restartBackoffMin = 500 * time.Millisecond
	restartBackoffMax = 4 * time.Second
	backoffResetAfter = 10 * time.Second
	// maxTerminationMessage is the kubelet's bound on a termination message;
	// the fallback to the log is bounded by lines and bytes as the kubelet does.
	maxTerminationMessage = 4096
	fallbackLogLines      = 80
	fallbackLogBytes      = 2048
)

// ProcessKubeletOptions says which pods a ProcessKubelet runs and how.
type ProcessKubeletOptions struct {
	// Name distinguishes this harness's kwok Stage ("slmops-processes-<name>").
	Name string
	// Selector picks the pods to run, by label. Its requirements may only be
	// Exists ("key"), Equals ("key=value") or In: they become the kwok Stage's
	// selector.
	Selector labels.Selector
	// Binary is the program run for every selected pod's container; the image
	// and command are ignored.
	Binary string
	// Root holds the per-node folders (Root/nodes/<node>) and the per-pod
	// folders (Root/pods/<pod UID>: log, termination-log, emptyDir and
	// configMap volumes).
	Root string
	// NodeDiskBytes makes the folder of each node it lists a tmpfs of that many
	// bytes: a node with a small disk. Mounting needs root.
	NodeDiskBytes map[string]int64
	// Log receives one line per process start and exit, and per problem
	// starting one; nil discards them.
	Log io.Writer
}

// ProcessKubelet runs the container of selected pods on kwok's simulated nodes
// as local processes, and reports their status as a kubelet would.
type ProcessKubelet struct {
	opts       ProcessKubeletOptions
	stage      string
	dynamic    dynamic.Interface
	clientset  kubernetes.Interface
	configMaps corelisters.ConfigMapLister
	podLister  corelisters.PodLister
	informers  []informers.SharedInformerFactory
	probes     *http.Client
	mounts     []string

	ctx     context.Context
	cancel  context.CancelFunc
	started atomic.Int64
	running sync.WaitGroup

	mu   sync.Mutex
	pods map[types.UID]*podProcess // never removed: a pod UID runs once
	// offline holds the nodes that carry OfflineAnnotation, each with a
	// channel that is closed when the annotation goes.
	offline map[string]chan struct{}

	logMu    sync.Mutex
	stopOnce sync.Once
	stopErr  error
}

// StartProcessKubelet claims the pods that opts.Selector selects from kwok and
// runs their container as a local process, until Stop. Start it before the
// pods are created: a pod that kwok already made Ready is taken over, but it was
// Ready without a process for a moment.
func (c *Cluster) StartProcessKubelet(ctx context.Context, opts ProcessKubeletOptions) (pk *ProcessKubelet, err error) {
	if opts.Name == "" {
		return nil, errors.New("process kubelet: a Name is required")
	}
	exprs, err := stageSelector(opts.Selector)
	if err != nil {
		return nil, fmt.Errorf("process kubelet %s: %w", opts.Name, err)
	}
	if info, err := os.Stat(opts.Binary); err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("process kubelet %s: binary %q is not an executable file (%v)", opts.Name, opts.Binary, err)
	}
	if opts.Root, err = filepath.Abs(opts.Root); err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(c.Config)
	// Its own budget, so that ~200 pods' status writes do not throttle the test's client.
	cfg.QPS, cfg.Burst = 500, 1000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	k := &ProcessKubelet{
		opts:      opts,
		stage:     processStagePrefix + opts.Name,
		dynamic:   dc,
		clientset: cs,
		probes: &http.Client{
			// A kubelet does not verify a probe's certificate, nor keep connections.
			Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}, //nolint:gosec // as a kubelet's probes
			// A redirect is a success, as for a kubelet's probes.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		pods:    map[types.UID]*podProcess{},
		offline: map[string]chan struct{}{},
	}
	k.ctx, k.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			err = errors.Join(err, k.Stop())
			pk = nil
		}
	}()

	for _, sub := range []string{"nodes", "pods"} {
		if err := os.MkdirAll(filepath.Join(opts.Root, sub), 0o755); err != nil {
			return k, err
		}
	}
	for _, node := range slices.Sorted(maps.Keys(opts.NodeDiskBytes)) {
		dir := k.nodeDir(node)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return k, err
		}
		size := opts.NodeDiskBytes[node]
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
			return k, fmt.Errorf("process kubelet %s: mount a %d-byte tmpfs on %s for node %s (NodeDiskBytes needs root): %w", opts.Name, size, dir, node, err)
		}
		k.mounts = append(k.mounts, dir)
	}

	// ConfigMaps come from a watch, not a GET per pod and second: 200 pods
	// would otherwise spend the API server's attention on polling. So do
	// the nodes, for OfflineAnnotation; they change rarely (kwok renews
	// Leases, not the Node objects).
	all := informers.NewSharedInformerFactory(cs, 0)
	k.configMaps = all.Core().V1().ConfigMaps().Lister()
	if _, err := all.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.observeNode(obj) },
		UpdateFunc: func(_, obj any) { k.observeNode(obj) },
		DeleteFunc: func(obj any) { k.forgetNode(obj) },
	}); err != nil {
		return k, err
	}
	selected := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = opts.Selector.String()
	}))
	k.podLister = selected.Core().V1().Pods().Lister()
	k.informers = []informers.SharedInformerFactory{all, selected}
	if _, err := selected.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.observe(obj) },
		UpdateFunc: func(_, obj any) { k.observe(obj) },
		DeleteFunc: func(obj any) { k.forget(obj) },
	}); err != nil {
		return k, err
	}
	syncCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// The ConfigMaps and nodes first: a pod that already runs starts as soon
	// as the pod informer lists it, its configMap volumes must not look empty,
	// and its node must be known to be offline.
	for _, f := range k.informers {
		f.Start(k.ctx.Done())
		for typ, ok := range f.WaitForCacheSync(syncCtx.Done()) {
			if !ok {
				return k, fmt.Errorf("process kubelet %s: the %v cache did not sync", opts.Name, typ)
			}
		}
	}

	// Applied rather than created: a Stage that a killed test left behind is
	// taken over.
	stage := processStage(k.stage, exprs)
	if _, err := dc.Resource(stageGVR).Apply(ctx, k.stage, stage, metav1.ApplyOptions{FieldManager: fieldOwner, Force: true}); err != nil {
		return k, fmt.Errorf("process kubelet %s: apply kwok Stage: %w", opts.Name, err)
	}
	return k, nil
}

// Stop ends every process (SIGTERM, then SIGKILL after 5 s), unmounts the
// nodes' tmpfs folders and deletes the kwok Stage. The pods keep the status
// last reported. Stop may be called more than once.
func (k *ProcessKubelet) Stop() error {
	k.stopOnce.Do(func() {
		k.cancel()
		// observe starts a pod only under mu and while ctx is live: after this,
		// no more start.
		k.mu.Lock()
		k.mu.Unlock() //nolint:staticcheck // an empty critical section, as a fence
		k.running.Wait()
		for _, f := range k.informers {
			f.Shutdown()
		}
		var errs []error
		for _, dir := range k.mounts {
			if err := syscall.Unmount(dir, 0); err != nil {
				// Something still holds a file open there: detach it now, it goes when released.
				if err2 := syscall.Unmount(dir, syscall.MNT_DETACH); err2 != nil {
					errs = append(errs, fmt.Errorf("unmount %s: %w", dir, err))
				}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := k.dynamic.Resource(stageGVR).Delete(ctx, k.stage, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete kwok Stage %s: %w", k.stage, err))
		}
		k.stopErr = errors.Join(errs...)
	})
	return k.stopErr
}

// Started is how many processes were started so far, restarts included.
func (k *ProcessKubelet) Started() int { return int(k.started.Load()) }

// stageSelector is the kwok selector of the Stage that claims the pods sel
// selects: pending, not deleting, with the labels.
func stageSelector(sel labels.Selector) ([]any, error) {
	if sel == nil || sel.Empty() {
		return nil, errors.New("the selector is empty: it would take every pod from kwok")
	}
	reqs, selectable := sel.Requirements()
	if !selectable {
		return nil, fmt.Errorf("selector %q selects nothing", sel)
	}
	exprs := []any{
		map[string]any{"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
		map[string]any{"key": ".status.phase", "operator": "In", "values": []any{"Pending"}},
	}
	for _, r := range reqs {
		// kwok's keys are jq expressions; a label key is a valid JSON string once quoted.
		key := ".metadata.labels[" + strconv.Quote(r.Key()) + "]"
		switch r.Operator() {
		case selection.Exists:
			exprs = append(exprs, map[string]any{"key": key, "operator": "Exists"})
		case selection.Equals, selection.DoubleEquals, selection.In:
			var values []any
			for _, v := range r.Values().List() {
				values = append(values, v)
			}
			exprs = append(exprs, map[string]any{"key": key, "operator": "In", "values": values})
		default:
			return nil, fmt.Errorf("selector %q: %s on %s has no kwok equivalent; use key, key=value or key in (...)", sel, r.Operator(), r.Key())
		}
	}
	return exprs, nil
}

// processStage is the kwok Stage that hands the pods over: it wins over the
// default pod stages (weight 0) and makes a pod Running but not Ready, its
// container waiting, and then no stage matches the pod until it is deleted.
func processStage(name string, exprs []any) *unstructured.Unstructured {
	return podStage(name, exprs, 0, handedOverStatus)
}

// handedOverStatus is a pod's status while the process kubelet starts it.
const handedOverStatus = `{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  type: Ready
  reason: ContainersNotReady
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  type: ContainersReady
  reason: ContainersNotReady
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  started: false
  restartCount: 0
  state:
    waiting:
      reason: ContainerCreating
{{ end }}
{{ with NodeIPsWith .spec.nodeName }}
hostIP: {{ index . 0 | Quote }}
hostIPs:
{{ range . }}
- ip: {{ . | Quote }}
{{ end }}
{{ end }}
phase: Running
startTime: {{ $now | Quote }}
`

func (k *ProcessKubelet) nodeDir(node string) string {
	return filepath.Join(k.opts.Root, "nodes", node)
}

func (k *ProcessKubelet) logf(format string, args ...any) {
	if k.opts.Log == nil {
		return
	}
	k.logMu.Lock()
	defer k.logMu.Unlock()
	fmt.Fprintf(k.opts.Log, "process kubelet %s: "+format+"\n", append([]any{k.opts.Name}, args...)...)
}

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
	for {
		if mounts, configMaps, err = p.prepareVolumes(pod, ctr); err == nil {
			break
		}
		p.reportWaiting(ctx, pod, "ContainerCreating", err.Error())
		if !sleep(ctx, configMapRefresh) {
			return
		}
	}
	if len(configMaps) > 0 {
		helpers.Add(1)
		go func() {
			defer helpers.Done()
			p.refreshConfigMaps(ctx, configMaps)
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
		args = append(args, translate(a, mounts))
	}
	if len(ctr.Ports) > 0 {
		args = append(args, "--listen="+net.JoinHostPort(p.ip, strconv.Itoa(int(ctr.Ports[0].ContainerPort))))
	}
	args = append(args, "--termination-log="+termLog)

	logFile, err := os.OpenFile(filepath.Join(p.dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, 0, err
	}
	defer logFile.Close()
	info, err := logFile.Stat()
	if err != nil {
		return nil, 0, err
	}
	cmd := exec.Command(p.k.opts.Binary, args...)
	cmd.Env, cmd.Dir = env, p.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so that a signal reaches what it starts; killed
	// when the test dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, 0, err
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
	p.reportContainer(ctx, ctr, cmd.Process.Pid, running, probe == nil)
	for {
		select {
		case <-exited:
			return exitCode(cmd.ProcessState)
		case ready := <-readiness:
			p.reportContainer(ctx, ctr, cmd.Process.Pid, running, ready)
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(processGrace):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			}
			return exitCode(cmd.ProcessState)
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

// readinessTarget is where a readiness probe goes.
type readinessTarget struct {
	scheme, path     string // an HTTP GET, or
	tcp              bool   // a TCP connection
	port             int
	header           http.Header
	timeout          time.Duration
	success, failure int
}

func (p *podProcess) readinessTarget(ctr *corev1.Container) (*readinessTarget, error) {
	probe := ctr.ReadinessProbe
	if probe == nil {
		return nil, nil
	}
	t := &readinessTarget{timeout: time.Second, success: 1, failure: 3}
	if probe.TimeoutSeconds > 0 {
		t.timeout = time.Duration(probe.TimeoutSeconds) * time.Second
	}
	if probe.SuccessThreshold > 0 {
		t.success = int(probe.SuccessThreshold)
	}
	if probe.FailureThreshold > 0 {
		t.failure = int(probe.FailureThreshold)
	}
	switch {
	case probe.HTTPGet != nil:
		port, err := containerPort(ctr, probe.HTTPGet.Port)
		if err != nil {
			return nil, err
		}
		t.port, t.scheme, t.path = port, "http", probe.HTTPGet.Path
		if !strings.HasPrefix(t.path, "/") {
			t.path = "/" + t.path
		}
		if probe.HTTPGet.Scheme == corev1.URISchemeHTTPS {
			t.scheme = "https"
		}
		t.header = http.Header{}
		for _, h := range probe.HTTPGet.HTTPHeaders {
			t.header.Add(h.Name, h.Value)
		}
	case probe.TCPSocket != nil:
		port, err := containerPort(ctr, probe.TCPSocket.Port)
		if err != nil {
			return nil, err
		}
		t.port, t.tcp = port, true
	default:
		return nil, errors.New("the process kubelet probes readiness with httpGet or tcpSocket only")
	}
	return t, nil
}

// containerPort resolves a probe's port, a number or a containerPort's name.
func containerPort(ctr *corev1.Container, port intstr.IntOrString) (int, error) {
	if port.Type == intstr.Int {
		return port.IntValue(), nil
	}
	for _, cp := range ctr.Ports {
		if cp.Name == port.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("the readiness probe's port %q names no containerPort", port.StrVal)
}

// probe probes readiness every probePeriod and sends each change, after the
// probe's success or failure threshold.
func (p *podProcess) probe(ctx context.Context, t *readinessTarget, changes chan<- bool) {
	tick := time.NewTicker(probePeriod)
	defer tick.Stop()
	ready, successes, failures := false, 0, 0
	for {
		if p.probeOnce(ctx, t) {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
		}
		if (!ready && successes >= t.success) || (ready && failures >= t.failure) {
			ready = !ready
			select {
			case changes <- ready:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (p *podProcess) probeOnce(ctx context.Context, t *readinessTarget) bool {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	addr := net.JoinHostPort(p.ip, strconv.Itoa(t.port))
	if t.tcp {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return false
		}
		_ = conn.Close()
		return true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.scheme+"://"+addr+t.path, nil)
	if err != nil {
		return false
	}
	for name, values := range t.header {
		req.Header[name] = values
	}
	resp, err := p.k.probes.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

// environment is the process's environment: a PATH, the pod's hostname, and
// the container's env with mount paths translated.
func (p *podProcess) environment(ctx context.Context, pod *corev1.Pod, ctr *corev1.Container, mounts []mount) ([]string, error) {
	if len(ctr.EnvFrom) > 0 {
		return nil, errors.New("the process kubelet does not support envFrom")
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOSTNAME=" + pod.Name, "HOME=" + p.dir}
	if tmp := translate("/tmp", mounts); tmp != "/tmp" {
		env = append(env, "TMPDIR="+tmp)
	}
	for _, e := range ctr.Env {
		value, set, err := p.envValue(ctx, pod, e)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if set {
			// A later duplicate wins, as in a container.
			env = append(env, e.Name+"="+translate(value, mounts))
		}
	}
	return env, nil
}

// envValue resolves one env var; set is false for a missing optional source.
func (p *podProcess) envValue(ctx context.Context, pod *corev1.Pod, e corev1.EnvVar) (value string, set bool, err error) {
	from := e.ValueFrom
	switch {
	case from == nil:
		return e.Value, true, nil
	case from.FieldRef != nil:
		switch from.FieldRef.FieldPath {
		case "spec.nodeName":
			return pod.Spec.NodeName, true, nil
		case "metadata.name":
			return pod.Name, true, nil
		case "metadata.namespace":
			return pod.Namespace, true, nil
		case "metadata.uid":
			return string(pod.UID), true, nil
		case "spec.serviceAccountName":
			return pod.Spec.ServiceAccountName, true, nil
		case "status.podIP":
			return p.ip, true, nil
		case "status.hostIP":
			return pod.Status.HostIP, true, nil
		}
		return "", false, fmt.Errorf("the process kubelet does not resolve fieldRef %s", from.FieldRef.FieldPath)
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		secret, err := p.k.clientset.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && ptr.Deref(ref.Optional, false) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("secret %s: %w", ref.Name, err)
		}
		v, ok := secret.Data[ref.Key]
		if !ok && !ptr.Deref(ref.Optional, false) {
			return "", false, fmt.Errorf("secret %s has no key %s", ref.Name, ref.Key)
		}
		return string(v), ok, nil
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		cm, err := p.k.configMaps.ConfigMaps(pod.Namespace).Get(ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && ptr.Deref(ref.Optional, false) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("configmap %s: %w", ref.Name, err)
		}
		v, ok := cm.Data[ref.Key]
		if !ok && !ptr.Deref(ref.Optional, false) {
			return "", false, fmt.Errorf("configmap %s has no key %s", ref.Name, ref.Key)
		}
		return v, ok, nil
	}
	return "", false, errors.New("the process kubelet resolves fieldRef, secretKeyRef and configMapKeyRef only")
}

// mount is one emulated volume mount: what the container sees at path is in
// the local folder (or file).
type mount struct{ path, local string }

// configMapVolume is a configMap volume and the folder it is written to.
type configMapVolume struct {
	source corev1.ConfigMapVolumeSource
	dir    string
}

// prepareVolumes creates the local folders of the container's volume mounts
// and writes its configMap volumes once.
func (p *podProcess) prepareVolumes(pod *corev1.Pod, ctr *corev1.Container) ([]mount, []configMapVolume, error) {
	volumes := map[string]*corev1.Volume{}
	for i := range pod.Spec.Volumes {
		volumes[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	if err := os.MkdirAll(p.k.nodeDir(p.node), 0o755); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, nil, err
	}
	var mounts []mount
	var configMaps []configMapVolume
	for _, vm := range ctr.VolumeMounts {
		v := volumes[vm.Name]
		if v == nil {
			return nil, nil, fmt.Errorf("volumeMount %s names no volume", vm.Name)
		}
		var local string
		switch {
		case v.HostPath != nil:
			local = filepath.Join(p.k.nodeDir(p.node), "hostpath", filepath.Clean("/"+v.HostPath.Path))
			if t := v.HostPath.Type; t != nil && (*t == corev1.HostPathFile || *t == corev1.HostPathFileOrCreate) {
				if err := touch(local); err != nil {
					return nil, nil, err
				}
			} else if err := os.MkdirAll(local, 0o755); err != nil {
				return nil, nil, err
			}
		case v.EmptyDir != nil:
			local = filepath.Join(p.dir, "emptydir", v.Name)
			if err := os.MkdirAll(local, 0o755); err != nil {
				return nil, nil, err
			}
		case v.ConfigMap != nil:
			local = filepath.Join(p.dir, "configmap", v.Name)
			if !slices.ContainsFunc(configMaps, func(c configMapVolume) bool { return c.dir == local }) {
				cmv := configMapVolume{source: *v.ConfigMap, dir: local}
				if err := p.writeConfigMap(cmv); err != nil {
					return nil, nil, err
				}
				configMaps = append(configMaps, cmv)
			}
		default:
			local = filepath.Join(p.dir, "volume", v.Name)
			if _, err := os.Stat(local); errors.Is(err, fs.ErrNotExist) {
				p.k.logf("%s: volume %s is no hostPath, emptyDir or configMap: an empty folder stands in for it", p, v.Name)
			}
			if err := os.MkdirAll(local, 0o755); err != nil {
				return nil, nil, err
			}
		}
		if vm.SubPath != "" {
			local = filepath.Join(local, vm.SubPath)
			if v.ConfigMap == nil {
				if err := os.MkdirAll(local, 0o755); err != nil {
					return nil, nil, err
				}
			}
		}
		if mp := path.Clean(vm.MountPath); mp != "/" {
			mounts = append(mounts, mount{path: mp, local: local})
		}
	}
	slices.SortStableFunc(mounts, func(a, b mount) int { return len(b.path) - len(a.path) })
	return mounts, configMaps, nil
}

func touch(file string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// refreshConfigMaps rewrites the configMap volumes every configMapRefresh
// until ctx ends. A ConfigMap that went missing keeps its last files, as with
// a kubelet.
func (p *podProcess) refreshConfigMaps(ctx context.Context, volumes []configMapVolume) {
	for sleep(ctx, configMapRefresh) {
		if p.k.nodeOffline(p.node) != nil {
			continue // the node cannot see a change
		}
		for _, v := range volumes {
			if err := p.writeConfigMap(v); err != nil && !apierrors.IsNotFound(err) {
				p.k.logf("%s: refresh configMap volume %s: %v", p, v.source.Name, err)
			}
		}
	}
}

// writeConfigMap writes each key of the volume's ConfigMap (or its items) as a
// file, replacing a changed file atomically, and removes files of keys that
// are gone. A missing optional ConfigMap is an empty folder.
func (p *podProcess) writeConfigMap(v configMapVolume) error {
	optional := ptr.Deref(v.source.Optional, false)
	files := map[string][]byte{}
	cm, err := p.k.configMaps.ConfigMaps(p.namespace).Get(v.source.Name)
	switch {
	case apierrors.IsNotFound(err) && optional:
	case err != nil:
		return fmt.Errorf("configmap %s: %w", v.source.Name, err)
	default:
		value := func(key string) ([]byte, bool) {
			if s, ok := cm.Data[key]; ok {
				return []byte(s), true
			}
			b, ok := cm.BinaryData[key]
			return b, ok
		}
		if len(v.source.Items) == 0 {
			for key := range cm.Data {
				files[key], _ = value(key)
			}
			for key := range cm.BinaryData {
				files[key], _ = value(key)
			}
		}
		for _, item := range v.source.Items {
			b, ok := value(item.Key)
			if !ok {
				if optional {
					continue
				}
				return fmt.Errorf("configmap %s has no key %s", v.source.Name, item.Key)
			}
			files[item.Path] = b
		}
	}
	return writeFiles(v.dir, files)
}

// writeFiles makes dir hold exactly files (relative path to content). A file
// that changes is written to a temporary file and renamed over the old one, so
// that a reader sees the old or the new content, never a part.
func writeFiles(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for rel, content := range files {
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("file %q would leave its volume", rel)
		}
		target := filepath.Join(dir, rel)
		if old, err := os.ReadFile(target); err == nil && string(old) == string(content) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		tmp, err := os.CreateTemp(filepath.Dir(target), ".tmp-")
		if err != nil {
			return err
		}
		_, werr := tmp.Write(content)
		cerr := tmp.Close()
		if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), 0o644), os.Rename(tmp.Name(), target)); err != nil {
			_ = os.Remove(tmp.Name())
			return err
		}
	}
	return filepath.WalkDir(dir, func(file string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, file)
		if err != nil {
			return err
		}
		if _, keep := files[rel]; !keep {
			return os.Remove(file)
		}
		return nil
	})
}

// translate rewrites each mount path that stands as a path of its own in s to
// its local folder, in one pass, so that a local folder is never rewritten
// again. mounts are sorted longest path first.
func translate(s string, mounts []mount) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if m, ok := mountAt(s, i, mounts); ok {
			b.WriteString(m.local)
			i += len(m.path)
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// mountAt is the mount whose path starts at s[i] and ends at a path boundary:
// "/data" in "x=/data/y" and in "file:///data", not in "/database" or "/var/data".
func mountAt(s string, i int, mounts []mount) (mount, bool) {
	if s[i] != '/' || (i > 0 && pathByte(s[i-1]) && !strings.HasSuffix(s[:i], "://")) {
		return mount{}, false
	}
	for _, m := range mounts {
		if !strings.HasPrefix(s[i:], m.path) {
			continue
		}
		if end := i + len(m.path); end == len(s) || s[end] == '/' || !pathByte(s[end]) {
			return m, true
		}
	}
	return mount{}, false
}

// pathByte reports whether c can be part of a file name or path.
func pathByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._-/~+@", c) >= 0
}

// reportWaiting reports the container waiting, not ready.
func (p *podProcess) reportWaiting(ctx context.Context, pod *corev1.Pod, reason, message string) {
	if reason+": "+message == p.waiting {
		return // a retry that fails as before: once is enough
	}
	p.waiting = reason + ": " + message
	p.k.logf("%s on %s: %s", p, p.node, p.waiting)
	ctr := &pod.Spec.Containers[0]
	p.patchContainer(ctx, ctr, "", corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}, false, false)
}

// reportContainer reports the container running, ready or not.
func (p *podProcess) reportContainer(ctx context.Context, ctr *corev1.Container, pid int, state corev1.ContainerState, ready bool) {
	p.waiting = ""
	p.patchContainer(ctx, ctr, processID(pid), state, true, ready)
}

// reportExit reports that the process exited and waits for a restart.
func (p *podProcess) reportExit(ctx context.Context, ctr *corev1.Container, pid int, began time.Time, code int32, logStart int64, backoff time.Duration) {
	reason := "Error"
	if code == 0 {
		reason = "Completed"
	}
	p.restarts++
	p.waiting = ""
	p.lastTerminated = &corev1.ContainerStateTerminated{
		ExitCode: code, Reason: reason, Message: p.terminationMessage(ctr, code, logStart),
		StartedAt: metav1.NewTime(began), FinishedAt: metav1.Now(), ContainerID: processID(pid),
	}
	waiting := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
		Reason:  "CrashLoopBackOff",
		Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", backoff, ctr.Name, p.name, p.namespace, p.uid),
	}}
	p.patchContainer(ctx, ctr, processID(pid), waiting, false, false)
}

// terminationMessage is what the process wrote to its termination log, or
// the end of its log when it failed without one and the container asks for
// that.
func (p *podProcess) terminationMessage(ctr *corev1.Container, code int32, logStart int64) string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "termination-log"))
	if msg := strings.TrimSpace(string(b)); msg != "" || code == 0 || ctr.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		return truncate(msg, maxTerminationMessage)
	}
	f, err := os.Open(filepath.Join(p.dir, "log"))
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(logStart, io.SeekStart); err != nil {
		return ""
	}
	b, _ = io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > fallbackLogLines {
		lines = lines[len(lines)-fallbackLogLines:]
	}
	msg := strings.Join(lines, "\n")
	if len(msg) > fallbackLogBytes {
		msg = msg[len(msg)-fallbackLogBytes:]
	}
	return msg
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func processID(pid int) string {
	if pid == 0 {
		return ""
	}
	return "process://" + strconv.Itoa(pid)
}

// patchContainer reports the container's status and the pod's Ready and
// ContainersReady conditions that follow from it.
//
// kwok may write its Stage's status once more after the harness took over
// (a job it queued for an older version of the pod), which would leave the pod
// ContainerCreating for good: so the status is kept, and written again
// whenever the pod is seen to differ from it (see drifted), as a kubelet's
// status manager does.
func (p *podProcess) patchContainer(ctx context.Context, ctr *corev1.Container, id string, state corev1.ContainerState, started, ready bool) {
	if p.readySince.IsZero() || ready != p.ready {
		p.ready, p.readySince = ready, metav1.Now()
	}
	status := corev1.ContainerStatus{
		Name: ctr.Name, Image: ctr.Image, ContainerID: id,
		State: state, Ready: ready, Started: &started, RestartCount: p.restarts,
	}
	if p.lastTerminated != nil {
		status.LastTerminationState = corev1.ContainerState{Terminated: p.lastTerminated}
	}
	condition := func(t corev1.PodConditionType) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: p.readySince}
		if !ready {
			c.Status, c.Reason = corev1.ConditionFalse, "ContainersNotReady"
			c.Message = fmt.Sprintf("containers with unready status: [%s]", ctr.Name)
		}
		return c
	}
	// A strategic merge patch merges conditions by type (PodScheduled and
	// Initialized stay) and replaces the atomic containerStatuses; it needs no
	// resourceVersion, so it never conflicts.
	data, err := json.Marshal(map[string]any{"status": map[string]any{
		"conditions":        []corev1.PodCondition{condition(corev1.PodReady), condition(corev1.ContainersReady)},
		"containerStatuses": []corev1.ContainerStatus{status},
	}})
	if err != nil {
		p.k.logf("%s: encode status patch: %v", p, err)
		return
	}
	p.reportMu.Lock()
	p.reported, p.desired = &status, data
	p.reportMu.Unlock()
	p.writeStatus(ctx, false)
}

// drifted reports whether the pod's status differs from the one reported.
func (p *podProcess) drifted(pod *corev1.Pod) bool {
	p.reportMu.Lock()
	want := p.reported
	p.reportMu.Unlock()
	if want == nil {
		return false
	}
	if pod.Status.PodIP != p.ipReported() || len(pod.Status.ContainerStatuses) != 1 {
		return true
	}
	got := pod.Status.ContainerStatuses[0]
	kind := func(s corev1.ContainerState) int {
		switch {
		case s.Running != nil:
			return 1
		case s.Terminated != nil:
			return 2
		}
		return 0
	}
	return got.Ready != want.Ready || got.RestartCount != want.RestartCount || kind(got.State) != kind(want.State) ||
		podReadyCondition(pod) != want.Ready
}

func podReadyCondition(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ipReported is the pod IP once it was reported.
func (p *podProcess) ipReported() string {
	p.reportMu.Lock()
	defer p.reportMu.Unlock()
	return p.ipPatched
}

// resyncStatus writes the status again when the pod drifted from it.
func (p *podProcess) resyncStatus(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.resync:
			// The IP too when kwok replaced it, or when it was never written
			// (the node went offline first).
			reported := p.ipReported()
			p.writeStatus(ctx, reported == "" || p.latest.Load().Status.PodIP != reported)
			// A drift seen in a version older than the write is harmless, but
			// must not turn into a busy loop.
			if !sleep(ctx, probePeriod) {
				return
			}
		}
	}
}

// writeStatus writes the pod IP (when ip) and the latest reported status.
//
// Nothing is written while the node is offline: reconnect asks for the write
// when it returns.
func (p *podProcess) writeStatus(ctx context.Context, ip bool) {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	if p.k.nodeOffline(p.node) != nil {
		return
	}
	if ip {
		// A merge patch replaces podIPs, in case kwok gave the pod one before
		// the harness took it over.
		data, _ := json.Marshal(map[string]any{"status": map[string]any{"podIP": p.ip, "podIPs": []any{map[string]any{"ip": p.ip}}}})
		if p.patchStatus(ctx, types.MergePatchType, data) {
			p.reportMu.Lock()
			p.ipPatched = p.ip
			p.reportMu.Unlock()
		}
	}
	p.reportMu.Lock()
	data := p.desired
	p.reportMu.Unlock()
	if data != nil {
		p.patchStatus(ctx, types.StrategicMergePatchType, data)
	}
}

// patchStatus patches the pod's status, retrying what may pass on a retry,
// and reports whether it succeeded.
func (p *podProcess) patchStatus(ctx context.Context, pt types.PatchType, data []byte) bool {
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		_, err := p.k.clientset.CoreV1().Pods(p.namespace).Patch(ctx, p.name, pt, data, metav1.PatchOptions{FieldManager: fieldOwner}, "status")
		if err == nil {
			return true
		}
		if apierrors.IsNotFound(err) || ctx.Err() != nil {
			return false
		}
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || attempt == 5 {
			p.k.logf("%s: patch status: %v", p, err)
			return false
		}
		if !sleep(ctx, delay) {
			return false
		}
		delay *= 2
	}
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
