// Command bench-rollout measures an EdgeRollout at fleet size against the
// anchor of a plain DaemonSet RollingUpdate, in the same run, on the same local
// control plane. `make bench-rollout` runs it.
//
// On N simulated nodes it rolls a first model revision out with the operator,
// then, --runs times, updates a plain DaemonSet with the rollout's
// maxUnavailable (the anchor) and times the update of the rollout to a new
// revision through the canary steps. It prints both times and their ratio,
// when each step was promoted, how long no pod was on its way, the nodes
// without a ready pod (mean and most), the reconciles with their queue wait
// and work, the operator's API writes per node, and the operator's peak
// resident memory; with more than one run, the medians and ranges.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/controllers/edgerollout"
	"github.com/slmops/slmops/test/localcluster"
	"github.com/slmops/slmops/test/testenv"
)

func main() {
	nodes := flag.Int("nodes", 1000, "simulated edge nodes")
	sites := flag.Int("sites", 10, "sites")
	maxUnavailable := flag.String("max-unavailable", "10%", "maxUnavailable of both the DaemonSet and the rollout")
	steps := flag.String("steps", "1%,10%,50%,100%", "canary steps")
	runs := flag.Int("runs", 1, "updates to time, each beside its own anchor; more than 1 prints the median and range")
	profile := flag.String("cpuprofile", "", "write a 20 s CPU profile of the manager, taken from the start of the update, to this file (go tool pprof reads it)")
	cmProfile := flag.String("cm-cpuprofile", "", "write a 20 s CPU profile of the kube-controller-manager, taken from the start of the first EdgeRollout update, to this file")
	apiProfile := flag.String("apiserver-cpuprofile", "", "write a 20 s CPU profile of the kube-apiserver, taken from the start of the first EdgeRollout update, to this file, and one from the start of the first plain update to this file with .plain added")
	heapProfile := flag.String("heapprofile", "", "write the manager's heap profile taken when its resident memory was highest, from its start to the end of the first update (sampled every 5 s), to this file")
	rollouts := flag.Int("rollouts", 1, "more than 1: that many EdgeRollouts of their own models, each over 3 of the sites (overlapping), updated at once, against one of them alone")
	staging := flag.Bool("staging", false, "the rollout stages each revision ahead of the canary (one step ahead, as many downloads at once as maxUnavailable allows nodes down) and shares it between the nodes of a site; the stagers are simulated pods, so this measures the operator's staging work, not downloads")
	workers := flag.Int("rollout-workers", 0, "the manager's --rollout-workers (0: its default)")
	restarts := flag.Bool("restarts", true, "after the runs, restart the manager twice during one more update (SIGTERM, then SIGKILL) and time each new process to its first decision")
	flag.Parse()
	if *runs < 1 {
		fmt.Fprintln(os.Stderr, "bench-rollout: --runs must be at least 1")
		os.Exit(2)
	}
	if err := run(*nodes, *sites, *runs, *maxUnavailable, strings.Split(*steps, ","), *profile, *cmProfile, *apiProfile, *heapProfile, *restarts, *staging, *rollouts, *workers); err != nil {
		fmt.Fprintf(os.Stderr, "bench-rollout: %v\n", err)
		os.Exit(1)
	}
}

func run(nodes, sites, runs int, maxUnavailable string, steps []string, profile, cmProfile, apiProfile, heapProfile string, restarts, staging bool, rollouts, workers int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(20+20*runs+3*rollouts)*time.Minute)
	defer cancel()
	bin, err := localcluster.BinDir()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "slmops-bench-rollout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	manager, plugin := filepath.Join(dir, "manager"), filepath.Join(dir, "kubectl-slm")
	for bin, pkg := range map[string]string{manager: "cmd/manager", plugin: "cmd/kubectl-slm"} {
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/slmops/slmops/"+pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %w\n%s", pkg, err, out)
		}
	}
	// Each node serves 3*rollouts/sites rollouts (1 with one).
	perNode := max(1, (3*rollouts+sites-1)/sites)
	if rollouts == 1 {
		perNode = 1
	}
	c, err := localcluster.Up(ctx, localcluster.Options{Dir: filepath.Join(dir, "cluster"), BinDir: bin, Nodes: nodes, Sites: sites, PodsPerNode: perNode, Profiling: apiProfile != ""})
	if err != nil {
		return err
	}
	defer func() { _ = c.Down() }()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = slmopsv1alpha1.AddToScheme(scheme)
	cl, err := client.New(c.Config, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	mu := intstr.Parse(maxUnavailable)
	with := ""
	if staging {
		with = ", staging one step ahead and peer sharing"
	}
	fmt.Printf("rollout benchmark: %d simulated nodes in %d sites, maxUnavailable %s, steps %s, minReadySeconds 0%s\n",
		nodes, sites, maxUnavailable, strings.Join(steps, " / "), with)

	// The operator.
	if err := testenv.InstallCRDs(ctx, c); err != nil {
		return err
	}
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}); err != nil {
		return err
	}
	// What the benchmark waits on and samples (the rollouts and DaemonSets
	// of its namespace) it reads from watches, not by polling the API
	// server: at 10 reads a second, the polling was a load of its own on the
	// machine, and more of it in the EdgeRollout's updates than in the
	// anchors'.
	watched, err := watchBench(ctx, c, scheme)
	if err != nil {
		return err
	}
	logs, err := os.Create(filepath.Join(dir, "manager.log"))
	if err != nil {
		return err
	}
	metricsAddr, pprofAddr := freeAddr(), freeAddr()
	start := func() (*exec.Cmd, error) {
		op := exec.Command(manager, "--leader-elect=true", "--leader-election-namespace=bench", "--metrics-secure=false",
			"--metrics-bind-address="+metricsAddr, "--health-probe-bind-address=127.0.0.1:0", "--pprof-bind-address="+pprofAddr)
		if workers > 0 {
			op.Args = append(op.Args, fmt.Sprintf("--rollout-workers=%d", workers))
		}
		op.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
		op.Stdout, op.Stderr = logs, logs
		return op, op.Start()
	}
	op, err := start()
	if err != nil {
		return err
	}
	defer func() { _ = op.Process.Signal(syscall.SIGTERM); _, _ = op.Process.Wait() }()

	if rollouts > 1 {
		return manyRollouts(ctx, cl, watched, c.Clientset.CoreV1(), rollouts, nodes, sites, mu, steps, metricsAddr, op.Process.Pid)
	}
	mem := watchMemory(ctx, op.Process.Pid, "start")
	var heapDone chan struct{}
	if heapProfile != "" {
		heapDone = make(chan struct{})
		go peakHeapProfile(pprofAddr, heapProfile, op.Process.Pid, heapDone)
	}
	m, r := benchRollout("model", "fleet", 1, nil, mu, steps)
	if staging {
		downloads, _ := intstr.GetScaledValueFromIntOrPercent(&mu, nodes, true)
		r.Spec.Distribution = slmopsv1alpha1.Distribution{
			Staging:     &slmopsv1alpha1.Staging{LookaheadSteps: ptr.To[int32](1), MaxConcurrentNodes: int32(max(1, downloads))},
			PeerSharing: &slmopsv1alpha1.PeerSharing{},
		}
	}
	if err := cl.Create(ctx, m); err != nil {
		return err
	}
	began := time.Now()
	mem.enter("first revision")
	if err := cl.Create(ctx, r); err != nil {
		return err
	}
	if _, err := waitCompleted(ctx, watched, r, ""); err != nil {
		return fmt.Errorf("first revision: %w (manager log %s)", err, logs.Name())
	}
	fmt.Printf("  %-52s %7.1f s\n", "EdgeRollout, first revision on every node", time.Since(began).Seconds())

	// The anchor's pods are the rollout's serving pods (the same spec, so
	// that both updates move pods of one size through the cluster), without
	// slmops' labels and cohort node selector: what a user would run
	// without the operator.
	servingPod, err := servingPodSpec(ctx, cl, "bench")
	if err != nil {
		return err
	}
	var ratios, anchors, updates []float64
	budget, _ := intstr.GetScaledValueFromIntOrPercent(&mu, nodes, true)
	for i := 1; i <= runs; i++ {
		// The anchor: a plain DaemonSet RollingUpdate, on the same nodes,
		// just before the update it anchors.
		fmt.Printf("run %d of %d\n", i, runs)
		mem.enter("plain updates")
		dsBefore := scrapeDaemonSets(ctx, c)
		cpu := func() cpuTimes { return cpuUse(c, op.Process.Pid) }
		var onUpdate func()
		if i == 1 && apiProfile != "" {
			onUpdate = func() { profiles(ctx, cpuProfiler{apiProfile + ".plain", "kube-apiserver", c.APIServerCPUProfile}) }
		}
		anchor, anchorCPU, err := daemonSetUpdate(ctx, cl, watched, nodes, mu, servingPod, cpu, onUpdate)
		if err != nil {
			return fmt.Errorf("anchor: %w", err)
		}
		dsAnchor := scrapeDaemonSets(ctx, c)
		fmt.Printf("  %-52s %s\n", "  DaemonSet controller", dsAnchor.minus(dsBefore))
		fmt.Printf("  %-52s %s\n", "  CPU used", anchorCPU)
		before, err := scrape(metricsAddr)
		if err != nil {
			return err
		}
		first := r.Status.StableRevision
		cpuBefore := cpu()
		began = time.Now()
		mem.enter("EdgeRollout updates")
		sampled := sampleIdle(ctx, watched, "bench", first)
		if i == 1 {
			profiles(ctx, cpuProfiler{profile, "manager", managerCPUProfile(pprofAddr)},
				cpuProfiler{cmProfile, "controller-manager", c.ControllerManagerCPUProfile},
				cpuProfiler{apiProfile, "kube-apiserver", c.APIServerCPUProfile})
		}
		digest := fmt.Appendf(nil, `{"spec":{"digest":"sha256:%064x"}}`, i+1)
		if err := cl.Patch(ctx, m, client.RawPatch(types.MergePatchType, digest)); err != nil {
			return err
		}
		if _, err := waitCompleted(ctx, watched, r, first); err != nil {
			return fmt.Errorf("update %d: %w (manager log %s)", i, err, logs.Name())
		}
		update := time.Since(began)
		cpuUsed := cpu().minus(cpuBefore, update)
		if heapDone != nil && i == 1 {
			close(heapDone)
		}
		sample := <-sampled
		after, err := scrape(metricsAddr)
		if err != nil {
			return err
		}
		ratio := update.Seconds() / anchor.Seconds()
		anchors, updates, ratios = append(anchors, anchor.Seconds()), append(updates, update.Seconds()), append(ratios, ratio)
		fmt.Printf("  %-52s %7.1f s   ratio to anchor %.2fx\n", "EdgeRollout update through every step", update.Seconds(), ratio)
		if evs, err := c.Clientset.EventsV1().Events("bench").List(ctx, metav1.ListOptions{}); err == nil {
			for _, e := range evs.Items {
				// The rollout's own Events: the pods' scheduling Events would
				// bury them.
				if at := e.EventTime.Time; at.After(began) && e.Regarding.Kind == "EdgeRollout" && e.Reason == "StepPromoted" {
					fmt.Printf("      +%5.1f s  %s\n", at.Sub(began).Seconds(), e.Note)
				}
			}
		}
		if b, err := breakdown(ctx, cl, c.AuditLog, "bench", began); err == nil {
			fmt.Printf("  %-52s %7.2f s   (label patch to pod created %.2f s, to scheduled %.2f s, to Ready %.2f s; %d nodes)\n",
				"  a node's switch, mean", b.ready, b.created, b.scheduled, b.ready, b.nodes)
		} else {
			fmt.Fprintf(os.Stderr, "bench-rollout: switch breakdown: %v\n", err)
		}
		fmt.Printf("  %-52s %s\n", "  DaemonSet controller", scrapeDaemonSets(ctx, c).minus(dsAnchor))
		fmt.Printf("  %-52s %s\n", "  CPU used", cpuUsed)
		d := after.minus(before)
		fmt.Printf("  %-52s %7.1f s   (no serving pod on its way: the operator's own latency)\n", "  of which idle", sample.idle.Seconds())
		fmt.Printf("  %-52s %7.0f      (mean; the most at once %d, maxUnavailable %d)\n", "  nodes without a ready pod", sample.meanUnavailable, sample.maxUnavailable, budget)
		fmt.Printf("  %-52s %7d      (%.1f ms mean wait in the queue, %.1f ms mean work; %d conflicts)\n", "  reconciles", int(d.reconciles),
			1000*d.queueSeconds/max(d.reconciles, 1), 1000*d.workSeconds/max(d.reconciles, 1), int(d.conflicts))
		fmt.Printf("  %-52s %s\n", "    of its work, mean ms per reconcile", d.stageMeans())
		fmt.Printf("  %-52s %7.2f   (%d writes: node labels, DaemonSets, status, Events)\n", "  operator API writes per node", d.writes/float64(nodes), int(d.writes))
		fmt.Printf("  %-52s %7.1f KiB (the largest seen during the update; the API server's limit is 1.5 MiB)\n", "  EdgeRollout object", float64(sample.maxObjectBytes)/1024)
		if took, err := statusTimes(ctx, plugin, c.Kubeconfig, "bench", "fleet", 3); err == nil {
			fmt.Printf("  %-52s %7.2f s   (median of %d, %.2f-%.2f)\n", "  kubectl slm status fleet", median(took), len(took), slices.Min(took), slices.Max(took))
		} else {
			fmt.Fprintf(os.Stderr, "bench-rollout: kubectl slm status: %v\n", err)
		}
	}
	if runs > 1 {
		fmt.Printf("%d runs, median (min-max)\n", runs)
		fmt.Printf("  %-52s %7.1f s   (%.1f-%.1f)\n", "plain DaemonSet RollingUpdate", median(anchors), slices.Min(anchors), slices.Max(anchors))
		fmt.Printf("  %-52s %7.1f s   (%.1f-%.1f)\n", "EdgeRollout update", median(updates), slices.Min(updates), slices.Max(updates))
		fmt.Printf("  %-52s %7.2fx  (%.2f-%.2f)\n", "ratio", median(ratios), slices.Min(ratios), slices.Max(ratios))
	}
	fmt.Printf("  %-52s %7d MiB (%s)\n", "operator peak resident memory", localcluster.MemoryBytes(op.Process.Pid, "VmHWM")>>20, mem)
	if !restarts {
		return nil
	}

	// Restarts in the middle of an update: a rolling restart of the manager
	// (SIGTERM: it releases its Lease) after the first step, a crash
	// (SIGKILL: the Lease runs out first) after the second. From the new
	// process's start: its Lease, then its first write (a node label, a
	// DaemonSet, the rollout's status), read from the audit log.
	fmt.Println("manager restarts during an update")
	first := r.Status.StableRevision
	if err := cl.Patch(ctx, m, client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"spec":{"digest":"sha256:%064x"}}`, runs+2))); err != nil {
		return err
	}
	for i, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if err := waitStep(ctx, cl, r, int32(i+1)); err != nil {
			return fmt.Errorf("restart %d: %w (manager log %s)", i+1, err, logs.Name())
		}
		holder, err := leaseHolder(ctx, cl)
		if err != nil {
			return err
		}
		_ = op.Process.Signal(sig)
		_, _ = op.Process.Wait()
		if op, err = start(); err != nil {
			return err
		}
		began := time.Now()
		var led time.Duration
		var acquired time.Time
		if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			h, at, err := leaseHolderSince(ctx, cl)
			acquired = at
			return err == nil && h != "" && h != holder, nil
		}); err != nil {
			return fmt.Errorf("restart %d: no new leader: %w", i+1, err)
		}
		led = time.Since(began)
		var decided time.Duration
		// The new process writes only once it leads: a write of the same
		// user agent received before it acquired the Lease is the killed
		// process's, still in the API server's socket buffers when it died.
		since := began
		if acquired.After(since) {
			since = acquired
		}
		if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
			at, err := firstManagerWrite(c.AuditLog, since)
			if err != nil || at.IsZero() {
				return false, err
			}
			decided = at.Sub(began)
			return true, nil
		}); err != nil {
			return fmt.Errorf("restart %d: no decision: %w", i+1, err)
		}
		how := "rolling restart (SIGTERM)"
		if sig == syscall.SIGKILL {
			how = "crash (SIGKILL)"
		}
		fmt.Printf("  %-52s %7.1f s   (Lease after %.1f s)\n", "after a "+how+", first decision", decided.Seconds(), led.Seconds())
	}
	if _, err := waitCompleted(ctx, watched, r, first); err != nil {
		return fmt.Errorf("the update across restarts: %w (manager log %s)", err, logs.Name())
	}
	fmt.Println("  the update completed across both restarts")
	return nil
}

// waitStep waits until the rollout's canary is at step (0-based) or past it.
func waitStep(ctx context.Context, cl client.Client, r *slmopsv1alpha1.EdgeRollout, step int32) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := cl.Get(ctx, client.ObjectKeyFromObject(r), r); err != nil {
			return false, err
		}
		return r.Status.CanaryRevision != "" && r.Status.CurrentStep >= step, nil
	})
}

// leaseHolder is the identity holding the manager's Lease in ns bench.
func leaseHolder(ctx context.Context, cl client.Client) (string, error) {
	holder, _, err := leaseHolderSince(ctx, cl)
	return holder, err
}

// leaseHolderSince is the manager's Lease holder and when it acquired the
// Lease.
func leaseHolderSince(ctx context.Context, cl client.Client) (string, time.Time, error) {
	var lease coordinationv1.Lease
	if err := cl.Get(ctx, types.NamespacedName{Namespace: "bench", Name: "slmops-manager.slmops.dev"}, &lease); err != nil {
		return "", time.Time{}, client.IgnoreNotFound(err)
	}
	var acquired time.Time
	if at := lease.Spec.AcquireTime; at != nil {
		acquired = at.Time
	}
	return ptr.Deref(lease.Spec.HolderIdentity, ""), acquired, nil
}

// firstManagerWrite is when the manager (by its user agent) first wrote a
// node, a DaemonSet or an EdgeRollout's status after since, from the audit
// log; zero when it has not yet.
func firstManagerWrite(auditLog string, since time.Time) (time.Time, error) {
	f, err := os.Open(auditLog)
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e struct {
			Verb      string    `json:"verb"`
			UserAgent string    `json:"userAgent"`
			Received  time.Time `json:"requestReceivedTimestamp"`
			ObjectRef struct {
				Resource, Subresource string
			} `json:"objectRef"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Received.Before(since) || !strings.HasPrefix(e.UserAgent, "manager/") {
			continue
		}
		switch {
		case e.Verb == "get" || e.Verb == "list" || e.Verb == "watch":
		case e.ObjectRef.Resource == "nodes", e.ObjectRef.Resource == "daemonsets",
			e.ObjectRef.Resource == "edgerollouts" && e.ObjectRef.Subresource == "status":
			return e.Received, nil
		}
	}
	return time.Time{}, sc.Err()
}

// servingPodSpec is the pod spec of the rollout's serving DaemonSet in ns,
// without its node selector.
func servingPodSpec(ctx context.Context, cl client.Client, ns string) (corev1.PodSpec, error) {
	var list appsv1.DaemonSetList
	if err := cl.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{slmopsv1alpha1.ComponentLabel: slmopsv1alpha1.ComponentModelServer}); err != nil {
		return corev1.PodSpec{}, err
	}
	if len(list.Items) == 0 {
		return corev1.PodSpec{}, errors.New("no serving DaemonSet")
	}
	spec := list.Items[0].Spec.Template.Spec
	spec.NodeSelector = nil
	return spec, nil
}

// daemonSetUpdate creates a DaemonSet of pod on every node, waits until it
// is ready, then times a RollingUpdate of its image, and says what CPU the
// processes that cpu reads used during it.
func daemonSetUpdate(ctx context.Context, cl client.Client, watched client.Reader, nodes int, mu intstr.IntOrString, pod corev1.PodSpec, cpu func() cpuTimes, onUpdate func()) (time.Duration, string, error) {
	labels := map[string]string{"app": "anchor"}
	pod = *pod.DeepCopy()
	pod.Containers[0].Image = "registry.invalid/inferd:v1"
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "anchor", Namespace: "bench"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &mu, MaxSurge: ptr.To(intstr.FromInt32(0))}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       pod,
			},
		},
	}
	if err := cl.Create(ctx, ds); err != nil {
		return 0, "", err
	}
	done := func(image string) wait.ConditionWithContextFunc {
		return func(ctx context.Context) (bool, error) {
			got := &appsv1.DaemonSet{}
			if err := watched.Get(ctx, client.ObjectKeyFromObject(ds), got); err != nil {
				// Not in the watched cache yet, just after its creation.
				return false, client.IgnoreNotFound(err)
			}
			s := got.Status
			return got.Spec.Template.Spec.Containers[0].Image == image && s.ObservedGeneration == got.Generation &&
				s.UpdatedNumberScheduled == int32(nodes) && s.NumberReady == int32(nodes) && s.NumberAvailable == int32(nodes), nil
		}
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 10*time.Minute, true, done("registry.invalid/inferd:v1")); err != nil {
		return 0, "", err
	}
	if err := cl.Get(ctx, client.ObjectKeyFromObject(ds), ds); err != nil {
		return 0, "", err
	}
	ds.Spec.Template.Spec.Containers[0].Image = "registry.invalid/inferd:v2"
	if onUpdate != nil {
		onUpdate()
	}
	cpuBefore := cpu()
	began := time.Now()
	if err := cl.Update(ctx, ds); err != nil {
		return 0, "", err
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 20*time.Minute, true, done("registry.invalid/inferd:v2")); err != nil {
		return 0, "", err
	}
	took := time.Since(began)
	used := cpu().minus(cpuBefore, took)
	fmt.Printf("  %-52s %7.1f s   (anchor)\n", "plain DaemonSet RollingUpdate", took.Seconds())
	var pods corev1.PodList
	if err := cl.List(ctx, &pods, client.InNamespace(ds.Namespace), client.MatchingLabels(labels)); err == nil {
		var toScheduled, toReady float64
		n := 0
		for _, p := range pods.Items {
			scheduled, ready := podTimes(&p)
			if p.CreationTimestamp.Time.Before(began.Truncate(time.Second)) || scheduled.IsZero() || ready.IsZero() {
				continue
			}
			toScheduled += scheduled.Sub(p.CreationTimestamp.Time).Seconds()
			toReady += ready.Sub(p.CreationTimestamp.Time).Seconds()
			n++
		}
		if n > 0 {
			fmt.Printf("  %-52s %7.2f s   (to scheduled %.2f s; %d pods)\n", "  a new pod from created to Ready, mean", toReady/float64(n), toScheduled/float64(n), n)
		}
	}
	if err := cl.Delete(ctx, ds, client.PropagationPolicy(metav1.DeletePropagationForeground)); err != nil {
		return 0, "", err
	}
	// Gone, pods and all, before the update it anchors starts.
	gone := func(ctx context.Context) (bool, error) {
		err := cl.Get(ctx, client.ObjectKeyFromObject(ds), &appsv1.DaemonSet{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	}
	return took, used, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 10*time.Minute, true, gone)
}

func waitCompleted(ctx context.Context, cl client.Reader, r *slmopsv1alpha1.EdgeRollout, notStable string) (*slmopsv1alpha1.EdgeRollout, error) {
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 20*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := cl.Get(ctx, client.ObjectKeyFromObject(r), r); err != nil {
			// Not in the watched cache yet, just after its creation.
			return false, client.IgnoreNotFound(err)
		}
		st := r.Status
		return st.Phase == slmopsv1alpha1.PhaseCompleted && st.StableRevision != notStable && st.ObservedGeneration == r.Generation, nil
	})
	return r, err
}

// counters are the operator's metrics that the benchmark reads.
type counters struct {
	// writes are its non-GET API requests, conflicts those answered 409.
	writes, conflicts float64
	// reconciles of EdgeRollouts, and the seconds they waited in the
	// work queue and took.
	reconciles, queueSeconds, workSeconds float64
	// stages are the seconds spent in each stage of the reconciles
	// (slmops_rollout_reconcile_stage_duration_seconds), by stage.
	stages map[string]float64
}

func (c counters) minus(o counters) counters {
	d := counters{c.writes - o.writes, c.conflicts - o.conflicts, c.reconciles - o.reconciles,
		c.queueSeconds - o.queueSeconds, c.workSeconds - o.workSeconds, map[string]float64{}}
	for k, v := range c.stages {
		d.stages[k] = v - o.stages[k]
	}
	return d
}

// stageMeans is the mean time of each stage per reconcile, in reconcile
// order, those over 0.5 ms.
func (c counters) stageMeans() string {
	var parts []string
	for _, st := range edgerollout.ReconcileStages() {
		if ms := 1000 * c.stages[st] / max(c.reconciles, 1); ms >= 0.5 {
			parts = append(parts, fmt.Sprintf("%s %.1f", st, ms))
		}
	}
	return strings.Join(parts, ", ")
}

// scrape reads the counters from the operator's metrics.
func scrape(addr string) (counters, error) {
	c := counters{stages: map[string]float64{}}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	err = samples(resp.Body, func(line string, v float64) {
		edgerollout := strings.Contains(line, `name="edgerollout"`) || strings.Contains(line, `controller="edgerollout"`)
		switch {
		case strings.HasPrefix(line, "rest_client_requests_total{") && !strings.Contains(line, `method="GET"`):
			c.writes += v
			if strings.Contains(line, `code="409"`) {
				c.conflicts += v
			}
		case strings.HasPrefix(line, "workqueue_queue_duration_seconds_sum{") && edgerollout:
			c.queueSeconds += v
		case strings.HasPrefix(line, "workqueue_work_duration_seconds_sum{") && edgerollout:
			c.workSeconds += v
		case strings.HasPrefix(line, "workqueue_work_duration_seconds_count{") && edgerollout:
			c.reconciles += v
		case strings.HasPrefix(line, "slmops_rollout_reconcile_stage_duration_seconds_sum{"):
			if _, rest, ok := strings.Cut(line, `stage="`); ok {
				stage, _, _ := strings.Cut(rest, `"`)
				c.stages[stage] += v
			}
		}
	})
	return c, err
}

// samples calls each for every sample line of a Prometheus text exposition,
// with its value.
func samples(r io.Reader, each func(line string, v float64)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(line, "#") {
			continue
		}
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		each(line, v)
	}
	return sc.Err()
}

// dsQueues is the DaemonSet controller's work, from the controller-manager's
// metrics: its syncs of DaemonSets, the node updates it turns into syncs,
// and the syncs it put off because its cache had not yet seen its own
// writes (the StaleControllerConsistencyDaemonSet gate, on by default since
// Kubernetes 1.36).
type dsQueues struct {
	ok                                        bool
	syncs, queueSeconds, workSeconds, retries float64
	nodeUpdates, nodeQueueSeconds             float64
	staleSkips                                float64
}

func (q dsQueues) minus(o dsQueues) dsQueues {
	return dsQueues{q.ok && o.ok, q.syncs - o.syncs, q.queueSeconds - o.queueSeconds, q.workSeconds - o.workSeconds, q.retries - o.retries,
		q.nodeUpdates - o.nodeUpdates, q.nodeQueueSeconds - o.nodeQueueSeconds, q.staleSkips - o.staleSkips}
}

func (q dsQueues) String() string {
	if !q.ok {
		return "(its metrics could not be read)"
	}
	return fmt.Sprintf("%d syncs (%.1f ms mean wait in the queue, %.1f ms mean work), %d retried, %d put off for a stale cache; %d node updates (%.1f ms mean wait)",
		int(q.syncs), 1000*q.queueSeconds/max(q.syncs, 1), 1000*q.workSeconds/max(q.syncs, 1), int(q.retries), int(q.staleSkips),
		int(q.nodeUpdates), 1000*q.nodeQueueSeconds/max(q.nodeUpdates, 1))
}

// scrapeDaemonSets reads dsQueues; a failure leaves it marked unread.
func scrapeDaemonSets(ctx context.Context, c *localcluster.Cluster) dsQueues {
	body, err := c.ControllerManagerMetrics(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench-rollout: %v\n", err)
		return dsQueues{}
	}
	q := dsQueues{ok: true}
	if err := samples(bytes.NewReader(body), func(line string, v float64) {
		ds, nodes := strings.Contains(line, `name="daemonset"`), strings.Contains(line, `name="daemonset-node-updates"`)
		switch {
		case strings.HasPrefix(line, "workqueue_work_duration_seconds_count{") && ds:
			q.syncs += v
		case strings.HasPrefix(line, "workqueue_work_duration_seconds_sum{") && ds:
			q.workSeconds += v
		case strings.HasPrefix(line, "workqueue_queue_duration_seconds_sum{") && ds:
			q.queueSeconds += v
		case strings.HasPrefix(line, "workqueue_retries_total{") && ds:
			q.retries += v
		case strings.HasPrefix(line, "workqueue_work_duration_seconds_count{") && nodes:
			q.nodeUpdates += v
		case strings.HasPrefix(line, "workqueue_queue_duration_seconds_sum{") && nodes:
			q.nodeQueueSeconds += v
		case strings.HasPrefix(line, "daemonset_controller_stale_sync_skips_total"):
			q.staleSkips += v
		}
	}); err != nil {
		fmt.Fprintf(os.Stderr, "bench-rollout: controller-manager metrics: %v\n", err)
		return dsQueues{}
	}
	return q
}

// sample is what sampleIdle saw during an update.
type sample struct {
	// idle is the time during which no serving pod was on its way (not
	// yet scheduled, or scheduled and not ready).
	idle time.Duration
	// meanUnavailable and maxUnavailable are the target nodes without a
	// ready serving pod, on average over time and at the worst sample.
	meanUnavailable float64
	maxUnavailable  int
	// maxObjectBytes is the largest the EdgeRollout was, as JSON.
	maxObjectBytes int
}

// sampleIdle polls the namespace's serving DaemonSets every 100 ms until the
// rollout completes on a revision other than notStable: what is left of the
// update when no pod is on its way is the operator's reaction and promotion
// latency.
func sampleIdle(ctx context.Context, cl client.Reader, ns, notStable string) <-chan sample {
	out := make(chan sample, 1)
	go func() {
		var s sample
		var weighted, total time.Duration
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				out <- s
				return
			case <-time.After(100 * time.Millisecond):
			}
			var list appsv1.DaemonSetList
			var ro slmopsv1alpha1.EdgeRollout
			if cl.List(ctx, &list, client.InNamespace(ns)) != nil || cl.Get(ctx, types.NamespacedName{Namespace: ns, Name: "fleet"}, &ro) != nil {
				continue
			}
			now := time.Now()
			unavailable := 0
			busy := false
			for _, ds := range list.Items {
				st := ds.Status
				if ds.Labels[slmopsv1alpha1.ComponentLabel] != slmopsv1alpha1.ComponentModelServer {
					continue
				}
				unavailable += int(st.DesiredNumberScheduled - st.NumberReady)
				if st.ObservedGeneration != ds.Generation || st.NumberReady != st.DesiredNumberScheduled || st.CurrentNumberScheduled != st.DesiredNumberScheduled {
					busy = true
				}
			}
			dt := now.Sub(last)
			if !busy {
				s.idle += dt
			}
			weighted += time.Duration(unavailable) * dt
			total += dt
			s.maxUnavailable = max(s.maxUnavailable, unavailable)
			if b, err := json.Marshal(&ro); err == nil {
				s.maxObjectBytes = max(s.maxObjectBytes, len(b))
			}
			s.meanUnavailable = float64(weighted) / float64(total)
			last = now
			if ro.Status.Phase == slmopsv1alpha1.PhaseCompleted && ro.Status.ObservedGeneration == ro.Generation && ro.Status.StableRevision != notStable {
				out <- s
				return
			}
		}
	}()
	return out
}

// statusTimes runs `kubectl slm status NAME` n times against the cluster,
// as a user would from their shell, and returns each wall time in seconds.
func statusTimes(ctx context.Context, plugin, kubeconfig, ns, name string, n int) ([]float64, error) {
	var took []float64
	for range n {
		began := time.Now()
		out, err := exec.CommandContext(ctx, plugin, "--kubeconfig", kubeconfig, "-n", ns, "status", name).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("%w\n%s", err, out)
		}
		took = append(took, time.Since(began).Seconds())
		if !strings.Contains(string(out), "EdgeRollout "+ns+"/"+name) {
			return nil, fmt.Errorf("unexpected output:\n%s", out)
		}
	}
	return took, nil
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// switches is how long, on average, a node took from the operator's label
// patch to its new pod's creation, scheduling and readiness.
type switches struct {
	created, scheduled, ready float64
	nodes                     int
}

// breakdown reads the operator's node label patches since began from the
// API server's audit log (microseconds) and the serving pods' timestamps
// (seconds, so half a second is added to each: on average they are cut by
// that much).
func breakdown(ctx context.Context, cl client.Client, auditLog, ns string, began time.Time) (switches, error) {
	var b switches
	f, err := os.Open(auditLog)
	if err != nil {
		return b, err
	}
	defer f.Close()
	patched := map[string]time.Time{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e struct {
			Verb      string    `json:"verb"`
			Received  time.Time `json:"requestReceivedTimestamp"`
			ObjectRef struct {
				Resource, Name, Subresource string
			} `json:"objectRef"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Verb != "patch" || e.ObjectRef.Resource != "nodes" || e.ObjectRef.Subresource != "" || e.Received.Before(began) {
			continue
		}
		// The last patch: a node is patched once per switch.
		patched[e.ObjectRef.Name] = e.Received
	}
	if err := sc.Err(); err != nil {
		return b, err
	}
	var pods corev1.PodList
	if err := cl.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{slmopsv1alpha1.ComponentLabel: slmopsv1alpha1.ComponentModelServer}); err != nil {
		return b, err
	}
	half := 500 * time.Millisecond
	for _, p := range pods.Items {
		at, ok := patched[p.Spec.NodeName]
		if !ok || p.CreationTimestamp.Time.Add(time.Second).Before(at) {
			continue
		}
		scheduled, ready := podTimes(&p)
		if scheduled.IsZero() || ready.IsZero() {
			continue
		}
		b.created += p.CreationTimestamp.Add(half).Sub(at).Seconds()
		b.scheduled += scheduled.Add(half).Sub(at).Seconds()
		b.ready += ready.Add(half).Sub(at).Seconds()
		b.nodes++
	}
	if b.nodes == 0 {
		return b, errors.New("no switched node found in the audit log")
	}
	n := float64(b.nodes)
	b.created, b.scheduled, b.ready = b.created/n, b.scheduled/n, b.ready/n
	return b, nil
}

// podTimes are when a pod was scheduled and got Ready (zero if it has not).
func podTimes(p *corev1.Pod) (scheduled, ready time.Time) {
	for _, c := range p.Status.Conditions {
		switch c.Type {
		case corev1.PodScheduled:
			scheduled = c.LastTransitionTime.Time
		case corev1.PodReady:
			ready = c.LastTransitionTime.Time
		}
	}
	return scheduled, ready
}

// cpuProfiler takes a CPU profile of one process over the next d.
type cpuProfiler struct {
	path, what string
	take       func(context.Context, time.Duration) ([]byte, error)
}

// profiles starts 20 s CPU profiles, to the files named (none for an empty
// name), in the background.
func profiles(ctx context.Context, ps ...cpuProfiler) {
	for _, pr := range ps {
		if pr.path == "" {
			continue
		}
		go func() {
			b, err := pr.take(ctx, 20*time.Second)
			if err == nil {
				err = os.WriteFile(pr.path, b, 0o644)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench-rollout: %s CPU profile: %v\n", pr.what, err)
			}
		}()
	}
}

// watchBench is a cache of the EdgeRollouts and DaemonSets of the bench
// namespace, kept by watches, for the benchmark's waits and samples.
func watchBench(ctx context.Context, c *localcluster.Cluster, scheme *runtime.Scheme) (client.Reader, error) {
	watched, err := cache.New(c.Config, cache.Options{Scheme: scheme, DefaultNamespaces: map[string]cache.Config{"bench": {}}})
	if err != nil {
		return nil, err
	}
	for _, o := range []client.Object{&slmopsv1alpha1.EdgeRollout{}, &appsv1.DaemonSet{}} {
		if _, err := watched.GetInformer(ctx, o); err != nil {
			return nil, err
		}
	}
	go func() { _ = watched.Start(ctx) }()
	if !watched.WaitForCacheSync(ctx) {
		return nil, errors.New("the benchmark's watches did not sync")
	}
	return watched, nil
}

// cpuTimes is the CPU time used so far by each process of the cluster, by
// the manager and by the benchmark itself, in start order.
type cpuTimes struct {
	names   []string
	seconds []float64
}

func cpuUse(c *localcluster.Cluster, manager int) cpuTimes {
	var t cpuTimes
	for _, p := range c.Processes() {
		t.names, t.seconds = append(t.names, p.Name), append(t.seconds, localcluster.CPUSeconds(p.PID))
	}
	t.names, t.seconds = append(t.names, "manager"), append(t.seconds, localcluster.CPUSeconds(manager))
	// This benchmark's own sampling and waiting.
	t.names, t.seconds = append(t.names, "benchmark"), append(t.seconds, localcluster.CPUSeconds(os.Getpid()))
	return t
}

// minus is the CPU each process used since o, over wall, with the total
// against what the machine's CPUs could give in that time: near 100%, the
// phase was bound by the machine's CPU, not by any one process.
func (t cpuTimes) minus(o cpuTimes, wall time.Duration) string {
	var b strings.Builder
	var total float64
	for i, name := range t.names {
		if i >= len(o.seconds) || o.names[i] != name {
			continue
		}
		d := t.seconds[i] - o.seconds[i]
		total += d
		fmt.Fprintf(&b, "%s %.1f s, ", name, d)
	}
	avail := wall.Seconds() * float64(goruntime.NumCPU())
	fmt.Fprintf(&b, "total %.1f s of the %.1f s that %d CPUs give in %.1f s (%.0f%%)", total, avail, goruntime.NumCPU(), wall.Seconds(), 100*total/max(avail, 1e-9))
	return b.String()
}

// managerCPUProfile is a CPU profile of the manager over the next d, from
// its pprof endpoint at addr.
func managerCPUProfile(addr string) func(context.Context, time.Duration) ([]byte, error) {
	return func(ctx context.Context, d time.Duration) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())), nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("manager profile: %s", resp.Status)
		}
		return io.ReadAll(resp.Body)
	}
}

// phaseMemory is the most resident memory of a process in each phase of
// the run, sampled every 250 ms.
type phaseMemory struct {
	mu    sync.Mutex
	phase string
	order []string
	peak  map[string]int64
}

func watchMemory(ctx context.Context, pid int, phase string) *phaseMemory {
	m := &phaseMemory{peak: map[string]int64{}}
	m.enter(phase)
	go func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			rss := localcluster.MemoryBytes(pid, "VmRSS")
			m.mu.Lock()
			m.peak[m.phase] = max(m.peak[m.phase], rss)
			m.mu.Unlock()
		}
	}()
	return m
}

// enter starts a phase (again, when it ran before).
func (m *phaseMemory) enter(phase string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.peak[phase]; !ok {
		m.order = append(m.order, phase)
		m.peak[phase] = 0
	}
	m.phase = phase
}

// String is the peak of each phase in MiB, in the order they ran.
func (m *phaseMemory) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	parts := make([]string, 0, len(m.order))
	for _, p := range m.order {
		parts = append(parts, fmt.Sprintf("%s %d", p, m.peak[p]>>20))
	}
	return "the most in " + strings.Join(parts, ", ")
}

// peakHeapProfile saves to path the manager's heap profile taken when its
// resident memory was the highest seen, sampling every 5 s until done.
func peakHeapProfile(addr, path string, pid int, done <-chan struct{}) {
	var best []byte
	var bestRSS int64
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			if best == nil {
				fmt.Fprintln(os.Stderr, "bench-rollout: heap profile: no sample taken")
				return
			}
			if err := os.WriteFile(path, best, 0o644); err != nil {
				fmt.Fprintf(os.Stderr, "bench-rollout: heap profile: %v\n", err)
				return
			}
			fmt.Printf("  %-52s %7d MiB resident when taken (%s)\n", "  heap profile", bestRSS>>20, path)
			return
		case <-tick.C:
		}
		rss := localcluster.MemoryBytes(pid, "VmRSS")
		if rss <= bestRSS {
			continue
		}
		resp, err := http.Get("http://" + addr + "/debug/pprof/heap")
		if err != nil {
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK {
			best, bestRSS = b, rss
		}
	}
}

func freeAddr() string {
	addr, err := localcluster.ReserveAddr()
	if err != nil {
		return "127.0.0.1:18080"
	}
	return addr
}

// manyRollouts times n EdgeRollouts, each of its own model over 3
// consecutive sites of the fleet (so each node is in 3n/sites of them),
// updated at once, against the update of the first alone in the same run.
func manyRollouts(ctx context.Context, cl client.Client, watched client.Reader, core corev1client.CoreV1Interface, n, nodes, sites int,
	mu intstr.IntOrString, steps []string, metricsAddr string, pid int) error {
	fmt.Printf("%d concurrent rollouts, each over 3 of the %d sites\n", n, sites)
	var rs []*slmopsv1alpha1.EdgeRollout
	var ms []*slmopsv1alpha1.SLMModel
	for i := range n {
		var zones []string
		for j := range 3 {
			zones = append(zones, localcluster.SiteName((i+j)%sites, sites))
		}
		m, r := benchRollout(fmt.Sprintf("model-%02d", i), fmt.Sprintf("fleet-%02d", i), 1000*i+1,
			&slmopsv1alpha1.NodeSelector{MatchExpressions: []slmopsv1alpha1.NodeSelectorRequirement{
				{Key: localcluster.ZoneLabel, Operator: metav1.LabelSelectorOpIn, Values: zones}}}, mu, steps)
		ms, rs = append(ms, m), append(rs, r)
	}
	// update moves rollouts to a new digest and times each to Completed.
	update := func(which []int, gen int) ([]float64, time.Duration, error) {
		began := time.Now()
		firsts := map[int]string{}
		for _, i := range which {
			firsts[i] = rs[i].Status.StableRevision
			patch := fmt.Appendf(nil, `{"spec":{"digest":"sha256:%064x"}}`, 1000*i+gen)
			if err := cl.Patch(ctx, ms[i], client.RawPatch(types.MergePatchType, patch)); err != nil {
				return nil, 0, err
			}
		}
		times := make([]float64, len(which))
		errs := make(chan error, len(which))
		for k, i := range which {
			go func() {
				_, err := waitCompleted(ctx, watched, rs[i], firsts[i])
				times[k] = time.Since(began).Seconds()
				errs <- err
			}()
		}
		for range which {
			if err := <-errs; err != nil {
				return nil, 0, err
			}
		}
		return times, time.Since(began), nil
	}
	began := time.Now()
	for i := range rs {
		if err := cl.Create(ctx, ms[i]); err != nil {
			return err
		}
		if err := cl.Create(ctx, rs[i]); err != nil {
			return err
		}
	}
	for i := range rs {
		if _, err := waitCompleted(ctx, watched, rs[i], ""); err != nil {
			return fmt.Errorf("first revision of %s: %w", rs[i].Name, err)
		}
	}
	pods, err := core.Pods("bench").List(ctx, metav1.ListOptions{LabelSelector: slmopsv1alpha1.ComponentLabel + "=" + slmopsv1alpha1.ComponentModelServer, ResourceVersion: "0"})
	if err != nil {
		return err
	}
	fmt.Printf("  %-52s %7.1f s   (%d serving pods on %d nodes)\n", "first revisions of all, created at once", time.Since(began).Seconds(), len(pods.Items), nodes)
	_, took, err := update([]int{0}, 2)
	if err != nil {
		return fmt.Errorf("the anchor update: %w", err)
	}
	fmt.Printf("  %-52s %7.1f s   (anchor: %d nodes)\n", "one rollout's update alone", took.Seconds(), rs[0].Status.TargetNodes)
	before, err := scrape(metricsAddr)
	if err != nil {
		return err
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	updated := time.Now().Add(-time.Second)
	times, total, err := update(all, 3)
	if err != nil {
		return fmt.Errorf("the concurrent updates: %w", err)
	}
	after, err := scrape(metricsAddr)
	if err != nil {
		return err
	}
	d := after.minus(before)
	targets := 0
	for _, r := range rs {
		targets += int(r.Status.TargetNodes)
	}
	fmt.Printf("  %-52s %7.1f s   (%.2fx the one alone; each: median %.1f s, first %.1f s, last %.1f s)\n",
		fmt.Sprintf("all %d updated at once", n), total.Seconds(), total.Seconds()/took.Seconds(), median(times), slices.Min(times), slices.Max(times))
	fmt.Printf("  %-52s %7d      (%.1f ms mean wait in the queue, %.1f ms mean work; %d conflicts)\n", "  reconciles", int(d.reconciles),
		1000*d.queueSeconds/max(d.reconciles, 1), 1000*d.workSeconds/max(d.reconciles, 1), int(d.conflicts))
	fmt.Printf("  %-52s %7.2f   (%d writes over %d rollout-node pairs)\n", "  operator API writes per rollout node", d.writes/float64(targets), int(d.writes), targets)
	fmt.Printf("  %-52s %7d MiB\n", "operator peak resident memory", localcluster.MemoryBytes(pid, "VmHWM")>>20)
	// Lease lapses: the controller-manager saw a node's Lease run out and
	// marked the node NotReady (and its pods not Ready): the simulator
	// falling behind, not the operator.
	if evs, err := core.Events("").List(ctx, metav1.ListOptions{FieldSelector: "reason=NodeNotReady,involvedObject.kind=Node"}); err == nil {
		lapsed := map[string]bool{}
		for _, e := range evs.Items {
			if e.LastTimestamp.After(updated) || e.EventTime.After(updated) {
				lapsed[e.InvolvedObject.Name] = true
			}
		}
		fmt.Printf("  %-52s %7d      (nodes whose Lease the controller-manager saw lapse during the updates)\n", "  Lease lapses", len(lapsed))
	} else {
		fmt.Fprintf(os.Stderr, "bench-rollout: Lease lapses: %v\n", err)
	}
	return nil
}

// benchRollout is a model of digest n and a rollout of it in namespace
// bench, over the nodes of selector (every node when nil), through steps.
func benchRollout(model, name string, n int, selector *slmopsv1alpha1.NodeSelector, mu intstr.IntOrString, steps []string) (*slmopsv1alpha1.SLMModel, *slmopsv1alpha1.EdgeRollout) {
	m := &slmopsv1alpha1.SLMModel{
		ObjectMeta: metav1.ObjectMeta{Name: model, Namespace: "bench"},
		Spec: slmopsv1alpha1.SLMModelSpec{
			Source:       slmopsv1alpha1.ModelSource{HTTP: &slmopsv1alpha1.HTTPSource{URL: "https://models.example.com/" + model + ".gguf"}},
			Digest:       fmt.Sprintf("sha256:%064x", n),
			Quantization: slmopsv1alpha1.QuantizationQ4_0,
		},
	}
	r := &slmopsv1alpha1.EdgeRollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "bench"},
		Spec: slmopsv1alpha1.EdgeRolloutSpec{
			ModelRef:     slmopsv1alpha1.LocalObjectReference{Name: model},
			NodeSelector: selector,
			Template:     slmopsv1alpha1.InferdTemplate{Image: "registry.invalid/inferd:v1"},
			Strategy: slmopsv1alpha1.RolloutStrategy{Canary: slmopsv1alpha1.CanaryStrategy{
				MaxUnavailable: &mu, MinReadySeconds: ptr.To[int32](0), ProgressDeadlineSeconds: 1200,
				TopologyKey: localcluster.ZoneLabel,
			}},
		},
	}
	for _, s := range steps {
		r.Spec.Strategy.Canary.Steps = append(r.Spec.Strategy.Canary.Steps, slmopsv1alpha1.CanaryStep{Nodes: intstr.Parse(s)})
	}
	return m, r
}
