package v1alpha1_test

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

func TestCRDsAreServed(t *testing.T) {
	for _, kind := range []string{"SLMModel", "EdgeRollout"} {
		if !env.Served(slmopsv1alpha1.GroupVersion.WithKind(kind)) {
			t.Errorf("the API server does not serve %s", kind)
		}
	}
}

func TestSLMModelDigestIsCheckedAtAdmission(t *testing.T) {
	const good = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := map[string]struct {
		digest  string
		wantErr string
	}{
		"a sha256 digest is accepted":           {digest: good},
		"a digest without algorithm is refused": {digest: strings.TrimPrefix(good, "sha256:"), wantErr: `spec.digest: Invalid value`},
		"upper-case hex is refused":             {digest: strings.ToUpper(good), wantErr: `should match '^sha256:[a-f0-9]{64}$'`},
		"a short digest is refused":             {digest: good[:40], wantErr: `spec.digest: Invalid value`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := &slmopsv1alpha1.SLMModel{
				ObjectMeta: metav1.ObjectMeta{GenerateName: "digest-", Namespace: "default"},
				Spec:       slmopsv1alpha1.SLMModelSpec{Digest: tc.digest},
			}
			err := env.Client.Create(context.Background(), m)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("create: %v", err)
				}
				return
			}
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("create: got error %v, want Invalid containing %q", err, tc.wantErr)
			}
		})
	}
}
