package localcluster

// The process kubelet: kwok simulates the nodes, and the process kubelet runs
// the one container of selected pods on them as local processes, so that e2e
// tests can run real inferd daemons (one per simulated node) against the real
// control plane. Its files, by concern:
//
//	processes.go  options, timings, start and stop, the kwok Stage that hands pods over
//	processnodes.go  choosing the nodes whose pods run as processes, their labels
//	cpu.go        the CPU bound of a process: GOMAXPROCS and a cgroup v1 CFS quota
//	pods.go       the pod and node watches, offline nodes, a pod's run loop:
//	              start, supervise, restart with back-off; loopback pod IPs
//	volumes.go    emulated volume mounts, configMap files, path translation
//	projected.go  projected volumes: bound service account tokens, ca.crt, namespace
//	secrets.go    a mount namespace that shows them at /var/run/secrets as well
//	env.go        the process's environment (env, fieldRef, secret and configMap keys)
//	probes.go     readiness probes (httpGet, tcpSocket)
//	status.go     container status, termination messages, Ready conditions,
//	              status writes and their resync
//
// Which pods. Those that the Selector picks by label and, when Nodes is set,
// that are bound to one of those nodes: so `make cluster-up REAL_NODES=4`
// and the e2e helpers run the serving inferd pods
// (app.kubernetes.io/component=model-server) of a few chosen nodes as real
// processes, and every other pod stays kwok-simulated. The kwok Stage that
// hands them over matches .spec.nodeName against the named nodes (a Stage
// sees the pod alone, not its node's labels), so the set is fixed when the
// kubelet starts; ChooseProcessNodes picks it spread over architectures and
// sites and labels the nodes ProcessNodeLabel for people and nodeSelectors.
//
// CPU. Every node of the fleet claims 4 cores, and this machine may have 2,
// so a process is bounded by its node's ProcessCPULabel ("1", "500m") and by
// its container's CPU limit, the smaller of the two. The bound sets
// GOMAXPROCS (rounded up, as Go rounds a cgroup quota; inferd's compute
// threads default to GOMAXPROCS) and, where the cgroup v1 cpu controller is
// mounted and writable (it is on the development machines: cgroup v2 there
// has no controllers delegated), a CFS quota and cpu.shares per node and per
// pod: the quota caps a class when the machine is idle, the shares keep
// the classes' ratio when it is busy. Without a writable cgroup v1 cpu
// hierarchy (cgroup v2 alone is not done) GOMAXPROCS alone bounds the
// process, and the log says so.
//
// What a process sees. Its container's image and command are ignored: every
// pod runs opts.Binary with the container's args, then (unless ArgsAsGiven)
// --listen=<pod IP>:<first containerPort> and --termination-log=<file>. The pod IP is a loopback address
// 127.2.x.y of its own. The process runs on this machine's file system, so
// volume mounts are emulated by path translation: each volumeMount's mountPath
// maps to a local folder,
//
//	hostPath   Root/nodes/<node>/hostpath/<hostPath.path>   (shared by the node's pods, kept across pods)
//	emptyDir   Root/pods/<uid>/emptydir/<volume>
//	configMap  Root/pods/<uid>/configmap/<volume>            (each key a file, refreshed every second)
//	projected  Root/pods/<uid>/projected/<volume>            (serviceAccountToken, configMap, secret, downwardAPI fieldRef)
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
// Service account tokens. The API server's ServiceAccount admission turns
// automountServiceAccountToken (true unless the pod or its service account
// says false) into a projected volume on
// /var/run/secrets/kubernetes.io/serviceaccount: a token, the
// kube-root-ca.crt ConfigMap's ca.crt, the namespace. The process kubelet
// writes it as a kubelet does: the token from the TokenRequest API, for the
// pod's service account, bound to the pod (BoundObjectRef kind Pod, name,
// UID: it dies with the pod, and a TokenReview names the pod in
// extra["authentication.kubernetes.io/pod-name"]), renewed after 80% of its
// life; the same for a projected serviceAccountToken volume of the pod's
// own, with its audience and path. KUBERNETES_SERVICE_HOST and
// KUBERNETES_SERVICE_PORT name the local API server, whose certificate the
// ca.crt verifies. The folder is path-translated like any mount, so a
// process finds it where its env or args say (a TOKEN_DIR, a config field).
// A client finds it at the path compiled into client-go
// (rest.InClusterConfig) too: a process with a mount under
// /var/run/secrets runs in a mount namespace of its own (secrets.go), where
// /run is an overlay of the machine's (nothing changes outside it) and those
// mounts are bound to their folders. That needs root, sh, mount(8) and
// overlayfs; where a trial fails, the log says so once and only the
// translated paths hold.
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
// The pod's own network. A pod IP is the process's own, so an arg that
// binds an address without a host (":8081", "--metrics-bind-address=:8443",
// "0.0.0.0:80") binds that port on the pod IP, and two pods on this
// machine can use the same port as in their own network namespaces.
//
// Probes (httpGet, tcpSocket). Readiness runs every probePeriod, not every
// periodSeconds, so that pods turn Ready without the kubelet's delay;
// liveness runs as a kubelet runs it, every periodSeconds after
// initialDelaySeconds, and a process that fails it failureThreshold times
// in a row is stopped (SIGTERM, SIGKILL after the grace period) and
// restarted.
//
// What it does not emulate: startup probes, exec and gRPC probes, $(VAR)
// expansion, envFrom, workingDir (a process runs in its pod folder),
// resource limits other than CPU, security contexts beyond the user and
// group (with RunAsUser: no read-only root filesystem, capabilities or
// seccomp), init and further containers, restartPolicy other than Always. Pod deletion stays
// kwok's: its delete stage removes the pod object within a second, while the
// process may still be in its grace period.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
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
	// selector. It may be empty when Nodes is not.
	Selector labels.Selector
	// Nodes, when set, limits the pods to run to those bound to these nodes:
	// the pods of every other node stay kwok's. A kwok Stage sees only the
	// pod, not its node's labels, so the nodes are named (the Stage matches
	// .spec.nodeName), and the set is fixed for the kubelet's life: a Stage
	// that changed under running pods would hand some over twice or never.
	// ChooseProcessNodes picks such a set and labels it.
	Nodes []string
	// Binary is the program run for every selected pod's container; the image
	// and command are ignored.
	Binary string
	// ArgsAsGiven runs the container's args as they are, without the
	// --listen and --termination-log that inferd takes: for a program that
	// is not inferd, such as the manager.
	ArgsAsGiven bool
	// RunAsUser runs each process as the user and group of its container's
	// securityContext (or the pod's), and refuses to start one whose
	// runAsNonRoot it cannot honour, as a kubelet does; it needs root. The
	// process's emptyDir folders are writable by any user, as a kubelet
	// makes them; hostPath folders stay the node's (root's), so it is off
	// for pods that write a hostPath nobody prepared.
	RunAsUser bool
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
	nodeLister corelisters.NodeLister
	podLister  corelisters.PodLister
	// cpu holds the cgroups that bound the processes' CPU; nil where cgroups
	// are not available, and GOMAXPROCS alone bounds them.
	cpu       *cpuCgroups
	informers []informers.SharedInformerFactory
	probes    *http.Client
	mounts    []string
	// nodes is the set of opts.Nodes; empty selects every node.
	nodes map[string]bool
	// apiHost and apiPort are the API server's, for KUBERNETES_SERVICE_HOST
	// and KUBERNETES_SERVICE_PORT.
	apiHost, apiPort string

	ctx     context.Context
	cancel  context.CancelFunc
	started atomic.Int64
	running sync.WaitGroup

	mu   sync.Mutex
	pods map[types.UID]*podProcess // never removed: a pod UID runs once
	// offline holds the nodes that carry OfflineAnnotation, each with a
	// channel that is closed when the annotation goes.
	offline map[string]chan struct{}

	logMu             sync.Mutex
	privateMountsOnce sync.Once
	stopOnce          sync.Once
	stopErr           error
}

// StartProcessKubelet claims the pods that opts.Selector selects from kwok and
// runs their container as a local process, until Stop. Start it before the
// pods are created: a pod that kwok already made Ready is taken over, but it was
// Ready without a process for a moment.
func (c *Cluster) StartProcessKubelet(ctx context.Context, opts ProcessKubeletOptions) (pk *ProcessKubelet, err error) {
	if opts.Name == "" {
		return nil, errors.New("process kubelet: a Name is required")
	}
	exprs, err := stageSelector(opts.Selector, opts.Nodes)
	if err != nil {
		return nil, fmt.Errorf("process kubelet %s: %w", opts.Name, err)
	}
	info, err := os.Stat(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("process kubelet %s: binary: %w", opts.Name, err)
	}
	if info.IsDir() || info.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("process kubelet %s: binary %q is not an executable file", opts.Name, opts.Binary)
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
	if u, err := url.Parse(cfg.Host); err == nil {
		k.apiHost, k.apiPort = u.Hostname(), u.Port()
		if k.apiPort == "" {
			k.apiPort = "443"
		}
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

	if cg, cerr := newCPUCgroups(opts.Name); cerr != nil {
		k.logf("CPU bounds by GOMAXPROCS alone, no cgroup: %v", cerr)
	} else {
		k.cpu = cg
	}

	// ConfigMaps come from a watch, not a GET per pod and second: 200 pods
	// would otherwise spend the API server's attention on polling. So do
	// the nodes, for OfflineAnnotation; they change rarely (kwok renews
	// Leases, not the Node objects).
	all := informers.NewSharedInformerFactory(cs, 0)
	k.configMaps = all.Core().V1().ConfigMaps().Lister()
	k.nodeLister = all.Core().V1().Nodes().Lister()
	if _, err := all.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.observeNode(obj) },
		UpdateFunc: func(_, obj any) { k.observeNode(obj) },
		DeleteFunc: func(obj any) { k.forgetNode(obj) },
	}); err != nil {
		return k, err
	}
	if opts.Selector == nil {
		opts.Selector = labels.Everything()
		k.opts.Selector = opts.Selector
	}
	k.nodes = map[string]bool{}
	for _, n := range opts.Nodes {
		k.nodes[n] = true
	}
	// The pods of the chosen nodes are filtered here (observe): a field
	// selector takes one node name, not a set.
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
		if k.cpu != nil {
			if err := k.cpu.remove(); err != nil {
				errs = append(errs, fmt.Errorf("remove cpu cgroups: %w", err))
			}
		}
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
// selects: pending, not deleting, with the labels, and bound to one of nodes
// when there are any.
func stageSelector(sel labels.Selector, nodes []string) ([]any, error) {
	if (sel == nil || sel.Empty()) && len(nodes) == 0 {
		return nil, errors.New("the selector is empty and no nodes are named: it would take every pod from kwok")
	}
	if sel == nil {
		sel = labels.Everything()
	}
	reqs, selectable := sel.Requirements()
	if !selectable {
		return nil, fmt.Errorf("selector %q selects nothing", sel)
	}
	exprs := []any{
		map[string]any{"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
		map[string]any{"key": ".status.phase", "operator": "In", "values": []any{"Pending"}},
	}
	if len(nodes) > 0 {
		values := make([]any, 0, len(nodes))
		for _, n := range slices.Sorted(slices.Values(nodes)) {
			values = append(values, n)
		}
		exprs = append(exprs, map[string]any{"key": ".spec.nodeName", "operator": "In", "values": values})
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

// ProcessKubeletReady reports whether the process kubelet called name has
// claimed its pods from kwok: its Stage is in.
func (c *Cluster) ProcessKubeletReady(ctx context.Context, name string) bool {
	dc, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		return false
	}
	_, err = dc.Resource(stageGVR).Get(ctx, processStagePrefix+name, metav1.GetOptions{})
	return err == nil
}
