// Package localcluster runs a real Kubernetes control plane on loopback with
// simulated edge nodes: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok, from the binaries that hack/build-controlplane.sh
// builds. The API server, scheduler and DaemonSet controller are the real ones;
// kwok plays the kubelets, so DaemonSets create real Pods that become Ready on
// nodes that exist only as API objects.
//
// The same package backs `make cluster-up` (processes detached, state in
// .cluster/) and the e2e tests (processes tied to the test, state in a temporary
// folder), so both can run side by side on free ports.
//
// What it owns: the control plane's processes and their state folder
// (cluster.go, pki.go), the simulated nodes (nodes.go), the kwok Stages that
// play the kubelets and inject faults (apply.go, faults.go), and the process
// kubelet that runs chosen pods as local processes (processes.go and the
// files it lists).
//
// What it may not touch: the operator's code. It imports nothing of this
// module (api/, controllers/, inferd/), so a test harness never sees more of
// the system under test than a real cluster would: only what reaches the API
// server. It writes only under its state folder (and a process kubelet's
// Root), and every process it starts listens on loopback addresses.
package localcluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Options says where the cluster lives and what it looks like.
type Options struct {
	// Dir holds the cluster's state: certificates, kubeconfig, logs, pids, etcd data.
	Dir string
	// BinDir holds etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
	// kwok and kwok-stages-crd.yaml (bin/k8s after hack/build-controlplane.sh).
	BinDir string
	// Nodes is how many simulated edge nodes the cluster has.
	Nodes int
	// Sites is how many sites (topology.kubernetes.io/zone values) the nodes are spread over.
	Sites int
	// PodsPerNode is how many pods a node runs at once when a test expects
	// more than one (several rollouts over the same nodes): kwok then plays
	// that many times the pod stages, and the nodes' Lease lengthens as for
	// a fleet that many times larger (see leaseSeconds). 0 means 1.
	PodsPerNode int
	// Detach starts the processes in their own session so that they outlive the
	// caller; Down stops them. Without it they are killed when the caller exits.
	Detach bool
	// Progress receives one line per step; nil discards it.
	Progress io.Writer
	// Profiling serves the API server's /debug/pprof to the admin, for a
	// benchmark's CPU profile (APIServerCPUProfile); off otherwise, as on a
	// hardened cluster.
	Profiling bool
}

// Cluster is a running local control plane.
type Cluster struct {
	// Dir is the state folder.
	Dir string
	// Kubeconfig is the path of an admin kubeconfig (client certificate in system:masters).
	Kubeconfig string
	// Config is the admin REST config, with QPS raised for tests that create many objects.
	Config *rest.Config
	// Clientset is a typed client for Config.
	Clientset kubernetes.Interface
	// CACert is the path of the cluster's CA certificate; ServingCert and
	// ServingKey are a serving certificate for 127.0.0.1 that it signed, which
	// tests can give to servers they start (the manager's metrics endpoint).
	CACert, ServingCert, ServingKey string
	// AuditLog is the API server's audit log (JSON lines): every create,
	// update, patch and delete of nodes, pods, ConfigMaps, DaemonSets and
	// slmops objects, at the Metadata level (who, what, when; no bodies), so
	// that tests count the writes a component makes (AuditPolicy).
	AuditLog string

	opts  Options
	state state
}

// AuditPolicy is the API server's audit policy: writes of the objects
// slmops and its nodes touch, at the Metadata level; status subresources
// of nodes and pods (the simulated kubelets' heartbeats) and everything
// else not at all, so that the log stays small at fleet scale.
const AuditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete]
    resources:
      - group: ""
        resources: [nodes, pods, configmaps]
      - group: apps
        resources: [daemonsets]
      - group: slmops.dev
        resources: [edgerollouts, edgerollouts/status, slmmodels, slmmodels/status]
  - level: None
`

// state is what Down needs to stop a cluster started by another process.
type state struct {
	APIServer string `json:"apiServer"`
	// ControllerManager is the controller-manager's secure endpoint.
	ControllerManager string      `json:"controllerManager,omitempty"`
	Components        []component `json:"components"`
}

type component struct {
	Name   string `json:"name"`
	PID    int    `json:"pid"`
	Binary string `json:"binary"`
}

// Component names in start order; Down stops them in reverse.
const (
	etcdName       = "etcd"
	apiServerName  = "kube-apiserver"
	controllerName = "kube-controller-manager"
	schedulerName  = "kube-scheduler"
	kwokName       = "kwok"
)

func (o *Options) progress(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// Up starts the control plane in opts.Dir, or reuses the one that already runs
// there, and makes sure it has exactly opts.Nodes simulated nodes, all Ready. When
// a step fails, whatever Up started is stopped again.
func Up(ctx context.Context, opts Options) (c *Cluster, err error) {
	if opts.Sites <= 0 {
		opts.Sites = 1
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	opts.Dir = dir
	if opts.BinDir, err = filepath.Abs(opts.BinDir); err != nil {
		return nil, err
	}
	for _, b := range []string{etcdName, apiServerName, controllerName, schedulerName, kwokName, "kwok-stages-crd.yaml"} {
		if _, err := os.Stat(filepath.Join(opts.BinDir, b)); err != nil {
			return nil, fmt.Errorf("control plane binaries missing in %s (run hack/build-controlplane.sh): %w", opts.BinDir, err)
		}
	}

	if c, err := reuse(ctx, opts); err == nil {
		opts.progress("==> Reusing the control plane in %s (%s)", dir, c.state.APIServer)
		if err := c.EnsureNodes(ctx, opts.Nodes, opts.Sites); err != nil {
			return nil, err
		}
		return c, nil
	} else if !errors.Is(err, errNotRunning) {
		opts.progress("==> The control plane in %s is not healthy (%v): starting it anew", dir, err)
	}
	if err := Down(dir, opts.Progress); err != nil {
		return nil, fmt.Errorf("clean up %s: %w", dir, err)
	}

	c = newCluster(opts)
	defer func() {
		if err != nil {
			opts.progress("==> Start failed: stopping what was started (logs were in %s)", filepath.Join(dir, "logs"))
			if derr := c.Down(); derr != nil {
				opts.progress("    stop: %v", derr)
			}
		}
	}()
	if err := c.start(ctx); err != nil {
		return c, err
	}
	if err := c.EnsureNodes(ctx, opts.Nodes, opts.Sites); err != nil {
		return c, err
	}
	return c, nil
}

var errNotRunning = errors.New("no control plane is running")

func newCluster(opts Options) *Cluster {
	p := pkiFiles(filepath.Join(opts.Dir, "pki"))
	return &Cluster{
		Dir:         opts.Dir,
		Kubeconfig:  filepath.Join(opts.Dir, "kubeconfig"),
		CACert:      p.CACert,
		ServingCert: p.ServingCert,
		ServingKey:  p.ServingKey,
		opts:        opts,
	}
}

// reuse returns the cluster that runs in opts.Dir when every process is alive
// and the API server is ready.
func reuse(ctx context.Context, opts Options) (*Cluster, error) {
	st, err := readState(opts.Dir)
	if err != nil {
		return nil, errNotRunning
	}
	live := st.Components[:0]
	for _, comp := range st.Components {
		switch {
		case comp.alive():
			live = append(live, comp)
		case !controlPlane(comp.Name):
			// A process kubelet that died leaves the control plane sound:
			// the caller may start another (TrackProcess).
		default:
			return nil, fmt.Errorf("%s (pid %d) is not running", comp.Name, comp.PID)
		}
	}
	st.Components = live
	c := newCluster(opts)
	c.state = st
	if err := c.connect(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.Clientset.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		return nil, fmt.Errorf("API server not ready: %w", err)
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context) error {
	o := &c.opts
	for _, sub := range []string{"pki", "logs", "etcd", "run"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, sub), 0o700); err != nil {
			return err
		}
	}
	began := time.Now()
	o.progress("==> Starting a local control plane in %s", c.Dir)
	c.AuditLog = filepath.Join(c.Dir, "logs", "audit.log")
	auditPolicy := filepath.Join(c.Dir, "audit-policy.yaml")
	if err := os.WriteFile(auditPolicy, []byte(AuditPolicy), 0o600); err != nil {
		return err
	}
	p, err := newPKI(filepath.Join(c.Dir, "pki"))
	if err != nil {
		return err
	}
	ports, err := ReservePorts(7)
	if err != nil {
		return fmt.Errorf("pick free ports: %w", err)
	}
	etcdClient, etcdPeer, apiPort, cmPort, schedPort, kwokPort, etcdMetrics := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6]
	c.state.APIServer = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	c.state.ControllerManager = fmt.Sprintf("https://127.0.0.1:%d", cmPort)
	if err := writeKubeconfig(c.Kubeconfig, c.state.APIServer, p); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	verified, err := tlsClient(p.CACert)
	if err != nil {
		return err
	}
	plain := &http.Client{Timeout: 2 * time.Second}

	// etcd: data on disk without fsync; the cluster is disposable and fsync on a
	// shared disk makes a 1,000-node cluster crawl.
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	if err := c.run(ctx, etcdName, fmt.Sprintf("http://127.0.0.1:%d/health", etcdMetrics), plain,
		"--name=local",
		"--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=local="+peerURL,
		fmt.Sprintf("--listen-metrics-urls=http://127.0.0.1:%d", etcdMetrics),
		"--unsafe-no-fsync=true",
		"--quota-backend-bytes=8589934592",
		"--log-level=warn",
	); err != nil {
		return err
	}

	if err := c.run(ctx, apiServerName, c.state.APIServer+"/readyz", verified,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", apiPort),
		"--cert-dir="+filepath.Join(c.Dir, "pki"),
		"--tls-cert-file="+p.ServingCert,
		"--tls-private-key-file="+p.ServingKey,
		"--client-ca-file="+p.CACert,
		"--service-account-key-file="+p.ServiceAccountPub,
		"--service-account-signing-key-file="+p.ServiceAccountKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--authorization-mode=RBAC,Node",
		"--service-cluster-ip-range=10.96.0.0/16",
		// A loopback advertise address cannot be a Service endpoint; nothing in
		// the simulated cluster dials the in-cluster "kubernetes" Service.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		fmt.Sprintf("--profiling=%t", o.Profiling),
		// Room for 1,000 simulated kubelets and the controllers at once.
		"--max-requests-inflight=1000",
		"--max-mutating-requests-inflight=500",
		"--audit-policy-file="+auditPolicy,
		"--audit-log-path="+c.AuditLog,
		"--audit-log-format=json",
		"--audit-log-maxsize=200",
		"--audit-log-maxbackup=1",
	); err != nil {
		return err
	}
	if err := c.connect(); err != nil {
		return err
	}

	// Every component uses the admin kubeconfig: system:masters is exempt from
	// API priority and fairness, and that is what the QPS settings below need.
	if err := c.run(ctx, controllerName, fmt.Sprintf("https://127.0.0.1:%d/healthz", cmPort), verified,
		"--kubeconfig="+c.Kubeconfig,
		"--authentication-kubeconfig="+c.Kubeconfig,
		"--authorization-kubeconfig="+c.Kubeconfig,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", cmPort),
		"--tls-cert-file="+p.ServingCert,
		"--tls-private-key-file="+p.ServingKey,
		"--leader-elect=false",
		"--service-account-private-key-file="+p.ServiceAccountKey,
		"--root-ca-file="+p.CACert,
		"--cluster-name=slmops-local",
		// The default client QPS makes a DaemonSet on 1,000 nodes take 89 s
		// instead of 21 s on 2 cores.
		"--kube-api-qps=500",
		"--kube-api-burst=1000",
		"--concurrent-daemonset-syncs=4",
		// Its default (50 s) up to 1,000 nodes; beyond, the longer lease's.
		fmt.Sprintf("--node-monitor-grace-period=%ds", max(50, leaseSeconds(o.Nodes*max(1, o.PodsPerNode))+20)),
	); err != nil {
		return err
	}

	schedConfig := filepath.Join(c.Dir, "run", "scheduler.yaml")
	if err := os.WriteFile(schedConfig, fmt.Appendf(nil, `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
  qps: 500
  burst: 1000
leaderElection:
  leaderElect: false
`, c.Kubeconfig), 0o600); err != nil {
		return err
	}
	if err := c.run(ctx, schedulerName, fmt.Sprintf("https://127.0.0.1:%d/healthz", schedPort), verified,
		"--config="+schedConfig,
		"--authentication-kubeconfig="+c.Kubeconfig,
		"--authorization-kubeconfig="+c.Kubeconfig,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", schedPort),
		"--tls-cert-file="+p.ServingCert,
		"--tls-private-key-file="+p.ServingKey,
	); err != nil {
		return err
	}

	// kwok reads its Stages from the API server, so tests can add a Stage that
	// injects a fault while the cluster runs.
	if err := c.installStages(ctx); err != nil {
		return err
	}
	// kwok renews each node's Lease every quarter of its duration: K3s's
	// 40 s is 100 renewals a second for 1,000 nodes. A larger fleet gets a
	// longer lease, so that renewals stay at that rate on 2 cores, and the
	// controller-manager a grace period to match (see leaseSeconds).
	size := o.Nodes * max(1, o.PodsPerNode)
	lease := leaseSeconds(size)
	// kwok plays four pod stages at a time by default: on 2 cores with a
	// thousand pods in flight that queue, not the API server, set the pace
	// of every pod's start and deletion.
	// Its Lease renewals run on their own workers, four by default: at 5,000
	// nodes, while thousands of pods change, the API server answers each
	// renewal slowly enough that four fell behind (under 1,000 renewals a
	// minute, against the 6,000 a 200 s Lease asks for), and the
	// controller-manager marked nodes NotReady mid-rollout. One worker per
	// 250 nodes keeps them in time. kwok also logs every renewal at INFO;
	// past 1,000 nodes that is most of its output and a share of its CPU, so
	// it logs warnings only. Both count nodes times PodsPerNode, as the
	// Lease does: a fleet of many pods per node keeps the API server as
	// busy as a larger fleet.
	kwokConfig := filepath.Join(c.Dir, "run", "kwok.yaml")
	if err := os.WriteFile(kwokConfig, fmt.Appendf(nil, `apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  podPlayStageParallelism: 32
  nodePlayStageParallelism: 16
  # A config file gets no defaults: kwok's own for the rest.
  nodeLeaseParallelism: %d
  podsOnNodeSyncParallelism: 1
  enablePodsOnNodeSyncListPager: true
`, max(4, size/250)), 0o600); err != nil {
		return err
	}
	if err := c.run(ctx, kwokName, fmt.Sprintf("http://127.0.0.1:%d/healthz", kwokPort), plain,
		"--config="+kwokConfig,
		"--kubeconfig="+c.Kubeconfig,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector="+kwokNodeAnnotation+"=fake",
		"--enable-crds=Stage",
		fmt.Sprintf("--server-address=127.0.0.1:%d", kwokPort),
		"--cidr=10.128.0.0/10",
		"--node-ip=10.127.0.1",
		fmt.Sprintf("--node-lease-duration-seconds=%d", lease),
		"--v="+kwokLogLevel(size),
	); err != nil {
		return err
	}
	o.progress("==> Control plane ready in %.1fs: %s (kubeconfig %s)", time.Since(began).Seconds(), c.state.APIServer, c.Kubeconfig)
	return nil
}

// kwokLogLevel is INFO up to a fleet of 1,000 (nodes times PodsPerNode; a
// failed start prints the end of kwok's log), WARN past that.
func kwokLogLevel(size int) string {
	if size > 1000 {
		return "WARN"
	}
	return "INFO"
}

// leaseSeconds is the simulated nodes' Lease duration for a fleet of n
// (nodes times PodsPerNode): K3s's 40 s up to 1,000, then growing with the
// fleet (200 s at 5,000), so that kwok, which renews the Leases between its
// pod work, stays within the controller-manager's grace period.
func leaseSeconds(n int) int {
	return max(40, 40*n/1000)
}

// controlPlane reports whether name is one of the control plane's own
// components, rather than a process tracked beside them (TrackProcess).
func controlPlane(name string) bool {
	switch name {
	case etcdName, apiServerName, controllerName, schedulerName, kwokName:
		return true
	}
	return false
}

// Attach connects to the cluster that runs in dir, as Up left it, without
// changing it.
func Attach(ctx context.Context, dir string) (*Cluster, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	c, err := reuse(ctx, Options{Dir: dir})
	if err != nil {
		return nil, fmt.Errorf("attach to the cluster in %s: %w", dir, err)
	}
	return c, nil
}

// TrackProcess records a process that belongs to the cluster beside its
// components (a detached process kubelet), so that Down stops it first. A
// dead tracked process does not keep Up from reusing the cluster.
func (c *Cluster) TrackProcess(name string, pid int) error {
	if controlPlane(name) {
		return fmt.Errorf("%s is a control plane component", name)
	}
	exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe"))
	if err != nil {
		return fmt.Errorf("track %s (pid %d): %w", name, pid, err)
	}
	c.state.Components = append(c.state.Components, component{Name: name, PID: pid, Binary: strings.TrimSuffix(exe, " (deleted)")})
	return writeState(c.Dir, c.state)
}

// StopProcess stops the tracked processes called name (SIGTERM, then
// SIGKILL after a grace period) and forgets them.
func (c *Cluster) StopProcess(name string) error {
	kept := c.state.Components[:0]
	for _, comp := range c.state.Components {
		if comp.Name != name || controlPlane(name) {
			kept = append(kept, comp)
			continue
		}
		if comp.alive() {
			comp.stop()
			c.opts.progress("    stopped %s (pid %d)", comp.Name, comp.PID)
		}
	}
	c.state.Components = kept
	return writeState(c.Dir, c.state)
}

// connect builds the REST config and clientset from the kubeconfig.
func (c *Cluster) connect() error {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig %s: %w", c.Kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	c.Config, c.Clientset = cfg, cs
	if c.state.APIServer == "" {
		c.state.APIServer = cfg.Host
	}
	return nil
}

// run starts one component, records its pid, and waits until healthURL answers 200.
func (c *Cluster) run(ctx context.Context, name, healthURL string, hc *http.Client, args ...string) error {
	began := time.Now()
	// Resolved, so that alive() can match it against /proc/<pid>/exe.
	binary, err := filepath.EvalSymlinks(filepath.Join(c.opts.BinDir, name))
	if err != nil {
		return err
	}
	logPath := filepath.Join(c.Dir, "logs", name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	// Not exec.CommandContext: the process must outlive ctx when detached.
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = c.Dir
	if c.opts.Detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c.state.Components = append(c.state.Components, component{Name: name, PID: cmd.Process.Pid, Binary: binary})
	if err := writeState(c.Dir, c.state); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		// %v, not %w: err is nil after a clean exit, last before the first
		// probe, and %w would print them as %!w(<nil>).
		case err := <-exited:
			return fmt.Errorf("%s exited (%v); the end of %s:\n%s", name, err, logPath, tail(logPath, 15)) //nolint:errorlint // see above
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy at %s after %s (%v); the end of %s:\n%s", //nolint:errorlint // see above
				name, healthURL, time.Since(began).Round(time.Second), last, logPath, tail(logPath, 15))
		case <-tick.C:
			if last = probe(ctx, hc, healthURL); last == nil {
				c.opts.progress("    %-24s pid %-7d ready in %.1fs", name, cmd.Process.Pid, time.Since(began).Seconds())
				return nil
			}
		}
	}
}

func probe(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// tlsClient verifies servers against the cluster CA and presents no client
// certificate: health endpoints are open to anonymous requests.
func tlsClient(caFile string) (*http.Client, error) {
	cfg, err := rest.TLSConfigFor(&rest.Config{TLSClientConfig: rest.TLSClientConfig{CAFile: caFile}})
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}

func tail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return "    " + strings.Join(all, "\n    ")
}

func statePath(dir string) string { return filepath.Join(dir, "run", "state.json") }

func readState(dir string) (state, error) {
	var st state
	data, err := os.ReadFile(statePath(dir))
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(data, &st)
}

func writeState(dir string, st state) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(statePath(dir), data, 0o600)
}

// alive reports whether the pid still runs the recorded binary, so that Down
// never signals an unrelated process that reused the pid.
func (comp component) alive() bool {
	if f := procStat(comp.PID); len(f) == 0 || f[0] == "Z" {
		return false
	}
	exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(comp.PID), "exe"))
	if err != nil {
		return false
	}
	return strings.TrimSuffix(exe, " (deleted)") == comp.Binary
}

// ControllerManagerMetrics is the controller-manager's /metrics, read as the
// admin (its delegated authorization allows system:masters): the
// DaemonSet controller's work queues and stale-cache skips, for benchmarks.
func (c *Cluster) ControllerManagerMetrics(ctx context.Context) ([]byte, error) {
	return c.controllerManagerGet(ctx, "/metrics", 10*time.Second)
}

// ControllerManagerCPUProfile is a CPU profile of the controller-manager
// over the next d (its /debug/pprof/profile, in pprof's format): where its
// controllers spend their time while a benchmark runs.
func (c *Cluster) ControllerManagerCPUProfile(ctx context.Context, d time.Duration) ([]byte, error) {
	return c.controllerManagerGet(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds())), d+10*time.Second)
}

// APIServerCPUProfile is a CPU profile of the kube-apiserver over the next
// d (its /debug/pprof/profile, read as the admin); the cluster must have
// been started with Options.Profiling.
func (c *Cluster) APIServerCPUProfile(ctx context.Context, d time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, d+10*time.Second)
	defer cancel()
	return c.Clientset.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").
		Param("seconds", strconv.Itoa(int(d.Seconds()))).DoRaw(ctx)
}

func (c *Cluster) controllerManagerGet(ctx context.Context, path string, timeout time.Duration) ([]byte, error) {
	if c.state.ControllerManager == "" {
		return nil, errors.New("the controller-manager's endpoint is not known (a cluster started by an older build)")
	}
	tc, err := rest.TLSConfigFor(c.Config)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tc}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.state.ControllerManager+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("controller-manager %s: %s: %.200s", path, resp.Status, body)
	}
	return body, nil
}

// Down stops the cluster.
func (c *Cluster) Down() error { return Down(c.Dir, c.opts.Progress) }

// Down stops every process of the cluster in dir, newest first (SIGTERM, then
// SIGKILL after a grace period), and removes dir. Besides the recorded pids it
// looks for stragglers: processes of a component binary whose command line
// names a file in dir, which a lost or stale state file would otherwise leak.
// It is a no-op when nothing runs there and dir does not exist.
func Down(dir string, progress io.Writer) error {
	o := &Options{Progress: progress}
	st, _ := readState(dir)
	comps := append(st.Components, stragglers(dir, st.Components)...)
	for i := len(comps) - 1; i >= 0; i-- {
		if comps[i].alive() {
			comps[i].stop()
			o.progress("    stopped %s (pid %d)", comps[i].Name, comps[i].PID)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		o.progress("==> Removed %s", dir)
	}
	return nil
}

// stop sends SIGTERM to the component's process group, and SIGKILL when it is
// still alive after a grace period.
func (comp component) stop() {
	// Each component leads its own process group.
	_ = syscall.Kill(-comp.PID, syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for comp.alive() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if comp.alive() {
		_ = syscall.Kill(-comp.PID, syscall.SIGKILL)
		_ = syscall.Kill(comp.PID, syscall.SIGKILL)
		for comp.alive() {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// stragglers finds running component processes of the cluster in dir that are
// not in known, in start order.
func stragglers(dir string, known []component) []component {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	recorded := map[int]bool{}
	for _, comp := range known {
		recorded[comp.PID] = true
	}
	marker := []byte(filepath.Clean(dir) + "/")
	var found []component
	for _, name := range []string{etcdName, apiServerName, controllerName, schedulerName, kwokName} {
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || recorded[pid] || pid == os.Getpid() {
				continue
			}
			exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
			if err != nil || filepath.Base(strings.TrimSuffix(exe, " (deleted)")) != name {
				continue
			}
			cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err != nil || !bytes.Contains(cmdline, marker) {
				continue
			}
			found = append(found, component{Name: name, PID: pid, Binary: strings.TrimSuffix(exe, " (deleted)")})
		}
	}
	return found
}

// Process is one running component of the cluster.
type Process struct {
	Name string
	PID  int
}

// Processes lists the components of the cluster in start order.
func (c *Cluster) Processes() []Process {
	out := make([]Process, 0, len(c.state.Components))
	for _, comp := range c.state.Components {
		out = append(out, Process{Name: comp.Name, PID: comp.PID})
	}
	return out
}

// MemoryBytes reads a memory figure of a process from /proc/<pid>/status:
// "VmRSS" (resident now) or "VmHWM" (peak resident). It is 0 when unknown.
func MemoryBytes(pid int, field string) int64 {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// procStat is the fields of /proc/<pid>/stat after the command name (the
// state first), nil when the process does not exist.
func procStat(pid int) []string {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil
	}
	return statFields(string(data))
}

// statFields splits a /proc/<pid>/stat line after its command name, which
// is in parentheses and may itself hold spaces and parentheses: the fields
// are counted from the last closing one.
func statFields(stat string) []string {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(stat[i+1:])
}

// CPUSeconds is the CPU time (user and system) that a process has used so
// far, from /proc/<pid>/stat; 0 when unknown.
func CPUSeconds(pid int) float64 { return statCPUSeconds(procStat(pid)) }

// statCPUSeconds reads utime and stime (the 14th and 15th fields of the
// line, the 12th and 13th after the name) from statFields, in clock ticks
// of 1/100 s (USER_HZ on Linux).
func statCPUSeconds(f []string) float64 {
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return (utime + stime) / 100
}
