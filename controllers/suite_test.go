package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/controllers"
	"github.com/slmops/slmops/controllers/edgerollout"
	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/test/testenv"
)

// env is a real API server (envtest) with the controllers of this repository
// running in a manager, as cmd/manager wires them. It has no kubelets and no
// DaemonSet controller: these tests check what the operator writes; the e2e
// suite checks what the cluster then does.
var env *testenv.Env

// mgr is the manager the controllers run in.
var mgr ctrl.Manager

func TestMain(m *testing.M) {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "envtest: %v\n", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err = ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  env.Scheme,
		Cache:   controllers.CacheOptions(),
		Metrics: metricsserver.Options{BindAddress: "0"},
	})
	if err == nil {
		// Reports on, as the chart installs the operator: pods report only
		// in namespaces with the inferd ServiceAccount. The safety-net
		// resync is an hour, longer than any test here: what they see the
		// controller do, it did on watch events.
		err = controllers.SetupWithManager(mgr, controllers.Options{Defaults: edgerollout.Defaults{InferdReports: true}, Resync: time.Hour})
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "manager: %v\n", err)
		os.Exit(1)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintf(os.Stderr, "manager: %v\n", err)
	}
	_ = env.Stop()
	os.Exit(code)
}

func namespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ctrl-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func model(ns string) *slmopsv1alpha1.SLMModel {
	return &slmopsv1alpha1.SLMModel{
		ObjectMeta: metav1.ObjectMeta{Name: "tinyllama", Namespace: ns},
		Spec: slmopsv1alpha1.SLMModelSpec{
			Source:       slmopsv1alpha1.ModelSource{HTTP: &slmopsv1alpha1.HTTPSource{URL: "https://models.example.com/t.gguf", SecretRef: &slmopsv1alpha1.LocalObjectReference{Name: "hub-token"}}},
			Digest:       fmt.Sprintf("sha256:%064x", 42),
			Quantization: slmopsv1alpha1.QuantizationQ4_0,
			Variants: []slmopsv1alpha1.ModelVariant{{
				Name: "amd64", NodeSelector: slmopsv1alpha1.NodeSelector{MatchLabels: map[string]string{"kubernetes.io/arch": "amd64"}},
				Source: slmopsv1alpha1.ModelSource{HTTP: &slmopsv1alpha1.HTTPSource{URL: "https://models.example.com/t8.gguf"}},
				Digest: fmt.Sprintf("sha256:%064x", 43), Quantization: slmopsv1alpha1.QuantizationQ8_0,
			}},
		},
	}
}

// readyNodes makes n Ready nodes that rollout's selector in ns picks.
func readyNodes(t *testing.T, ns string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-node-%d", ns, i), Labels: map[string]string{"ctrl-test": ns}}}
		if err := env.Client.Create(ctx, node); err != nil {
			t.Fatal(err)
		}
		node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
		if err := env.Client.Status().Update(ctx, node); err != nil {
			t.Fatal(err)
		}
	}
}

func rollout(ns, name string) *slmopsv1alpha1.EdgeRollout {
	return &slmopsv1alpha1.EdgeRollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: slmopsv1alpha1.EdgeRolloutSpec{
			ModelRef:     slmopsv1alpha1.LocalObjectReference{Name: "tinyllama"},
			NodeSelector: &slmopsv1alpha1.NodeSelector{MatchLabels: map[string]string{"ctrl-test": ns}},
		},
	}
}

// TestSLMModelStatus: the model reports its pinned artifacts and how many
// rollouts use it, and is Ready; it is Reconciling while its rollouts, which
// have observed its generation, have not settled (these select no node).
func TestSLMModelStatus(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t)
	g.Expect(env.Client.Create(ctx, model(ns))).To(Succeed())
	g.Expect(env.Client.Create(ctx, rollout(ns, "a"))).To(Succeed())
	g.Expect(env.Client.Create(ctx, rollout(ns, "b"))).To(Succeed())
	g.Eventually(func(g Gomega) {
		m := &slmopsv1alpha1.SLMModel{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "tinyllama"}, m)).To(Succeed())
		g.Expect(m.Status.Rollouts).To(BeEquivalentTo(2))
		g.Expect(m.Status.Digest).To(Equal(m.Spec.Digest))
		g.Expect(m.Status.Artifacts).To(HaveLen(2))
		g.Expect(m.Status.Artifacts[1].Variant).To(Equal("amd64"))
		g.Expect(meta.IsStatusConditionTrue(m.Status.Conditions, slmopsv1alpha1.ConditionReady)).To(BeTrue())
		reconciling := meta.FindStatusCondition(m.Status.Conditions, slmopsv1alpha1.ConditionReconciling)
		g.Expect(reconciling).NotTo(BeNil())
		g.Expect(reconciling.Reason).To(Equal(slmopsv1alpha1.ReasonRolloutsPending))
		for _, name := range []string{"a", "b"} {
			r := &slmopsv1alpha1.EdgeRollout{}
			g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, r)).To(Succeed())
			g.Expect(r.Status.ObservedModelGeneration).To(Equal(m.Generation), "rollout %s", name)
		}
	}).WithTimeout(20 * time.Second).Should(Succeed())
}

// TestRolloutWithoutModelIsPending: a rollout whose SLMModel does not exist
// says so, and goes on once the model appears (here to NoTargetNodes: its
// selector matches no node, and a rollout is never Completed on zero nodes).
func TestRolloutWithoutModelIsPending(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t)
	r := rollout(ns, "waiting")
	g.Expect(env.Client.Create(ctx, r)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(r), r)).To(Succeed())
		g.Expect(r.Status.Phase).To(Equal(slmopsv1alpha1.PhasePending))
		c := meta.FindStatusCondition(r.Status.Conditions, slmopsv1alpha1.ConditionReconciling)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal("ModelNotFound"))
	}).WithTimeout(20 * time.Second).Should(Succeed())
	g.Expect(env.Client.Create(ctx, model(ns))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(r), r)).To(Succeed())
		g.Expect(r.Status.Phase).To(Equal(slmopsv1alpha1.PhaseProgressing))
		g.Expect(r.Status.CanaryRevision).NotTo(BeEmpty())
		g.Expect(r.Status.StableRevision).To(BeEmpty())
		g.Expect(r.Status.TargetNodes).To(BeZero())
		c := meta.FindStatusCondition(r.Status.Conditions, slmopsv1alpha1.ConditionReconciling)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal("NoTargetNodes"))
	}).WithTimeout(20 * time.Second).Should(Succeed())
}

// TestRolloutDaemonSetIsSecureAndOwned: what the operator creates for a
// revision: an owned, labelled DaemonSet whose pods run inferd locked down,
// with the model's configuration and its secret kept out of the spec, on the
// nodes whose cohort label names the revision; and the first cohort labelled.
func TestRolloutDaemonSetIsSecureAndOwned(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t)
	readyNodes(t, ns, 3)
	g.Expect(env.Client.Create(ctx, model(ns))).To(Succeed())
	r := rollout(ns, "stores")
	g.Expect(env.Client.Create(ctx, r)).To(Succeed())

	// One DaemonSet per artifact: the default file on the nodes that no
	// variant matches, the amd64 variant's file on amd64 nodes.
	var ds, variant appsv1.DaemonSet
	g.Eventually(func(g Gomega) {
		var list appsv1.DaemonSetList
		g.Expect(env.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(2))
		for _, d := range list.Items {
			switch d.Labels[slmopsv1alpha1.VariantLabel] {
			case slmopsv1alpha1.DefaultVariant:
				ds = d
			case "amd64":
				variant = d
			}
		}
		g.Expect(ds.Name).NotTo(BeEmpty())
		g.Expect(variant.Name).NotTo(BeEmpty())
	}).WithTimeout(20 * time.Second).Should(Succeed())
	arch := func(d appsv1.DaemonSet) corev1.NodeSelectorRequirement {
		terms := d.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		g.Expect(terms).To(HaveLen(1))
		g.Expect(terms[0].MatchExpressions).To(HaveLen(1))
		return terms[0].MatchExpressions[0]
	}
	g.Expect(arch(variant)).To(Equal(corev1.NodeSelectorRequirement{Key: "kubernetes.io/arch", Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}}))
	g.Expect(arch(ds)).To(Equal(corev1.NodeSelectorRequirement{Key: "kubernetes.io/arch", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"amd64"}}))
	for _, e := range variant.Spec.Template.Spec.Containers[0].Env {
		if e.Name == config.EnvConfig {
			var vc config.Config
			g.Expect(json.Unmarshal([]byte(e.Value), &vc)).To(Succeed())
			g.Expect(vc.Model.Digest).To(Equal(fmt.Sprintf("sha256:%064x", 43)))
			g.Expect(vc.Model.URL).To(Equal("https://models.example.com/t8.gguf"))
		}
		g.Expect(e.Name).NotTo(Equal(config.EnvAuthorization), "the variant's source has no secret")
	}
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(r), r)).To(Succeed())
	rev := r.Status.CanaryRevision
	g.Expect(metav1.IsControlledBy(&ds, r)).To(BeTrue())
	g.Expect(ds.Labels).To(And(
		HaveKeyWithValue(slmopsv1alpha1.ManagedByLabel, slmopsv1alpha1.ManagedByValue),
		HaveKeyWithValue(slmopsv1alpha1.RolloutLabel, "stores"),
		HaveKeyWithValue(slmopsv1alpha1.RevisionLabel, rev),
	))
	pod := ds.Spec.Template.Spec
	g.Expect(pod.NodeSelector).To(Equal(map[string]string{slmopsv1alpha1.CohortLabel(ns, "stores"): rev}))
	g.Expect(*pod.SecurityContext.RunAsNonRoot).To(BeTrue())
	g.Expect(pod.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
	g.Expect(*pod.AutomountServiceAccountToken).To(BeFalse())
	c := pod.Containers[0]
	g.Expect(*c.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
	g.Expect(*c.SecurityContext.AllowPrivilegeEscalation).To(BeFalse())
	g.Expect(c.SecurityContext.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
	g.Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))

	vars := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		vars[e.Name] = e
	}
	var cfg config.Config
	g.Expect(json.Unmarshal([]byte(vars[config.EnvConfig].Value), &cfg)).To(Succeed())
	g.Expect(cfg.Validate()).To(Succeed())
	g.Expect(cfg.Model.Digest).To(Equal(fmt.Sprintf("sha256:%064x", 42)))
	g.Expect(cfg.Port).To(BeEquivalentTo(8080))
	// The source's token comes from its Secret at run time, never from the spec.
	g.Expect(vars[config.EnvAuthorization].ValueFrom.SecretKeyRef.Name).To(Equal("hub-token"))
	g.Expect(vars[config.EnvAuthorization].Value).To(BeEmpty())

	// Step 1 (10% of 3 nodes, rounded up) labels one node with the revision.
	g.Eventually(func() int {
		var nodes corev1.NodeList
		_ = env.Client.List(ctx, &nodes, client.MatchingLabels{slmopsv1alpha1.CohortLabel(ns, "stores"): rev})
		return len(nodes.Items)
	}).WithTimeout(20 * time.Second).Should(Equal(1))

	// Each stage of those reconciles was timed, under its name (the
	// reconcile that labelled the node may still be in its last stages).
	g.Eventually(func(g Gomega) {
		stages := map[string]uint64{}
		families, err := metrics.Registry.Gather()
		g.Expect(err).NotTo(HaveOccurred())
		for _, f := range families {
			if f.GetName() != "slmops_rollout_reconcile_stage_duration_seconds" {
				continue
			}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "stage" {
						stages[l.GetValue()] += m.GetHistogram().GetSampleCount()
					}
				}
			}
		}
		g.Expect(edgerollout.ReconcileStages()).To(ContainElements("observe", "decide", "record", "PatchLabels", "report"))
		for _, st := range edgerollout.ReconcileStages() {
			g.Expect(stages).To(HaveKeyWithValue(st, BeNumerically(">", 0)), "stage %s timed", st)
		}
	}).WithTimeout(20 * time.Second).Should(Succeed())

	// Deleting the rollout removes the label from the nodes (its finalizer).
	g.Expect(env.Client.Delete(ctx, r)).To(Succeed())
	g.Eventually(func() int {
		var nodes corev1.NodeList
		_ = env.Client.List(ctx, &nodes, client.HasLabels{slmopsv1alpha1.CohortLabel(ns, "stores")})
		return len(nodes.Items)
	}).WithTimeout(20 * time.Second).Should(Equal(0))
}

// TestAFailedActStepIsACondition: when the operator cannot write what it
// decided (here the cache pins: a ConfigMap of that name exists and belongs
// to no rollout), the rollout says so in its Applied condition, names the
// step, makes no DaemonSet (the steps after it rely on it), and recovers once
// the obstacle is gone.
func TestAFailedActStepIsACondition(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t)
	squatter := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: slmopsv1alpha1.CacheConfigMapName("stores"), Namespace: ns},
		Data:       map[string]string{"someone": "else"},
	}
	g.Expect(env.Client.Create(ctx, squatter)).To(Succeed())
	g.Expect(env.Client.Create(ctx, model(ns))).To(Succeed())
	r := rollout(ns, "stores")
	g.Expect(env.Client.Create(ctx, r)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(r), r)).To(Succeed())
		c := meta.FindStatusCondition(r.Status.Conditions, slmopsv1alpha1.ConditionApplied)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal("PinCacheFailed"))
		g.Expect(c.Message).To(ContainSubstring("is not this rollout's"))
	}).WithTimeout(20 * time.Second).Should(Succeed())
	var list appsv1.DaemonSetList
	g.Expect(env.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	g.Expect(list.Items).To(BeEmpty(), "a DaemonSet was made though the cache pins could not be written")

	g.Expect(env.Client.Delete(ctx, squatter)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(r), r)).To(Succeed())
		c := meta.FindStatusCondition(r.Status.Conditions, slmopsv1alpha1.ConditionApplied)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.Reason).To(Equal(slmopsv1alpha1.ReasonApplied))
		g.Expect(env.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).NotTo(BeEmpty())
	}).WithTimeout(30 * time.Second).Should(Succeed())
}

// TestServingPodsReportWhereTheServiceAccountIs: in a namespace where the
// installer made the inferd ServiceAccount, the serving DaemonSet's pods run
// as it with its token and their own name, to write their self-test report;
// everything else of the locked-down shape stays (the test above asserts
// no token in a namespace without it).
func TestServingPodsReportWhereTheServiceAccountIs(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t)
	g.Expect(env.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: slmopsv1alpha1.InferdServiceAccount, Namespace: ns}})).To(Succeed())
	g.Expect(env.Client.Create(ctx, model(ns))).To(Succeed())
	g.Expect(env.Client.Create(ctx, rollout(ns, "stores"))).To(Succeed())
	var list appsv1.DaemonSetList
	g.Eventually(func(g Gomega) {
		g.Expect(env.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(2))
	}).WithTimeout(20 * time.Second).Should(Succeed())
	for _, ds := range list.Items {
		pod := ds.Spec.Template.Spec
		g.Expect(pod.ServiceAccountName).To(Equal(slmopsv1alpha1.InferdServiceAccount), ds.Name)
		g.Expect(pod.AutomountServiceAccountToken).To(HaveValue(BeTrue()), ds.Name)
		g.Expect(*pod.SecurityContext.RunAsNonRoot).To(BeTrue())
		c := pod.Containers[0]
		g.Expect(*c.SecurityContext.AllowPrivilegeEscalation).To(BeFalse())
		g.Expect(*c.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
		vars := map[string]corev1.EnvVar{}
		for _, e := range c.Env {
			vars[e.Name] = e
		}
		g.Expect(vars[config.EnvPodName].ValueFrom.FieldRef.FieldPath).To(Equal("metadata.name"))
		g.Expect(vars[config.EnvPodNamespace].ValueFrom.FieldRef.FieldPath).To(Equal("metadata.namespace"))
		var cfg config.Config
		g.Expect(json.Unmarshal([]byte(vars[config.EnvConfig].Value), &cfg)).To(Succeed())
		g.Expect(cfg.Report.Enabled).To(BeTrue())
	}
}

// TestAReadyPodPromotesTheStep: the step ends when its last pod gets Ready,
// on that pod's watch event: the manager here re-reads a rollout only every
// hour, and the pods are made Ready after every write of the operator's has
// settled, so no requeue and no event of its own can be what moves it. There
// is no DaemonSet controller here; the test makes each pod as the DaemonSet
// would, on the nodes the operator labelled.
func TestAReadyPodPromotesTheStep(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t)
	readyNodes(t, ns, 2)
	g.Expect(env.Client.Create(ctx, model(ns))).To(Succeed())
	r := rollout(ns, "stores")
	r.Spec.Strategy.Canary.Steps = []slmopsv1alpha1.CanaryStep{{Nodes: intstr.FromString("50%")}, {Nodes: intstr.FromString("100%")}}
	r.Spec.Strategy.Canary.MinReadySeconds = ptr.To[int32](0)
	g.Expect(env.Client.Create(ctx, r)).To(Succeed())
	cohort := slmopsv1alpha1.CohortLabel(ns, "stores")

	// readyPod makes the serving pod of the revision's DaemonSet on node,
	// first not Ready; once the operator's status has stopped changing, it
	// makes the pod Ready.
	readyPod := func(node string) {
		var ds appsv1.DaemonSet
		g.Eventually(func(g Gomega) {
			var list appsv1.DaemonSetList
			g.Expect(env.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{slmopsv1alpha1.VariantLabel: slmopsv1alpha1.DefaultVariant})).To(Succeed())
			g.Expect(list.Items).To(HaveLen(1))
			ds = list.Items[0]
		}).WithTimeout(20 * time.Second).Should(Succeed())
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: ds.Name + "-" + node, Namespace: ns, Labels: ds.Spec.Template.Labels,
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(&ds, appsv1.SchemeGroupVersion.WithKind("DaemonSet"))}},
			Spec: *ds.Spec.Template.Spec.DeepCopy(),
		}
		pod.Spec.NodeName = node
		g.Expect(env.Client.Create(ctx, pod)).To(Succeed())
		// Settled: the status has not changed for twice the pace of the
		// count-only writes, so any requeue of the operator's has run.
		var last string
		g.Eventually(func() bool {
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(r), r)).To(Succeed())
			settled := r.ResourceVersion == last
			last = r.ResourceVersion
			return settled
		}).WithPolling(11 * time.Second).WithTimeout(time.Minute).Should(BeTrue())
		g.Expect(r.Status.Phase).To(Equal(slmopsv1alpha1.PhaseProgressing), "the step moved before its pod was Ready")
		pod.Status.Phase = corev1.PodRunning
		pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
		g.Expect(env.Client.Status().Update(ctx, pod)).To(Succeed())
	}
	labelled := func() []string {
		var nodes corev1.NodeList
		g.Expect(env.Client.List(ctx, &nodes, client.HasLabels{cohort})).To(Succeed())
		var out []string
		for _, n := range nodes.Items {
			out = append(out, n.Name)
		}
		return out
	}

	g.Eventually(labelled).WithTimeout(20 * time.Second).Should(HaveLen(1))
	first := labelled()[0]
	readyPod(first)
	g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(r), r)).To(Succeed())
		g.Expect(r.Status.CurrentStep).To(BeEquivalentTo(1))
		g.Expect(labelled()).To(HaveLen(2))
	}).WithTimeout(30*time.Second).Should(Succeed(), "the Ready pod did not promote step 1")

	second := labelled()[0]
	if second == first {
		second = labelled()[1]
	}
	readyPod(second)
	g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(r), r)).To(Succeed())
		g.Expect(r.Status.Phase).To(Equal(slmopsv1alpha1.PhaseCompleted))
	}).WithTimeout(30*time.Second).Should(Succeed(), "the Ready pod did not complete the rollout")
}
