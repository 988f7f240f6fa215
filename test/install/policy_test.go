package install

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// probeNamespace holds the EdgeRollout that owns the objects the policy
// checks create; no operator runs while they exist.
const probeNamespace = "policy-probe"

// checkManagerPolicy sends the API server, as the manager's ServiceAccount,
// what the admission policies must deny and what they must let through. The
// ClusterRole allows every one of these requests: a denial comes from the
// policies, with their message.
func checkManagerPolicy(t *testing.T, ns, sa string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	user := "system:serviceaccount:" + ns + ":" + sa
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
	manager, err := kubernetes.NewForConfig(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	admin := cluster.Clientset

	nodes, err := admin.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(nodes.Items).NotTo(BeEmpty())
	node := nodes.Items[0].Name
	cohort := slmopsv1alpha1.CohortLabel(probeNamespace, "probe")
	stage := slmopsv1alpha1.StageLabel(probeNamespace, "probe")
	patchNode := func(patch map[string]any) error {
		raw, _ := json.Marshal(patch)
		_, err := manager.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, raw, metav1.PatchOptions{})
		return err
	}
	labels := func(kv map[string]any) map[string]any {
		return map[string]any{"metadata": map[string]any{"labels": kv}}
	}
	taint := map[string]any{"spec": map[string]any{"taints": []any{map[string]any{"key": "example.com/probe", "effect": "NoSchedule"}}}}

	// The owner of the objects below: a real EdgeRollout, so that the
	// garbage collector keeps them while the checks run.
	owner := probeRollout(t)
	defer deleteProbeRollout(t, owner)
	ownerRef := metav1.OwnerReference{APIVersion: slmopsv1alpha1.GroupVersion.String(), Kind: "EdgeRollout",
		Name: owner.Name, UID: owner.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
	managed := map[string]string{slmopsv1alpha1.ManagedByLabel: slmopsv1alpha1.ManagedByValue}

	unrelated := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "unrelated", Namespace: "kube-system"}, Data: map[string]string{"a": "b"}}
	_, err = admin.CoreV1().ConfigMaps("kube-system").Create(ctx, unrelated, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		g.Expect(err).NotTo(HaveOccurred())
	}
	defer func() { _ = admin.CoreV1().ConfigMaps("kube-system").Delete(ctx, "unrelated", metav1.DeleteOptions{}) }()

	nodesPolicy := "ValidatingAdmissionPolicy 'slmops-manager-nodes'"
	nodesRule := "the slmops manager may change only the cohort.slmops.dev/ and stage.slmops.dev/ labels of nodes: update of node " + node + " denied, it also changes "
	ownedPolicy := "ValidatingAdmissionPolicy 'slmops-manager-owned'"
	podsPolicy := "ValidatingAdmissionPolicy 'slmops-manager-pods'"

	// The API server loads new policies within a second or so.
	g.Eventually(func() string {
		err := patchNode(labels(map[string]any{"example.com/probe": "x"}))
		if err == nil {
			// Not loaded yet: take the label off again.
			raw, _ := json.Marshal(labels(map[string]any{"example.com/probe": nil}))
			_, _ = admin.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, raw, metav1.PatchOptions{})
			return ""
		}
		return err.Error()
	}).WithTimeout(30*time.Second).Should(ContainSubstring(nodesPolicy), "the admission policies do not act")

	denied := []struct {
		name string
		do   func() error
		want []string
	}{
		{"add a taint", func() error { return patchNode(taint) },
			[]string{nodesPolicy, nodesRule + "spec.taints"}},
		{"set unschedulable", func() error { return patchNode(map[string]any{"spec": map[string]any{"unschedulable": true}}) },
			[]string{nodesPolicy, nodesRule + "spec.unschedulable"}},
		{"add another label", func() error { return patchNode(labels(map[string]any{"example.com/probe": "x"})) },
			[]string{nodesPolicy, nodesRule + "label example.com/probe"}},
		{"remove a label of the node's", func() error { return patchNode(labels(map[string]any{"kubernetes.io/hostname": nil})) },
			[]string{nodesPolicy, nodesRule + "label kubernetes.io/hostname (removed)"}},
		{"annotate the node", func() error {
			return patchNode(map[string]any{"metadata": map[string]any{"annotations": map[string]any{"example.com/probe": "x"}}})
		}, []string{nodesPolicy, nodesRule + "annotations"}},
		{"change a cohort label and a taint in one patch", func() error {
			return patchNode(map[string]any{"metadata": map[string]any{"labels": map[string]any{cohort: "abc"}}, "spec": taint["spec"]})
		}, []string{nodesPolicy, nodesRule + "spec.taints"}},
		{"create a DaemonSet in kube-system without the managed-by label", func() error {
			ds := probeDaemonSet("kube-system", "unlabelled", nil, ownerRef)
			_, err := manager.AppsV1().DaemonSets("kube-system").Create(ctx, ds, metav1.CreateOptions{})
			return err
		}, []string{ownedPolicy, "create of DaemonSet kube-system/unlabelled denied, it lacks the label"}},
		{"create a labelled DaemonSet that no EdgeRollout owns", func() error {
			ds := probeDaemonSet("kube-system", "unowned", managed)
			_, err := manager.AppsV1().DaemonSets("kube-system").Create(ctx, ds, metav1.CreateOptions{})
			return err
		}, []string{ownedPolicy, "create of DaemonSet kube-system/unowned denied, it has no ownerReference to an EdgeRollout"}},
		{"delete an unrelated ConfigMap", func() error {
			return manager.CoreV1().ConfigMaps("kube-system").Delete(ctx, "unrelated", metav1.DeleteOptions{})
		}, []string{ownedPolicy, "delete of ConfigMap kube-system/unrelated denied, it is not labelled or owned"}},
		{"adopt an unrelated ConfigMap", func() error {
			cm, err := admin.CoreV1().ConfigMaps("kube-system").Get(ctx, "unrelated", metav1.GetOptions{})
			if err != nil {
				return err
			}
			cm.Labels, cm.OwnerReferences = managed, []metav1.OwnerReference{ownerRef}
			_, err = manager.CoreV1().ConfigMaps("kube-system").Update(ctx, cm, metav1.UpdateOptions{})
			return err
		}, []string{ownedPolicy, "update of ConfigMap kube-system/unrelated denied, it is not labelled or owned"}},
		{"create a privileged DaemonSet that looks like the operator's", func() error {
			ds := probeDaemonSet(probeNamespace, "privileged", managed, ownerRef)
			sc := ds.Spec.Template.Spec.Containers[0].SecurityContext
			sc.Privileged, sc.AllowPrivilegeEscalation = ptr.To(true), nil
			_, err := manager.AppsV1().DaemonSets(probeNamespace).Create(ctx, ds, metav1.CreateOptions{})
			return err
		}, []string{podsPolicy, "create of DaemonSet " + probeNamespace + "/privileged denied, containers inferd may gain privilege"}},
		{"create a DaemonSet that adds a capability", func() error {
			ds := probeDaemonSet(probeNamespace, "sysadmin", managed, ownerRef)
			ds.Spec.Template.Spec.Containers[0].SecurityContext.Capabilities.Add = []corev1.Capability{"SYS_ADMIN"}
			_, err := manager.AppsV1().DaemonSets(probeNamespace).Create(ctx, ds, metav1.CreateOptions{})
			return err
		}, []string{podsPolicy, "create of DaemonSet " + probeNamespace + "/sysadmin denied, containers inferd may gain privilege"}},
		{"create a DaemonSet whose pods run as root", func() error {
			ds := probeDaemonSet(probeNamespace, "root", managed, ownerRef)
			ds.Spec.Template.Spec.SecurityContext.RunAsNonRoot = nil
			ds.Spec.Template.Spec.SecurityContext.RunAsUser = ptr.To[int64](0)
			_, err := manager.AppsV1().DaemonSets(probeNamespace).Create(ctx, ds, metav1.CreateOptions{})
			return err
		}, []string{podsPolicy, "denied, the pod may run as root"}},
		{"create a DaemonSet in the host's PID namespace", func() error {
			ds := probeDaemonSet(probeNamespace, "hostpid", managed, ownerRef)
			ds.Spec.Template.Spec.HostPID = true
			_, err := manager.AppsV1().DaemonSets(probeNamespace).Create(ctx, ds, metav1.CreateOptions{})
			return err
		}, []string{podsPolicy, "denied, it sets hostPID"}},
		{"create a DaemonSet that mounts the node's root", func() error {
			ds := probeDaemonSet(probeNamespace, "hostroot", managed, ownerRef)
			ds.Spec.Template.Spec.Volumes = append(ds.Spec.Template.Spec.Volumes,
				corev1.Volume{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
			_, err := manager.AppsV1().DaemonSets(probeNamespace).Create(ctx, ds, metav1.CreateOptions{})
			return err
		}, []string{podsPolicy, "may mount only the model cache (/var/lib/slmops/models), emptyDirs and ConfigMaps", "denied, volumes root"}},
		{"create a DaemonSet without seccomp", func() error {
			ds := probeDaemonSet(probeNamespace, "unconfined", managed, ownerRef)
			ds.Spec.Template.Spec.SecurityContext.SeccompProfile.Type = corev1.SeccompProfileTypeUnconfined
			_, err := manager.AppsV1().DaemonSets(probeNamespace).Create(ctx, ds, metav1.CreateOptions{})
			return err
		}, []string{podsPolicy, "must run under the RuntimeDefault or a Localhost seccomp profile: create of DaemonSet " + probeNamespace + "/unconfined denied"}},
		{"create a DaemonSet whose pods get a ServiceAccount token", func() error {
			ds := probeDaemonSet(probeNamespace, "token", managed, ownerRef)
			ds.Spec.Template.Spec.AutomountServiceAccountToken = nil
			_, err := manager.AppsV1().DaemonSets(probeNamespace).Create(ctx, ds, metav1.CreateOptions{})
			return err
		}, []string{podsPolicy, "may not mount a ServiceAccount token"}},
		{"create a stager DaemonSet whose pods get the inferd token", func() error {
			ds := probeDaemonSet(probeNamespace, "stager-token", managed, ownerRef)
			ds.Spec.Template.Labels[slmopsv1alpha1.ComponentLabel] = slmopsv1alpha1.ComponentModelStager
			ds.Spec.Template.Spec.ServiceAccountName, ds.Spec.Template.Spec.AutomountServiceAccountToken = "slmops-inferd", ptr.To(true)
			_, err := manager.AppsV1().DaemonSets(probeNamespace).Create(ctx, ds, metav1.CreateOptions{})
			return err
		}, []string{podsPolicy, "may not mount a ServiceAccount token, but serving pods (app.kubernetes.io/component=model-server) that of slmops-inferd: create of DaemonSet " + probeNamespace + "/stager-token denied"}},
		{"create a serving DaemonSet whose pods get another ServiceAccount's token", func() error {
			ds := probeDaemonSet(probeNamespace, "other-token", managed, ownerRef)
			ds.Spec.Template.Labels[slmopsv1alpha1.ComponentLabel] = slmopsv1alpha1.ComponentModelServer
			ds.Spec.Template.Spec.ServiceAccountName, ds.Spec.Template.Spec.AutomountServiceAccountToken = "default", ptr.To(true)
			_, err := manager.AppsV1().DaemonSets(probeNamespace).Create(ctx, ds, metav1.CreateOptions{})
			return err
		}, []string{podsPolicy, "may not mount a ServiceAccount token"}},
	}
	for _, c := range denied {
		t.Run("denied: "+c.name, func(t *testing.T) {
			err := c.do()
			if err == nil {
				t.Fatalf("the manager could %s", c.name)
			}
			if !apierrors.IsForbidden(err) {
				t.Errorf("not Forbidden: %v", err)
			}
			for _, want := range c.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the denial does not say %q:\n%v", want, err)
				}
			}
		})
	}
	n, err := admin.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(n.Labels).NotTo(HaveKey(cohort), "a denied patch changed the cohort label anyway")
	g.Expect(n.Spec.Taints).To(BeEmpty())

	t.Run("denied: node status, even with RBAC for it", func(t *testing.T) {
		g := NewWithT(t)
		// Should someone grant the manager nodes/status, the policy still
		// keeps it from changing a node's status.
		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "policy-probe-node-status"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes/status"}, Verbs: []string{"get", "patch"}}}}
		binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: sa}}}
		_, err := admin.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		defer func() { _ = admin.RbacV1().ClusterRoles().Delete(ctx, role.Name, metav1.DeleteOptions{}) }()
		_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		defer func() { _ = admin.RbacV1().ClusterRoleBindings().Delete(ctx, binding.Name, metav1.DeleteOptions{}) }()
		patch := []byte(`{"status":{"capacity":{"example.com/probe":"1"}}}`)
		g.Eventually(func() string {
			_, err := manager.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
			if err == nil {
				return "allowed"
			}
			return err.Error()
		}).WithTimeout(30 * time.Second).Should(And(ContainSubstring(nodesPolicy),
			ContainSubstring("update of node "+node+" (status) denied, it also changes status")))
	})

	t.Run("allowed: cohort and stage labels", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(patchNode(labels(map[string]any{cohort: "abc", stage: "abc"}))).To(Succeed())
		g.Expect(patchNode(labels(map[string]any{cohort: "def"}))).To(Succeed())
		g.Expect(patchNode(labels(map[string]any{cohort: nil, stage: nil}))).To(Succeed())
	})
	t.Run("allowed: an owned, labelled ConfigMap", func(t *testing.T) {
		g := NewWithT(t)
		cms := manager.CoreV1().ConfigMaps(probeNamespace)
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe-peers", Namespace: probeNamespace,
			Labels: managed, OwnerReferences: []metav1.OwnerReference{ownerRef}}, Data: map[string]string{"peers.json": "{}"}}
		cm, err := cms.Create(ctx, cm, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		cm.Data["peers.json"] = `{"nodes":{}}`
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cms.Delete(ctx, cm.Name, metav1.DeleteOptions{})).To(Succeed())
	})
	t.Run("allowed: an owned, labelled, unprivileged DaemonSet", func(t *testing.T) {
		g := NewWithT(t)
		dss := manager.AppsV1().DaemonSets(probeNamespace)
		_, err := dss.Create(ctx, probeDaemonSet(probeNamespace, "probe", managed, ownerRef), metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(dss.Delete(ctx, "probe", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})).To(Succeed())
	})
	t.Run("allowed: a serving DaemonSet whose pods get the inferd token to report", func(t *testing.T) {
		g := NewWithT(t)
		dss := manager.AppsV1().DaemonSets(probeNamespace)
		ds := probeDaemonSet(probeNamespace, "serving-token", managed, ownerRef)
		ds.Spec.Template.Labels[slmopsv1alpha1.ComponentLabel] = slmopsv1alpha1.ComponentModelServer
		ds.Spec.Template.Spec.ServiceAccountName, ds.Spec.Template.Spec.AutomountServiceAccountToken = "slmops-inferd", ptr.To(true)
		_, err := dss.Create(ctx, ds, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(dss.Delete(ctx, ds.Name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})).To(Succeed())
	})
}

// probeDaemonSet is a DaemonSet as the operator builds one (unprivileged,
// confined, the model cache its only host folder, no token) whose pods fit
// no node.
func probeDaemonSet(ns, name string, labels map[string]string, owners ...metav1.OwnerReference) *appsv1.DaemonSet {
	sel := map[string]string{"slmops.dev/probe": name}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, OwnerReferences: owners},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec: corev1.PodSpec{
					NodeSelector:                 map[string]string{"slmops.dev/probe": "no-such-node"},
					AutomountServiceAccountToken: ptr.To(false),
					SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
					Containers: []corev1.Container{{
						Name: "inferd", Image: "ghcr.io/slmops/inferd:v0.1.0",
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
							Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "model-cache", MountPath: "/var/lib/slmops/models"}},
					}},
					Volumes: []corev1.Volume{
						{Name: "model-cache", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
							Path: "/var/lib/slmops/models", Type: ptr.To(corev1.HostPathDirectoryOrCreate)}}},
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
				},
			},
		},
	}
}

// probeRollout creates the sample EdgeRollout in probeNamespace.
func probeRollout(t *testing.T) *slmopsv1alpha1.EdgeRollout {
	t.Helper()
	ctx := context.Background()
	if _, err := cluster.Clientset.CoreV1().Namespaces().Create(ctx,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: probeNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "config", "samples", "slmops_v1alpha1_edgerollout.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var r slmopsv1alpha1.EdgeRollout
	if err := yaml.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	r.Name, r.Namespace = "probe", probeNamespace
	if err := kube(t).Create(ctx, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// deleteProbeRollout deletes the probe rollout (the garbage collector takes
// what it owns) and waits until it is gone, so that no operator started
// later reconciles it.
func deleteProbeRollout(t *testing.T, r *slmopsv1alpha1.EdgeRollout) {
	t.Helper()
	c := kube(t)
	ctx := context.Background()
	if err := c.Delete(ctx, r); client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() bool {
		return apierrors.IsNotFound(c.Get(ctx, client.ObjectKeyFromObject(r), &slmopsv1alpha1.EdgeRollout{}))
	}).WithTimeout(30 * time.Second).Should(BeTrue())
}
