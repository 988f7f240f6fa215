package edgerollout

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// Serving inferd pods write their self-test report into their own pod
// (Defaults.InferdReports). They run as InferdServiceAccount, which the
// RoleBinding InferdServiceAccount in the rollout's namespace binds to the
// ClusterRole InferdReportClusterRole (patch pods, nothing else; the chart
// and config/rbac install it). The admission policy slmops-inferd-report
// narrows that to the report annotation of the pod the token is bound to.
//
// The operator makes the ServiceAccount and the RoleBinding in every
// namespace it rolls out to, so that a rollout works in any namespace
// without a list to keep. It may create only these two (the admission
// policy slmops-manager-inferd-access), and may bind only that ClusterRole
// (RBAC's bind verb, by name), never update or delete them: they are shared
// by every rollout of the namespace and stay when the rollouts go.
const (
	// InferdServiceAccount is the ServiceAccount of serving inferd pods, and
	// the name of its RoleBinding.
	InferdServiceAccount = "slmops-inferd"
	// InferdReportClusterRole is what that ServiceAccount may do: patch pods.
	InferdReportClusterRole = "slmops-inferd-report"
)

// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=create
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=rolebindings,verbs=create
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=bind,resourceNames=slmops-inferd-report

// reportAccess is the ServiceAccount and RoleBinding of serving inferd pods
// in namespace ns.
func reportAccess(ns string) (*corev1.ServiceAccount, *rbacv1.RoleBinding) {
	labels := map[string]string{
		slmopsv1alpha1.NameLabel:      slmopsv1alpha1.NameInferd,
		slmopsv1alpha1.ManagedByLabel: slmopsv1alpha1.ManagedByValue,
	}
	sa := &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: InferdServiceAccount, Namespace: ns, Labels: labels},
		// Only the pods that ask for the token (serving inferd) get it.
		AutomountServiceAccountToken: ptr.To(false),
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: InferdServiceAccount, Namespace: ns, Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: InferdReportClusterRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: InferdServiceAccount, Namespace: ns}},
	}
	return sa, rb
}

// ensureReportAccess creates the ServiceAccount and RoleBinding of serving
// pods in ns when they are missing. It runs before a serving DaemonSet is
// created, so at most two requests per new revision (both AlreadyExists
// after the first), and no watch of every ServiceAccount in the cluster.
func (r *Reconciler) ensureReportAccess(ctx context.Context, ns string) error {
	if !r.Defaults.InferdReports {
		return nil
	}
	sa, rb := reportAccess(ns)
	for _, o := range []struct {
		kind string
		obj  client.Object
	}{{"ServiceAccount", sa}, {"RoleBinding", rb}} {
		if err := r.Create(ctx, o.obj); client.IgnoreAlreadyExists(err) != nil {
			return fmt.Errorf("create %s %s for inferd's self-test reports: %w", o.kind, klog.KObj(o.obj), err)
		}
	}
	return nil
}
