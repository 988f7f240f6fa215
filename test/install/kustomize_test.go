package install

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/test/testenv"
)

// TestKustomizeDefaultInstalls: kubectl apply -k config/default installs the
// CRDs, the RBAC and a secure manager Deployment in slmops-system; the
// operator run with that Deployment's arguments and ServiceAccount leads
// and reconciles; kubectl delete -k removes it all.
func TestKustomizeDefaultInstalls(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dir := filepath.Join(root, "config", "default")
	out, err := kubectl("apply", "-k", dir)
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(testenv.WaitForCRDs(ctx, cluster)).To(Succeed())

	dep, err := cluster.Clientset.AppsV1().Deployments("slmops-system").Get(ctx, "slmops-manager", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	g.Expect(*pod.SecurityContext.RunAsNonRoot).To(BeTrue())
	g.Expect(pod.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
	g.Expect(*c.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
	g.Expect(*c.SecurityContext.AllowPrivilegeEscalation).To(BeFalse())
	g.Expect(c.SecurityContext.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))

	t.Run("RBAC", func(t *testing.T) { checkManagerRBAC(t, "slmops-system", pod.ServiceAccountName) })
	t.Run("admission policies", func(t *testing.T) { checkManagerPolicy(t, "slmops-system", pod.ServiceAccountName) })

	t.Run("the operator leads and reconciles", func(t *testing.T) {
		g := NewWithT(t)
		// A rollout to reconcile (the chart's test may have left the samples).
		if _, err := kubectl("get", "edgerollout", "-n", "stores", "tinyllama-stores"); err != nil {
			completeSampleRollout(t, "stores")
		}
		stop := runAsDeployment(t, c.Args, "slmops-system", pod.ServiceAccountName)
		defer stop()
		g.Eventually(func() string {
			l, err := cluster.Clientset.CoordinationV1().Leases("slmops-system").Get(ctx, "slmops-manager.slmops.dev", metav1.GetOptions{})
			if err != nil {
				return ""
			}
			return ptrString(l)
		}).WithTimeout(time.Minute).ShouldNot(BeEmpty(), "the manager did not take the leader Lease")
		// Deleting the rollout needs the operator: its finalizer takes the
		// cohort label off every node first.
		kc := kube(t)
		r := &slmopsv1alpha1.EdgeRollout{}
		r.Namespace, r.Name = "stores", "tinyllama-stores"
		g.Expect(kc.Delete(ctx, r)).To(Succeed())
		g.Eventually(func() bool {
			return apierrors.IsNotFound(kc.Get(ctx, client.ObjectKeyFromObject(r), r))
		}).WithTimeout(time.Minute).Should(BeTrue(), "the rollout's finalizer did not finish")
	})

	out, err = kubectl("delete", "-k", dir, "--wait=true", "--timeout=2m")
	g.Expect(err).NotTo(HaveOccurred(), out)
	for _, kind := range []string{"crd/edgerollouts.slmops.dev", "clusterrole/slmops-manager", "clusterrolebinding/slmops-manager", "namespace/slmops-system",
		"validatingadmissionpolicy/slmops-manager-nodes", "validatingadmissionpolicybinding/slmops-manager-pods"} {
		out, err := kubectl("get", kind, "-o", "name")
		g.Expect(err).To(HaveOccurred(), "%s outlived kubectl delete -k: %s", kind, out)
	}
}

func ptrString(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// TestKustomizePoliciesAreTheChartsOwn: config/default includes the admission
// policies and their bindings, and they are the chart's as it renders them
// with its defaults (the same ServiceAccount and model cache).
func TestKustomizePoliciesAreTheChartsOwn(t *testing.T) {
	out, err := exec.Command(kubectlBin, "kustomize", filepath.Join(root, "config", "default")).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v\n%s", err, out)
	}
	built, chart := parseManifests(t, string(out)), render(t)
	var compared []string
	for _, key := range chart.keys() {
		kind := chart[key].GetKind()
		if kind != "ValidatingAdmissionPolicy" && kind != "ValidatingAdmissionPolicyBinding" {
			continue
		}
		k, ok := built[key]
		if !ok {
			t.Errorf("config/default lacks the chart's %s", key)
			continue
		}
		if diff := cmp.Diff(chart[key].Object["spec"], k.Object["spec"]); diff != "" {
			t.Errorf("%s differs between the chart and config/policy (-chart +config):\n%s", key, diff)
		}
		compared = append(compared, key)
	}
	if len(compared) != 8 {
		t.Errorf("compared %v; want four policies and four bindings", compared)
	}
	for key, o := range built {
		if strings.HasPrefix(o.GetKind(), "ValidatingAdmissionPolicy") && chart[key] == nil {
			t.Errorf("config/default has %s, which the chart does not", key)
		}
	}
}
