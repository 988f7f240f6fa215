package edgerollout

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// Serving inferd pods write their self-test report into their own pod
// (Defaults.InferdReports). They run as slmopsv1alpha1.InferdServiceAccount, which a
// RoleBinding of the same name in the rollout's namespace binds to the
// ClusterRole slmopsv1alpha1.InferdReportClusterRole (patch pods, nothing else); the
// admission policy slmops-inferd-report narrows that to the report
// annotation of the pod the token is bound to.
//
// The installer makes the ServiceAccount and RoleBinding (the chart in the
// namespaces of inferd.report.namespaces), not the operator: creating
// RoleBindings would let the manager grant what it holds to anyone, which
// no admission policy should have to take back. So the operator only looks:
// a namespace with the ServiceAccount gets reporting pods, one without it
// gets pods that report nothing (and that the API server admits, since they
// name no ServiceAccount that is missing).
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get

// reportDefaults are the Defaults for a new serving DaemonSet in ns:
// reports on only where the installer made the inferd ServiceAccount. It
// reads the API server (not the cache: a watch of every ServiceAccount in
// the cluster for one name is not worth it) once per new DaemonSet.
func (r *Reconciler) reportDefaults(ctx context.Context, ns string) (Defaults, error) {
	d := r.Defaults
	if !d.InferdReports || r.APIReader == nil {
		d.InferdReports = false
		return d, nil
	}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: slmopsv1alpha1.InferdServiceAccount}, &corev1.ServiceAccount{})
	switch {
	case apierrors.IsNotFound(err):
		d.InferdReports = false
	case err != nil:
		return d, fmt.Errorf("look up ServiceAccount %s/%s for inferd's self-test reports: %w", ns, slmopsv1alpha1.InferdServiceAccount, err)
	}
	return d, nil
}
