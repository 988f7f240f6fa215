package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/test/localcluster"
	"github.com/slmops/slmops/test/testenv"
)

// operator is a running manager process.
type operator struct {
	t  *testing.T
	ns string
	// metricsAddr serves the operator's Prometheus metrics over plain HTTP.
	metricsAddr string
	cmd         *exec.Cmd
	exited      chan struct{} // closed when cmd has exited; the test ends it, its log says how
	logs        *testenv.SyncBuffer
	// args are the manager's flags beyond the suite's.
	args []string
}

// startOperator runs the manager binary against the suite's cluster, electing
// its leader in ns; it is stopped when the test ends.
func startOperator(t *testing.T, ns string, args ...string) *operator {
	t.Helper()
	o := &operator{t: t, ns: ns, logs: &testenv.SyncBuffer{}, metricsAddr: freeAddr(t), args: args}
	o.start()
	t.Cleanup(func() {
		o.stop()
		if t.Failed() {
			logs := o.logs.String()
			if len(logs) > 20000 {
				logs = logs[len(logs)-20000:]
			}
			t.Logf("operator logs (end):\n%s", logs)
		}
	})
	return o
}

func (o *operator) start() {
	o.t.Helper()
	o.cmd = exec.Command(managerBin, append([]string{
		"--leader-elect=true", "--leader-election-namespace=" + o.ns,
		"--metrics-bind-address=" + o.metricsAddr, "--metrics-secure=false", "--health-probe-bind-address=127.0.0.1:0"}, o.args...)...)
	o.cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig)
	o.cmd.Stdout, o.cmd.Stderr = o.logs, o.logs
	if err := o.cmd.Start(); err != nil {
		o.t.Fatal(err)
	}
	o.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(o.cmd, o.exited)
}

// metrics returns the operator's metrics in the Prometheus text format.
func (o *operator) metrics() string {
	o.t.Helper()
	resp, err := http.Get("http://" + o.metricsAddr + "/metrics")
	if err != nil {
		o.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		o.t.Fatal(err)
	}
	return string(b)
}

// kill ends the operator at once, as a node failure or OOM kill would.
func (o *operator) kill() {
	_ = o.cmd.Process.Signal(syscall.SIGKILL)
	<-o.exited
}

func (o *operator) stop() {
	if o.cmd.ProcessState != nil {
		return
	}
	_ = o.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-o.exited:
	case <-time.After(20 * time.Second):
		o.kill()
	}
}

// kube is a controller-runtime client with the slmops types.
func kube(t *testing.T) client.Client { return testenv.Client(t, cluster.Config) }

func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns, err := cluster.Clientset.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cluster.Clientset.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

func digestOf(n int) string {
	return fmt.Sprintf("sha256:%064x", n)
}

func model(ns, digest string) *slmopsv1alpha1.SLMModel {
	return &slmopsv1alpha1.SLMModel{
		ObjectMeta: metav1.ObjectMeta{Name: "tinyllama", Namespace: ns},
		Spec: slmopsv1alpha1.SLMModelSpec{
			Source:       slmopsv1alpha1.ModelSource{HTTP: &slmopsv1alpha1.HTTPSource{URL: "https://models.example.com/tinyllama.gguf"}},
			Digest:       digest,
			Quantization: slmopsv1alpha1.QuantizationQ4_0,
		},
	}
}

// rollout is a rollout of the suite's model to every simulated node, fast
// enough for tests: pods count after 1 s ready. A node fails 120 s after its
// pod started without becoming ready: no test waits for that deadline (the
// faults they inject fail a pod at once), and kwok's pods took over 30 s to
// become ready on a loaded CI machine, which failed healthy canaries.
func rollout(ns string, steps ...string) *slmopsv1alpha1.EdgeRollout {
	r := &slmopsv1alpha1.EdgeRollout{
		ObjectMeta: metav1.ObjectMeta{Name: "stores", Namespace: ns},
		Spec: slmopsv1alpha1.EdgeRolloutSpec{
			ModelRef:     slmopsv1alpha1.LocalObjectReference{Name: "tinyllama"},
			NodeSelector: &slmopsv1alpha1.NodeSelector{MatchLabels: map[string]string{"node.kubernetes.io/instance-type": "k3s"}},
			Template:     slmopsv1alpha1.InferdTemplate{Image: "registry.invalid/inferd:v1"},
			Strategy: slmopsv1alpha1.RolloutStrategy{Canary: slmopsv1alpha1.CanaryStrategy{
				MaxUnavailable:          ptr.To(intstr.FromString("10%")),
				MinReadySeconds:         ptr.To[int32](1),
				ProgressDeadlineSeconds: 120,
				TopologyKey:             "topology.kubernetes.io/zone",
			}},
			Analysis: slmopsv1alpha1.RolloutAnalysis{SuccessRatio: "1", MaxFailedNodes: ptr.To(intstr.FromInt32(0))},
		},
	}
	for _, s := range steps {
		r.Spec.Strategy.Canary.Steps = append(r.Spec.Strategy.Canary.Steps, slmopsv1alpha1.CanaryStep{Nodes: intstr.Parse(s)})
	}
	return r
}

// createRollout creates the model and the rollout, and deletes the rollout at
// the end of the test while the operator still runs, so that its finalizer
// removes the cohort labels from the nodes.
func createRollout(t *testing.T, c client.Client, m *slmopsv1alpha1.SLMModel, r *slmopsv1alpha1.EdgeRollout) {
	t.Helper()
	ctx := context.Background()
	if err := c.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Delete(ctx, r)
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if err := c.Get(ctx, client.ObjectKeyFromObject(r), &slmopsv1alpha1.EdgeRollout{}); apierrors.IsNotFound(err) {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Errorf("rollout %s/%s was not removed: its finalizer did not finish", r.Namespace, r.Name)
	})
}

// get reads the rollout.
func get(t *testing.T, c client.Client, r *slmopsv1alpha1.EdgeRollout) *slmopsv1alpha1.EdgeRollout {
	t.Helper()
	got := &slmopsv1alpha1.EdgeRollout{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(r), got); err != nil {
		t.Fatal(err)
	}
	return got
}

// waitForPhase waits until the rollout is in phase, its status describes the
// current generation, and its stable revision is not notStable (the revision
// before a change of the model, which the status may still show as Completed
// for a moment). It calls sample on every poll.
func waitForPhase(t *testing.T, c client.Client, r *slmopsv1alpha1.EdgeRollout, phase slmopsv1alpha1.RolloutPhase, notStable string, timeout time.Duration, sample func()) *slmopsv1alpha1.EdgeRollout {
	t.Helper()
	var got *slmopsv1alpha1.EdgeRollout
	NewWithT(t).Eventually(func(g Gomega) {
		if sample != nil {
			sample()
		}
		got = get(t, c, r)
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(got.Status.Phase).To(Equal(phase), "conditions: %v", got.Status.Conditions)
		if notStable != "" && phase == slmopsv1alpha1.PhaseCompleted {
			g.Expect(got.Status.StableRevision).NotTo(Equal(notStable))
		}
	}).WithTimeout(timeout).WithPolling(250 * time.Millisecond).Should(Succeed())
	return got
}

// fleetView is what the nodes run for one rollout, read from the cluster.
type fleetView struct {
	// revisionOf is each target node's cohort label.
	revisionOf map[string]string
	// reachable is the nodes whose Ready condition is True.
	reachable map[string]bool
	// readyOn is the nodes with a Ready, not terminating inferd pod of the
	// rollout (any revision), and the pod's revision and UID.
	readyOn map[string]podRef
}

type podRef struct {
	revision string
	uid      string
}

func viewFleet(t *testing.T, ns, name string) fleetView {
	t.Helper()
	ctx := context.Background()
	nodes, err := cluster.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods, err := cluster.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: slmopsv1alpha1.RolloutLabel + "=" + name})
	if err != nil {
		t.Fatal(err)
	}
	nodePtrs := make([]*corev1.Node, len(nodes.Items))
	for i := range nodes.Items {
		nodePtrs[i] = &nodes.Items[i]
	}
	podPtrs := make([]*corev1.Pod, len(pods.Items))
	for i := range pods.Items {
		podPtrs[i] = &pods.Items[i]
	}
	return newFleetView(slmopsv1alpha1.CohortLabel(ns, name), nodePtrs, podPtrs)
}

// newFleetView is the view of the nodes and the rollout's pods; key is the
// rollout's cohort label.
func newFleetView(key string, nodes []*corev1.Node, pods []*corev1.Pod) fleetView {
	v := fleetView{revisionOf: map[string]string{}, reachable: map[string]bool{}, readyOn: map[string]podRef{}}
	for _, n := range nodes {
		v.revisionOf[n.Name] = n.Labels[key]
		v.reachable[n.Name] = localcluster.NodeReady(n)
	}
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Spec.NodeName == "" || p.Labels[slmopsv1alpha1.StageRevisionLabel] != "" {
			continue // stagers serve no model
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				v.readyOn[p.Spec.NodeName] = podRef{revision: p.Labels[slmopsv1alpha1.RevisionLabel], uid: string(p.UID)}
			}
		}
	}
	return v
}

// fleetWatch keeps the nodes and a rollout's pods in informer caches, so
// that a test can look at the fleet every 100 ms without listing 200 nodes
// each time (a list takes longer than that on a busy machine).
type fleetWatch struct {
	key   string
	nodes corelisters.NodeLister
	pods  corelisters.PodNamespaceLister
}

// watchFleet starts the caches of rollout name in ns; they stop when the
// test ends.
func watchFleet(t *testing.T, ns, name string) *fleetWatch {
	t.Helper()
	nodes := informers.NewSharedInformerFactory(cluster.Clientset, 0)
	pods := informers.NewSharedInformerFactoryWithOptions(cluster.Clientset, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = slmopsv1alpha1.RolloutLabel + "=" + name }))
	w := &fleetWatch{
		key:   slmopsv1alpha1.CohortLabel(ns, name),
		nodes: nodes.Core().V1().Nodes().Lister(),
		pods:  pods.Core().V1().Pods().Lister().Pods(ns),
	}
	stop := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		nodes.Shutdown()
		pods.Shutdown()
	})
	for _, f := range []informers.SharedInformerFactory{nodes, pods} {
		f.Start(stop)
		for typ, ok := range f.WaitForCacheSync(stop) {
			if !ok {
				t.Fatalf("the %v cache did not sync", typ)
			}
		}
	}
	return w
}

// view is the fleet as the caches see it now.
func (w *fleetWatch) view(t *testing.T) fleetView {
	t.Helper()
	nodes, err := w.nodes.List(labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	pods, err := w.pods.List(labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	return newFleetView(w.key, nodes, pods)
}

// unavailable counts nodes without a ready inferd pod of the rollout.
func (v fleetView) unavailable() int {
	n := 0
	for node := range v.revisionOf {
		if _, ok := v.readyOn[node]; !ok {
			n++
		}
	}
	return n
}

// allOn checks that every node is labelled with rev and has a ready pod of it.
func (v fleetView) allOn(g Gomega, rev string) {
	for node, label := range v.revisionOf {
		g.Expect(label).To(Equal(rev), "cohort label of %s", node)
		g.Expect(v.readyOn[node].revision).To(Equal(rev), "ready pod on %s", node)
	}
}

// maxSampler records the largest number of unavailable nodes seen.
type maxSampler struct {
	t      *testing.T
	ns     string
	name   string
	max    int
	sample int
}

func (s *maxSampler) take() {
	s.sample++
	if u := viewFleet(s.t, s.ns, s.name).unavailable(); u > s.max {
		s.max = u
	}
}

// buildBinary builds the project's package pkg ("./cmd/inferd") into a
// folder of the test and returns the binary's path.
func buildBinary(t *testing.T, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = testenv.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// realServing is a process kubelet that runs the serving inferd pods of
// one rollout on a few chosen nodes as real inferd processes.
type realServing struct {
	// nodes are the chosen nodes, labelled localcluster.ProcessNodeLabel.
	nodes []string
	// root holds the nodes' and pods' folders (see localcluster.ProcessKubeletOptions).
	root string
	pk   *localcluster.ProcessKubelet
	log  *testenv.SyncBuffer
}

// startRealServing chooses n nodes spread over the architectures and sites,
// bounds their CPU by class (localcluster.DefaultProcessCPU), and runs the
// serving inferd pods of rollout on them as processes of inferdBin; every
// other pod stays kwok's. A rollout aims at the nodes with a nodeSelector
// on localcluster.ProcessNodeLabel. The labels go when the test ends.
func startRealServing(t *testing.T, rollout, inferdBin string, n int) *realServing {
	t.Helper()
	return startRealServingOn(t, rollout, inferdBin, n, localcluster.DefaultProcessCPU)
}

// startRealServingOn is startRealServing with the CPU bound of each
// architecture's nodes.
func startRealServingOn(t *testing.T, rollout, inferdBin string, n int, cpuByArch map[string]string) *realServing {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	nodes, err := cluster.ChooseProcessNodes(ctx, n, cpuByArch)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		if _, err := cluster.ChooseProcessNodes(context.Background(), 0, nil); err != nil {
			t.Errorf("remove the process node labels: %v", err)
		}
	})
	root, err := os.MkdirTemp("", "slmops-nodes-")
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	serving := labels.SelectorFromSet(labels.Set{
		slmopsv1alpha1.ComponentLabel: slmopsv1alpha1.ComponentModelServer,
		slmopsv1alpha1.RolloutLabel:   rollout,
	})
	rs := &realServing{nodes: nodes, root: root, log: &testenv.SyncBuffer{}}
	rs.pk, err = cluster.StartProcessKubelet(ctx, localcluster.ProcessKubeletOptions{
		Name: rollout, Selector: serving, Nodes: nodes, Binary: inferdBin, Root: root, Log: rs.log,
	})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		_ = rs.pk.Stop()
		if t.Failed() {
			t.Logf("process kubelet log:\n%s", rs.log.String())
			logs, _ := filepath.Glob(filepath.Join(root, "pods", "*", "log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("inferd log %s (end):\n%s", l, tail(string(b), 3000))
			}
		}
	})
	return rs
}

// kubectlSLM runs the kubectl-slm plugin against the suite's cluster.
func kubectlSLM(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(buildBinary(t, "./cmd/kubectl-slm"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
