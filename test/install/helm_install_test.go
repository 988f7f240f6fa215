package install

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/test/testenv"
)

// managerSelector is the chart's selector of its manager pods (checked
// against the Deployment by the tests that install it).
var managerSelector = map[string]string{"app.kubernetes.io/name": "slmops", "app.kubernetes.io/instance": release,
	"app.kubernetes.io/component": "manager"}

const (
	release   = "slmops"
	releaseNS = "slmops-system"
	managerSA = "slmops-manager"
)

// TestChartInstallsUpgradesAndUninstalls installs the chart with helm (two
// replicas), checks what its ServiceAccount may and may not do, runs the
// Deployment's pods as real manager processes on the simulated nodes (its
// args, its ServiceAccount's bound token, its probes, its user), which
// complete the sample rollout of config/samples. Then it upgrades the
// release with other values, whose three pods roll the new inferd image
// out, and uninstalls it. TestManagerPodFailover kills the leader of such
// pods.
func TestChartInstallsUpgradesAndUninstalls(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	managers, out := installWithManagerPods(t, "the chart installed, upgraded and uninstalled with its manager Deployment run as its own pods")
	g.Expect(out).To(ContainSubstring("rollout status deployment/slmops-manager"), "NOTES.txt tells the next step")
	dep, err := cluster.Clientset.AppsV1().Deployments(releaseNS).Get(ctx, "slmops-manager", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dep.Spec.Selector.MatchLabels).To(Equal(managerSelector))

	t.Run("RBAC", func(t *testing.T) { checkManagerRBAC(t, releaseNS, managerSA) })
	t.Run("admission policies", func(t *testing.T) { checkManagerPolicy(t, releaseNS, managerSA) })

	// Under the admission policies too: the managers' logs would show any
	// request they denied.
	for _, p := range managers.WaitReady(2) {
		uid, err := testenv.ProcessUID(testenv.PodPID(&p))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(uid).To(Equal("65532"), "the manager of pod %s runs as the chart's user", p.Name)
	}
	completeSampleRollout(t, "stores")

	// Upgrade: other values reach the Deployment; what the new values no
	// longer render (the metrics RBAC, the editor roles) is gone.
	out, err = helm("upgrade", release, chartDir, "--namespace", releaseNS, "--wait=false",
		"--set", "replicaCount=3", "--set", "inferd.image.tag=v0.2.0", "--set", "metrics.secure=false",
		"--set", "rbac.aggregateToDefaultRoles=false")
	g.Expect(err).NotTo(HaveOccurred(), out)
	dep, err = cluster.Clientset.AppsV1().Deployments(releaseNS).Get(ctx, "slmops-manager", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*dep.Spec.Replicas).To(BeEquivalentTo(3))
	g.Expect(dep.Spec.Template.Spec.Containers[0].Args).To(ContainElements("--inferd-image=ghcr.io/slmops/inferd:v0.2.0", "--metrics-secure=false"))
	for _, name := range []string{"slmops-metrics-auth", "slmops-metrics-reader", "slmops-editor", "slmops-viewer"} {
		_, err := cluster.Clientset.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "ClusterRole %s outlived the upgrade that stopped rendering it: %v", name, err)
	}
	// The upgraded managers run: their new inferd image is a new revision
	// of the sample rollout, which they take to Completed.
	managers.WaitReady(3)
	c := kube(t)
	sample := func(g Gomega) slmopsv1alpha1.EdgeRolloutStatus {
		var r slmopsv1alpha1.EdgeRollout
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "stores", Name: "tinyllama-stores"}, &r)).To(Succeed())
		return r.Status
	}
	g.Eventually(func(g Gomega) string { return sample(g).CanaryRevision }).WithTimeout(time.Minute).
		ShouldNot(BeEmpty(), "a canary of the upgrade's inferd image")
	canary := sample(g).CanaryRevision
	completeSampleRollout(t, "stores")
	g.Expect(sample(g).StableRevision).To(Equal(canary))

	// Uninstall: nothing of the release is left but the CRDs (kept on
	// purpose), and the models and rollouts in them are untouched. The
	// managers stop before their RBAC goes.
	g.Expect(managers.Stop()).To(Succeed())
	out, err = helm("uninstall", release, "--namespace", releaseNS, "--wait")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(leftovers(t, release)).To(BeEmpty(), "objects of the release after helm uninstall")
	for _, crd := range []string{"edgerollouts.slmops.dev", "slmmodels.slmops.dev"} {
		_, err := kubectl("get", "crd", crd)
		g.Expect(err).NotTo(HaveOccurred(), "the CRD %s was deleted; crds.keep should have kept it", crd)
	}
	g.Expect(sample(g).Phase).To(Equal(slmopsv1alpha1.PhaseCompleted))
}

// installWithManagerPods runs the chart's manager pods as real processes
// (testenv.ManagerPods; without root the test skips, saying it did not
// check notChecked), helm-installs the chart with two replicas and waits
// for its CRDs; it returns the pods and helm's output.
func installWithManagerPods(t *testing.T, notChecked string) (*testenv.ManagerPods, string) {
	t.Helper()
	managers := testenv.RunManagerPods(t, cluster, releaseNS, managerSelector, managerBin, notChecked)
	out, err := helm("install", release, chartDir, "--namespace", releaseNS, "--create-namespace", "--wait=false",
		"--set", "replicaCount=2")
	if err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	if err := testenv.WaitForCRDs(context.Background(), cluster); err != nil {
		t.Fatal(err)
	}
	return managers, out
}

// checkManagerRBAC asks the API server what the manager's ServiceAccount may
// do: everything the controllers need, and a sample of what they must not.
func checkManagerRBAC(t *testing.T, ns, sa string) {
	t.Helper()
	as := "--as=system:serviceaccount:" + ns + ":" + sa
	for _, allowed := range [][]string{
		{"list", "edgerollouts.slmops.dev", "--all-namespaces"},
		{"watch", "slmmodels.slmops.dev", "--all-namespaces"},
		{"patch", "edgerollouts.slmops.dev", "--subresource=status", "-n", "stores"},
		{"update", "edgerollouts.slmops.dev", "--subresource=finalizers", "-n", "stores"},
		{"patch", "slmmodels.slmops.dev", "--subresource=status", "-n", "stores"},
		{"create", "daemonsets.apps", "-n", "stores"},
		{"delete", "daemonsets.apps", "-n", "stores"},
		{"list", "pods", "--all-namespaces"},
		{"patch", "nodes"},
		{"create", "events.events.k8s.io", "-n", "stores"},
		{"update", "leases.coordination.k8s.io", "-n", ns},
		{"create", "events", "-n", ns},
	} {
		if out, err := kubectl(append([]string{"auth", "can-i", as}, allowed...)...); err != nil || answer(out) != "yes" {
			t.Errorf("the manager may not %v: %s %v", allowed, strings.TrimSpace(out), err)
		}
	}
	for _, denied := range [][]string{
		{"get", "secrets", "--all-namespaces"},
		{"get", "secrets", "-n", ns},
		{"create", "pods", "-n", "stores"},
		{"create", "events", "-n", "stores"},
		{"delete", "nodes"},
		{"update", "daemonsets.apps", "-n", "stores"},
		{"delete", "edgerollouts.slmops.dev", "-n", "stores"},
		{"update", "edgerollouts.slmops.dev", "-n", "stores"}, // the spec is Git's; finalizers are patched
		{"update", "slmmodels.slmops.dev", "-n", "stores"},
		{"create", "leases.coordination.k8s.io", "-n", "kube-system"},
		{"create", "clusterroles.rbac.authorization.k8s.io"},
		{"create", "rolebindings.rbac.authorization.k8s.io", "-n", ns},
		{"impersonate", "serviceaccounts", "-n", ns},
		{"create", "serviceaccounts/token", "-n", ns},
		{"*", "*"},
	} {
		out, _ := kubectl(append([]string{"auth", "can-i", as}, denied...)...)
		if answer(out) != "no" {
			t.Errorf("the manager may %v: %s", denied, strings.TrimSpace(out))
		}
	}
}

// answer is kubectl auth can-i's verdict: its last word (warnings about
// cluster-scoped resources come before it).
func answer(out string) string {
	f := strings.Fields(out)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

// runAsDeployment runs the manager binary with a Deployment's arguments
// (listening on local ports instead of the container's) and the token of its
// ServiceAccount, so it can do exactly what the installed RBAC allows.
func runAsDeployment(t *testing.T, args []string, ns, sa string) (stop func()) {
	t.Helper()
	ctx := context.Background()
	tok, err := cluster.Clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ca := cluster.Config.CAData
	if len(ca) == 0 {
		if ca, err = os.ReadFile(cluster.Config.CAFile); err != nil {
			t.Fatal(err)
		}
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: cluster.Config.Host, CertificateAuthorityData: ca}
	cfg.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts["manager"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: sa, Namespace: ns}
	cfg.CurrentContext = "manager"
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}

	var local []string
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "--metrics-bind-address="):
			if a != "--metrics-bind-address=0" {
				a = "--metrics-bind-address=" + freeAddr(t)
			}
		case strings.HasPrefix(a, "--health-probe-bind-address="):
			a = "--health-probe-bind-address=" + freeAddr(t)
		}
		local = append(local, a)
	}
	logs := &testenv.SyncBuffer{}
	cmd := exec.Command(managerBin, local...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	return func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			l := logs.String()
			if len(l) > 20000 {
				l = l[len(l)-20000:]
			}
			t.Logf("operator logs (end):\n%s", l)
		}
		// A manager that was denied something says so in its log.
		if strings.Contains(logs.String(), "is forbidden") {
			t.Errorf("the manager was denied something it needs:\n%s", testenv.GrepLines(logs.String(), "is forbidden"))
		}
	}
}

// applySamples applies config/samples as they are into ns.
func applySamples(t *testing.T, ns string) {
	t.Helper()
	if _, err := cluster.Clientset.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if out, err := kubectl("apply", "-n", ns, "-k", filepath.Join(root, "config", "samples")); err != nil {
		t.Fatalf("kubectl apply -k config/samples: %v\n%s", err, out)
	}
}

// waitForSamplePhase waits until the sample rollout in ns is in phase.
func waitForSamplePhase(t *testing.T, ns string, phase slmopsv1alpha1.RolloutPhase) {
	t.Helper()
	c := kube(t)
	NewWithT(t).Eventually(func(g Gomega) slmopsv1alpha1.RolloutPhase {
		var r slmopsv1alpha1.EdgeRollout
		g.Expect(c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "tinyllama-stores"}, &r)).To(Succeed())
		return r.Status.Phase
	}).WithTimeout(2 * time.Minute).WithPolling(500 * time.Millisecond).Should(Equal(phase))
}

// completeSampleRollout applies config/samples as they are into ns and
// promotes the rollout whenever it pauses, until it is Completed.
func completeSampleRollout(t *testing.T, ns string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	applySamples(t, ns)
	c := kube(t)
	key := client.ObjectKey{Namespace: ns, Name: "tinyllama-stores"}
	promotions := 0
	g.Eventually(func(g Gomega) slmopsv1alpha1.RolloutPhase {
		var r slmopsv1alpha1.EdgeRollout
		g.Expect(c.Get(ctx, key, &r)).To(Succeed())
		if r.Status.Phase == slmopsv1alpha1.PhasePaused {
			promotions++
			_, err := kubectl("annotate", "--overwrite", "-n", ns, "edgerollout", key.Name,
				fmt.Sprintf("%s=%d", slmopsv1alpha1.PromoteAnnotation, promotions))
			g.Expect(err).NotTo(HaveOccurred())
		}
		return r.Status.Phase
	}).WithTimeout(4 * time.Minute).WithPolling(500 * time.Millisecond).Should(Equal(slmopsv1alpha1.PhaseCompleted))
	var r slmopsv1alpha1.EdgeRollout
	g.Expect(c.Get(ctx, key, &r)).To(Succeed())
	g.Expect(r.Status.TargetNodes).To(BeEquivalentTo(clusterNodes), "the sample selects every simulated K3s node")
}

// leftovers lists objects labeled as the release's that remain: namespaced
// ones in any namespace, and cluster-scoped ones; CRDs are not counted.
func leftovers(t *testing.T, release string) []string {
	t.Helper()
	sel := "app.kubernetes.io/instance=" + release + ",app.kubernetes.io/managed-by=Helm"
	var left []string
	for _, kind := range []string{"deployments", "services", "serviceaccounts", "roles", "rolebindings", "configmaps", "secrets"} {
		out, err := kubectl("get", kind, "--all-namespaces", "-l", sel, "-o", "name")
		if err != nil {
			t.Fatalf("kubectl get %s: %v\n%s", kind, err, out)
		}
		left = append(left, strings.Fields(out)...)
	}
	for _, kind := range []string{"clusterroles", "clusterrolebindings", "validatingadmissionpolicies", "validatingadmissionpolicybindings"} {
		out, err := kubectl("get", kind, "-l", sel, "-o", "name")
		if err != nil {
			t.Fatalf("kubectl get %s: %v\n%s", kind, err, out)
		}
		left = append(left, strings.Fields(out)...)
	}
	// Helm's own release records.
	out, _ := kubectl("get", "secrets", "--all-namespaces", "-l", "owner=helm,name="+release, "-o", "name")
	return append(left, strings.Fields(out)...)
}

func kube(t *testing.T) client.Client { return testenv.Client(t, cluster.Config) }

func freeAddr(t *testing.T) string { return testenv.FreeAddr(t) }
