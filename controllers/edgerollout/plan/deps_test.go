package plan

import (
	"os/exec"
	"strings"
	"testing"
)

// TestThePlanIsPure: the plan links no client, no controller runtime and no
// clock, directly or through the packages it imports, so that nothing but
// its Input can change a decision.
func TestThePlanIsPure(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command, to list the plan's imports: %v", err)
	}
	out, err := exec.Command(goCmd, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed %d packages: %q", len(deps), deps)
	}
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
