package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/inferd/engine/bigram"
	"github.com/slmops/slmops/inferd/gguf"
	"github.com/slmops/slmops/test/localcluster"
	"github.com/slmops/slmops/test/skip"
	"github.com/slmops/slmops/test/testenv"
)

var (
	gitRepositoryGVR = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "gitrepositories"}
	kustomizationGVR = schema.GroupVersionResource{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Resource: "kustomizations"}
)

// TestFluxGitOps: Flux's source-controller and kustomize-controller (built
// by hack/build-flux.sh) install slmops and a fleet's rollout from a Git
// repository that the test serves, with the Kustomizations slmops ships:
// config/gitops/flux/operator-kustomize.yaml (config/default, its CRDs
// never pruned) and stores.yaml (the fleet folder, wait: true, after the
// operator's). The manager's Deployment runs as its own pod, a real
// manager process (testenv.ManagerPods). Four nodes, one per site, stage
// each model (real inferd stagers, from the test's origin) before they join
// the canary; their serving pods are kwok's.
//
//   - The first commit: Flux installs the operator (its Kustomization Ready
//     once the manager's pod is available and leads), then the model and
//     the rollout; the fleet's Kustomization turns Ready only once the
//     rollout is Completed (its kstatus is Current), not while it
//     progresses.
//   - A commit with a new digest: a canary that completes, and the
//     Kustomization Ready again at that commit.
//   - A commit whose digest does not match the file the origin serves: the
//     stagers fail to verify it, the rollout fails with StagingFailed and
//     rolls back, and the Kustomization is not Ready, naming the failed
//     rollout. Reverting the commit makes it Ready again.
//   - Deleting the Kustomizations uninstalls the fleet, then the operator;
//     the CRDs stay.
func TestFluxGitOps(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	fluxDir := fluxBinaries(t)
	managers := testenv.RunManagerPods(t, cluster, operatorNS, operatorSelector, managerBin,
		"Flux installing the operator from Git (config/default, its manager Deployment run as its own pod) and the rollouts after it")
	c := kube(t)
	dc, err := dynamic.NewForConfig(cluster.Config)
	g.Expect(err).NotTo(HaveOccurred())
	inferdBin := buildBinary(t, "./cmd/inferd")
	const name = "flux-stores"
	ns := newNamespace(t, "e2e-flux")

	var nodes []string
	for i := range suiteSites {
		nodes = append(nodes, localcluster.NodeName(i, suiteSites))
	}

	// The origin serves three model files: v3's commit names a digest that
	// is not the digest of the file it points at.
	files := map[string][]byte{}
	digests := map[string]string{}
	for i, v := range []string{"v1", "v2", "v3"} {
		var buf bytes.Buffer
		g.Expect(bigram.Write(&buf, bigram.BuildOptions{Name: "flux-" + v, Type: gguf.Q8_0, PadBytes: 64<<10 + uint64(i)})).To(Succeed())
		sum := sha256.Sum256(buf.Bytes())
		files["/"+v+".gguf"], digests[v] = buf.Bytes(), "sha256:"+hex.EncodeToString(sum[:])
	}
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, r.URL.Path, time.Unix(0, 0), bytes.NewReader(data))
	}))

	// The stagers of this rollout on the four nodes are inferd processes.
	hasStage, err := labels.NewRequirement(slmopsv1alpha1.StageRevisionLabel, selection.Exists, nil)
	g.Expect(err).NotTo(HaveOccurred())
	ofRollout, err := labels.NewRequirement(slmopsv1alpha1.RolloutLabel, selection.Equals, []string{name})
	g.Expect(err).NotTo(HaveOccurred())
	root, err := os.MkdirTemp("", "slmops-nodes-")
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	pk, err := cluster.StartProcessKubelet(ctx, localcluster.ProcessKubeletOptions{
		Name: name, Selector: labels.NewSelector().Add(*hasStage, *ofRollout), Nodes: nodes, Binary: inferdBin, Root: root,
	})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = pk.Stop() })

	// The repository holds the operator's kustomize tree, as this
	// repository does, and the fleet's folder.
	repo := serveGitRepository(t)
	operatorTree := map[string]string{}
	for _, dir := range []string{"default", "crd", "rbac", "policy", "manager"} {
		g.Expect(readTree(filepath.Join(testenv.RepoRoot(), "config", dir), "config/"+dir, operatorTree)).To(Succeed())
	}
	fleet := func(version string, digest string) map[string]string {
		return map[string]string{
			"fleet/kustomization.yaml": "resources:\n- model.yaml\n- rollout.yaml\n",
			"fleet/model.yaml":         fluxModel(origin+"/"+version+".gguf", digest, len(files["/"+version+".gguf"])),
			"fleet/rollout.yaml":       fluxRollout(name, nodes),
		}
	}
	firstFiles := fleet("v1", digests["v1"])
	for path, content := range operatorTree {
		firstFiles[path] = content
	}
	first := repo.commit(t, "Install slmops, and roll out tinyllama v1 to the stores", firstFiles)

	startFlux(t, fluxDir, ns)
	g.Expect(cluster.Apply(ctx, []byte(fmt.Sprintf(fluxSource, ns, repo.url)))).To(Succeed())
	operatorKs := shippedKustomization(t, "operator-kustomize.yaml", ns, func(spec map[string]any) {
		spec["timeout"] = "3m"
	})
	g.Expect(operatorKs.GetName()).To(Equal("slmops-operator"))
	fleetKs := shippedKustomization(t, "stores.yaml", ns, func(spec map[string]any) {
		spec["path"], spec["targetNamespace"], spec["timeout"] = "./fleet", ns, "2m"
		spec["dependsOn"] = []any{map[string]any{"name": operatorKs.GetName()}}
	})
	for _, k := range []*unstructured.Unstructured{operatorKs, fleetKs} {
		_, err := dc.Resource(kustomizationGVR).Namespace(ns).Create(ctx, k, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred(), "create Kustomization %s", k.GetName())
	}
	// uninstall deletes the fleet's Kustomization first, while the operator
	// is up to take the rollout's finalizer and cohort labels off, waits for
	// the rollout to go, then deletes the operator's. Deleting a
	// Kustomization prunes what it applied. The test ends with it; if the
	// test stops early, its cleanup does it (again, at no cost), with the
	// GitRepository, before Flux stops (cleanups run last first) and can
	// remove its own finalizers.
	uninstall := func() {
		deleteKustomization(t, dc, ns, fleetKs.GetName())
		r := &slmopsv1alpha1.EdgeRollout{}
		waitGone(t, func() error { return c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, r) })
		deleteKustomization(t, dc, ns, operatorKs.GetName())
	}
	t.Cleanup(func() {
		uninstall()
		_ = dc.Resource(gitRepositoryGVR).Namespace(ns).Delete(context.Background(), "fleet", metav1.DeleteOptions{})
		waitGone(t, func() error {
			_, err := dc.Resource(gitRepositoryGVR).Namespace(ns).Get(context.Background(), "fleet", metav1.GetOptions{})
			return err
		})
	})

	// The operator: Ready once its pod runs, as the Deployment's user, and
	// leads.
	opWatch := &kustomizationWatch{t: t, dc: dc, c: c, ns: ns, name: operatorKs.GetName()}
	began := time.Now()
	opWatch.waitReadyAt(first, 3*time.Minute)
	pods := managers.WaitReady(1)
	uid, err := testenv.ProcessUID(testenv.PodPID(&pods[0]))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(uid).To(Equal("65532"), "the manager runs as config/manager's user")
	g.Eventually(func() (string, error) { return managers.Holder(ctx) }).WithTimeout(time.Minute).ShouldNot(BeEmpty(), "the manager's Lease")
	t.Logf("first commit: Flux installed the operator (Kustomization %s Ready, pod %s) after %.1fs", operatorKs.GetName(), pods[0].Name, time.Since(began).Seconds())

	ks := &kustomizationWatch{t: t, dc: dc, c: c, ns: ns, name: fleetKs.GetName(), rollout: name}
	r := &slmopsv1alpha1.EdgeRollout{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}

	// (a) Ready only once the rollout is Completed.
	began = time.Now()
	ks.waitReadyAt(first, 90*time.Second)
	g.Expect(ks.notReadyWhileProgressing).To(BeTrue(), "the Kustomization was never seen not Ready while the rollout progressed")
	v1 := get(t, c, r).Status.StableRevision
	t.Logf("first commit: Kustomization Ready at %s with the rollout Completed (revision %s) after %.1fs", first, v1, time.Since(began).Seconds())

	// (b) A new digest is a canary; Ready again at the new commit.
	began = time.Now()
	second := repo.commit(t, "tinyllama v2", fleet("v2", digests["v2"]))
	ks.requestReconcile()
	ks.waitReadyAt(second, 90*time.Second)
	done := get(t, c, r)
	g.Expect(done.Status.StableRevision).NotTo(Equal(v1), "the new digest was not rolled out")
	g.Expect(done.Status.History).NotTo(BeEmpty())
	g.Expect(done.Status.History[0].Digest).To(Equal(digests["v2"]))
	g.Expect(ks.notReadyWhileProgressing).To(BeTrue(), "the Kustomization was never seen not Ready while the canary progressed")
	v2 := done.Status.StableRevision
	t.Logf("second commit: canary %s completed, Kustomization Ready at %s after %.1fs", v2, second, time.Since(began).Seconds())

	// (c) A digest that the file does not have: the rollout fails, and so
	// does the Kustomization's health check.
	began = time.Now()
	wrong := sha256.Sum256([]byte("not v3"))
	third := repo.commit(t, "tinyllama v3 (its digest is wrong)", fleet("v3", "sha256:"+hex.EncodeToString(wrong[:])))
	ks.requestReconcile()
	msg := ks.waitFailedAt(third, 2*time.Minute)
	failed := get(t, c, r)
	g.Expect(failed.Status.Phase).To(Equal(slmopsv1alpha1.PhaseRolledBack))
	g.Expect(failed.Status.StableRevision).To(Equal(v2))
	g.Expect(conditionReason(failed, slmopsv1alpha1.ConditionStalled)).To(Equal(slmopsv1alpha1.ReasonStagingFailed))
	g.Expect(msg).To(ContainSubstring(fmt.Sprintf("EdgeRollout/%s/%s status: 'Failed'", ns, name)))
	t.Logf("third commit: Kustomization not Ready after %.1fs: %s; the rollout's Stalled condition: %s: %s", time.Since(began).Seconds(),
		msg, conditionReason(failed, slmopsv1alpha1.ConditionStalled), conditionMessage(failed, slmopsv1alpha1.ConditionStalled))

	// Reverting the commit recovers.
	began = time.Now()
	reverted := repo.revert(t)
	ks.requestReconcile()
	ks.waitReadyAt(reverted, 90*time.Second)
	back := get(t, c, r)
	g.Expect(back.Status.StableRevision).To(Equal(v2))
	t.Logf("revert: Kustomization Ready at %s, the rollout Completed at %s, after %.1fs", reverted, v2, time.Since(began).Seconds())

	// Uninstall: the fleet first (the operator takes the rollout's
	// finalizer and cohort labels off), then the operator. Everything the
	// operator's Kustomization applied is pruned but the CRDs.
	began = time.Now()
	uninstall()
	for _, obj := range []client.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: "slmops-manager"}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "slmops-manager"}},
		&admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "slmops-manager-nodes"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNS}},
	} {
		waitGone(t, func() error { return c.Get(ctx, client.ObjectKeyFromObject(obj), obj) })
	}
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, crd := range []string{"slmmodels.slmops.dev", "edgerollouts.slmops.dev"} {
		obj, err := dc.Resource(crds).Get(ctx, crd, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred(), "the CRD %s was pruned", crd)
		g.Expect(obj.GetDeletionTimestamp()).To(BeNil(), "the CRD %s is being deleted", crd)
	}
	t.Logf("uninstall: the fleet and the operator pruned, the CRDs kept, after %.1fs", time.Since(began).Seconds())
}

// operatorNS and operatorSelector are config/manager's namespace and its
// Deployment's selector.
const operatorNS = "slmops-system"

var operatorSelector = map[string]string{"app.kubernetes.io/name": "slmops", "app.kubernetes.io/component": "manager"}

// readTree adds the files under dir to files, keyed by prefix and their
// path below dir.
func readTree(dir, prefix string, files map[string]string) error {
	return filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[prefix+"/"+filepath.ToSlash(rel)] = string(data)
		return nil
	})
}

// shippedKustomization is the Flux Kustomization of config/gitops/flux/file
// for the test's namespace and GitRepository, with the test's short
// intervals; edit changes its spec further.
func shippedKustomization(t *testing.T, file, ns string, edit func(spec map[string]any)) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "gitops", "flux", file))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &u.Object); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if u.GetKind() != "Kustomization" {
		t.Fatalf("%s holds a %s, not a Flux Kustomization", file, u.GetKind())
	}
	u.SetNamespace(ns)
	spec, _, _ := unstructured.NestedMap(u.Object, "spec")
	spec["sourceRef"] = map[string]any{"kind": "GitRepository", "name": "fleet"}
	spec["interval"], spec["retryInterval"] = "1m", "5s"
	edit(spec)
	if err := unstructured.SetNestedMap(u.Object, spec, "spec"); err != nil {
		t.Fatal(err)
	}
	return u
}

// deleteKustomization deletes a Kustomization and waits until Flux has
// pruned what it applied and let it go.
func deleteKustomization(t *testing.T, dc dynamic.Interface, ns, name string) {
	t.Helper()
	_ = dc.Resource(kustomizationGVR).Namespace(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
	waitGone(t, func() error {
		_, err := dc.Resource(kustomizationGVR).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
		return err
	})
}

// fluxModel is the fleet's SLMModel, as config/samples has it, served by
// the test's origin.
func fluxModel(url, digest string, size int) string {
	return fmt.Sprintf(`apiVersion: slmops.dev/v1alpha1
kind: SLMModel
metadata:
  name: tinyllama
spec:
  source:
    http:
      url: %s
      allowInsecureHTTP: true
  digest: %s
  format: GGUF
  quantization: Q8_0
  sizeBytes: %d
`, url, digest, size)
}

// fluxRollout is the fleet's EdgeRollout: config/samples's, on the chosen
// nodes, with steps short enough for a test.
func fluxRollout(name string, nodes []string) string {
	return fmt.Sprintf(`apiVersion: slmops.dev/v1alpha1
kind: EdgeRollout
metadata:
  name: %s
spec:
  modelRef:
    name: tinyllama
  nodeSelector:
    matchExpressions:
    - key: kubernetes.io/hostname
      operator: In
      values: [%s]
  template:
    image: registry.invalid/inferd:v1
  strategy:
    canary:
      steps:
      - nodes: "25%%"
      - nodes: "100%%"
      maxUnavailable: "25%%"
      minReadySeconds: 1
      progressDeadlineSeconds: 60
      topologyKey: topology.kubernetes.io/zone
  analysis:
    successRatio: "1"
    maxFailedNodes: 0
  distribution:
    staging:
      lookaheadSteps: 1
      maxConcurrentNodes: 4
  rollbackPolicy: Automatic
`, name, strings.Join(nodes, ", "))
}

// fluxSource is config/gitops/flux's source.yaml for the test's namespace
// (%[1]s) and Git server: a short interval.
const fluxSource = `apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: fleet
  namespace: %[1]s
spec:
  interval: 1m
  timeout: 20s
  url: %[2]s
  ref:
    branch: main
`

// kustomizationWatch reads one of the test's Kustomizations and the rollout
// it applies, if any.
type kustomizationWatch struct {
	t       *testing.T
	dc      dynamic.Interface
	c       client.Client
	ns      string
	name    string
	rollout string
	// notReadyWhileProgressing records that, since the last wait began, a
	// poll saw the rollout progressing and then the Kustomization not Ready.
	notReadyWhileProgressing bool
}

// requestReconcile asks source-controller to fetch the repository now, as
// `flux reconcile source git` does, rather than at its next interval.
func (k *kustomizationWatch) requestReconcile() {
	k.t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"reconcile.fluxcd.io/requestedAt":%q}}}`, time.Now().Format(time.RFC3339Nano))
	if _, err := k.dc.Resource(gitRepositoryGVR).Namespace(k.ns).Patch(context.Background(), "fleet", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		k.t.Fatal(err)
	}
}

// kustomizationStatus is what the test reads of the Kustomization's status.
type kustomizationStatus struct {
	// status, reason and message are the Ready condition's.
	status, reason, message string
	// applied and attempted are the last applied and attempted revisions
	// ("main@sha1:<commit>").
	applied, attempted string
}

// ready reads the Kustomization's status.
func (k *kustomizationWatch) ready(g Gomega) kustomizationStatus {
	u, err := k.dc.Resource(kustomizationGVR).Namespace(k.ns).Get(context.Background(), k.name, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	var s kustomizationStatus
	s.applied, _, _ = unstructured.NestedString(u.Object, "status", "lastAppliedRevision")
	s.attempted, _, _ = unstructured.NestedString(u.Object, "status", "lastAttemptedRevision")
	conditions, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conditions {
		m, _ := c.(map[string]any)
		if m["type"] == "Ready" {
			s.status, _ = m["status"].(string)
			s.reason, _ = m["reason"].(string)
			s.message, _ = m["message"].(string)
		}
	}
	return s
}

// waitReadyAt waits until the Kustomization is Ready with commit applied.
// Every poll that finds it Ready at that commit finds the rollout (read
// after it) Completed at the current generation: Flux's kstatus health
// check never calls a rollout in progress healthy.
func (k *kustomizationWatch) waitReadyAt(commit string, timeout time.Duration) {
	k.t.Helper()
	k.notReadyWhileProgressing = false
	NewWithT(k.t).Eventually(func(g Gomega) {
		r := &slmopsv1alpha1.EdgeRollout{}
		key := types.NamespacedName{Namespace: k.ns, Name: k.rollout}
		progressing := k.rollout != "" && k.c.Get(context.Background(), key, r) == nil && rolloutMoving(r)
		s := k.ready(g)
		if progressing && s.status != "True" {
			k.notReadyWhileProgressing = true
		}
		g.Expect(s.status).To(Equal("True"), "Ready %s: %s", s.reason, s.message)
		g.Expect(s.applied).To(HaveSuffix(commit), "last applied revision")
		if k.rollout == "" {
			return
		}
		g.Expect(k.c.Get(context.Background(), key, r)).To(Succeed())
		if r.Status.Phase != slmopsv1alpha1.PhaseCompleted || r.Status.ObservedGeneration != r.Generation {
			// StopTrying: a Ready Kustomization with a rollout in progress
			// is the bug this test is for.
			StopTrying(fmt.Sprintf("the Kustomization is Ready at %s while the rollout is %s (observed generation %d of %d)",
				commit, r.Status.Phase, r.Status.ObservedGeneration, r.Generation)).Now()
		}
	}).WithTimeout(timeout).WithPolling(250 * time.Millisecond).Should(Succeed())
}

// rolloutMoving reports whether the rollout is moving to a new revision.
func rolloutMoving(r *slmopsv1alpha1.EdgeRollout) bool {
	return r.Status.ObservedGeneration != r.Generation ||
		(r.Status.Phase != slmopsv1alpha1.PhaseCompleted && r.Status.Phase != slmopsv1alpha1.PhaseRolledBack)
}

// waitFailedAt waits until the Kustomization failed its health check at
// commit, and returns the Ready condition's message.
func (k *kustomizationWatch) waitFailedAt(commit string, timeout time.Duration) string {
	k.t.Helper()
	var msg string
	NewWithT(k.t).Eventually(func(g Gomega) {
		s := k.ready(g)
		g.Expect(s.attempted).To(HaveSuffix(commit), "last attempted revision")
		g.Expect(s.status).To(Equal("False"), "Ready %s: %s", s.reason, s.message)
		g.Expect(s.reason).To(Equal("HealthCheckFailed"), s.message)
		msg = s.message
	}).WithTimeout(timeout).WithPolling(250 * time.Millisecond).Should(Succeed())
	return msg
}

// waitGone waits up to a minute until get returns NotFound.
func waitGone(t *testing.T, get func() error) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if apierrors.IsNotFound(get()) {
			return
		}
	}
	t.Errorf("still there a minute after its deletion: %v", get())
}

// serve serves h on a free local port until the test ends and returns its
// base URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// gitRepository is a Git repository served over smart HTTP by git's own
// http-backend, through net/http/cgi: what source-controller clones, with
// no Git server library in the project's go.mod.
type gitRepository struct {
	// work is the clone the test commits in and pushes from.
	work string
	// url is the served repository's clone URL.
	url string
}

func serveGitRepository(t *testing.T) *gitRepository {
	t.Helper()
	root := t.TempDir()
	bare := filepath.Join(root, "fleet.git")
	git(t, root, "init", "--quiet", "--bare", "--initial-branch=main", bare)
	work := filepath.Join(root, "work")
	git(t, root, "init", "--quiet", "--initial-branch=main", work)
	git(t, work, "remote", "add", "origin", bare)
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	base := serve(t, &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"},
	})
	return &gitRepository{work: work, url: base + "/fleet.git"}
}

// commit writes files (paths relative to the repository), commits them
// and pushes; it returns the commit's hash.
func (r *gitRepository) commit(t *testing.T, message string, files map[string]string) string {
	t.Helper()
	for path, content := range files {
		full := filepath.Join(r.work, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, r.work, "add", "--all")
	git(t, r.work, "commit", "--quiet", "-m", message)
	return r.push(t)
}

// revert commits the revert of the last commit and pushes it.
func (r *gitRepository) revert(t *testing.T) string {
	t.Helper()
	git(t, r.work, "revert", "--no-edit", "HEAD")
	return r.push(t)
}

func (r *gitRepository) push(t *testing.T) string {
	t.Helper()
	git(t, r.work, "push", "--quiet", "origin", "main")
	return strings.TrimSpace(git(t, r.work, "rev-parse", "HEAD"))
}

// git runs git in dir with no user or system configuration.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=slmops e2e", "GIT_AUTHOR_EMAIL=e2e@slmops.invalid",
		"GIT_COMMITTER_NAME=slmops e2e", "GIT_COMMITTER_EMAIL=e2e@slmops.invalid")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// fluxBinaries is the folder that hack/build-flux.sh built (SLMOPS_FLUX, as
// the Makefile sets it, or bin/flux-current); without it the test skips
// loudly.
func fluxBinaries(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SLMOPS_FLUX")
	if dir == "" {
		dir = filepath.Join(testenv.RepoRoot(), "bin", "flux-current")
	}
	for _, b := range []string{"source-controller", "kustomize-controller"} {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.Mode()&0o111 == 0 {
			skip.Because(t, "Flux reconciling a rollout from Git (health checks, canary, failure, revert): no "+b+" in "+dir, "make flux")
		}
	}
	return dir
}

// fluxControllers are source-controller and kustomize-controller, running
// as processes against the suite's cluster with their CRDs installed.
type fluxControllers struct {
	t    *testing.T
	logs map[string]*testenv.SyncBuffer
}

// startFlux installs Flux's CRDs (from dir/crds) and starts both
// controllers; they are tracked as the cluster's processes, so that the
// cluster's Down stops them if the test cannot, and stopped when the test
// ends.
func startFlux(t *testing.T, dir, ns string) *fluxControllers {
	t.Helper()
	ctx := context.Background()
	crds, err := filepath.Glob(filepath.Join(dir, "crds", "*.yaml"))
	if err != nil || len(crds) == 0 {
		t.Fatalf("no Flux CRDs in %s/crds: %v", dir, err)
	}
	for _, f := range crds {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := cluster.Apply(ctx, data); err != nil {
			t.Fatalf("install %s: %v", filepath.Base(f), err)
		}
	}
	storage := freeAddr(t)
	f := &fluxControllers{t: t, logs: map[string]*testenv.SyncBuffer{}}
	f.start("source-controller", filepath.Join(dir, "source-controller"), ns,
		"--storage-path="+t.TempDir(), "--storage-addr="+storage, "--storage-adv-addr="+storage)
	f.start("kustomize-controller", filepath.Join(dir, "kustomize-controller"), ns)
	t.Cleanup(f.logOnFailure) // before they stop
	return f
}

func (f *fluxControllers) start(name, bin, ns string, args ...string) {
	f.t.Helper()
	logs := &testenv.SyncBuffer{}
	f.logs[name] = logs
	cmd := exec.Command(bin, append([]string{
		"--enable-leader-election=false", "--watch-all-namespaces=true", "--log-level=debug",
		"--metrics-addr=" + freeAddr(f.t), "--health-addr=" + freeAddr(f.t),
	}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig, "RUNTIME_NAMESPACE="+ns)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		f.t.Fatalf("start %s: %v", name, err)
	}
	tracked := "flux-" + name
	if err := cluster.TrackProcess(tracked, cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		f.t.Fatal(err)
	}
	go func() { _ = cmd.Wait() }()
	f.t.Cleanup(func() {
		if err := cluster.StopProcess(tracked); err != nil {
			f.t.Errorf("stop %s: %v", name, err)
		}
	})
}

// logOnFailure prints the end of both controllers' logs if the test failed.
func (f *fluxControllers) logOnFailure() {
	if !f.t.Failed() {
		return
	}
	for name, logs := range f.logs {
		f.t.Logf("%s log (end):\n%s", name, tail(logs.String(), 8000))
	}
}
