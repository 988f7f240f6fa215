package edgerollout

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// TestReportsOnlyWhereTheServiceAccountIs: with reports on, serving pods of a
// namespace get the inferd ServiceAccount only when the installer made it
// there; elsewhere they name none, so the API server still admits them.
func TestReportsOnlyWhereTheServiceAccountIs(t *testing.T) {
	reader := fake.NewClientBuilder().WithObjects(&corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: slmopsv1alpha1.InferdServiceAccount, Namespace: "edge"},
	}).Build()
	for name, tc := range map[string]struct {
		r    *Reconciler
		ns   string
		want bool
	}{
		"on, and the namespace has it":        {&Reconciler{APIReader: reader, Defaults: Defaults{InferdReports: true}}, "edge", true},
		"on, and the namespace lacks it":      {&Reconciler{APIReader: reader, Defaults: Defaults{InferdReports: true}}, "shops", false},
		"off":                                 {&Reconciler{APIReader: reader}, "edge", false},
		"on, with no reader to look it up in": {&Reconciler{Defaults: Defaults{InferdReports: true}}, "edge", false},
	} {
		t.Run(name, func(t *testing.T) {
			d, err := tc.r.reportDefaults(context.Background(), tc.ns)
			if err != nil {
				t.Fatal(err)
			}
			if d.InferdReports != tc.want {
				t.Errorf("InferdReports = %v; want %v", d.InferdReports, tc.want)
			}
		})
	}
}
