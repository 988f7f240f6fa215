package plan

import (
	"strings"
	"testing"

	"github.com/slmops/slmops/test/testutil"
)

// TestThePlanIsPure: the plan links no client, no controller runtime and no
// clock, directly or through the packages it imports, so that nothing but
// its Input can change a decision.
func TestThePlanIsPure(t *testing.T) {
	deps := testutil.GoListDeps(t)
	forbidden := []string{"sigs.k8s.io/controller-runtime", "k8s.io/client-go", "k8s.io/utils/clock", "github.com/slmops/slmops/controllers/edgerollout"}
	for _, p := range deps {
		if p == "github.com/slmops/slmops/controllers/edgerollout/plan" {
			continue
		}
		for _, f := range forbidden {
			if p == f || strings.HasPrefix(p, f+"/") {
				t.Errorf("the plan imports %s", p)
			}
		}
	}
}
