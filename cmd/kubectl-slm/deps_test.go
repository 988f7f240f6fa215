package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestThePluginImportsNoController: kubectl-slm reads the operator's labels
// and reasons from api/v1alpha1, so that it links no reconciler and registers
// none of the manager's metrics. go list prints what the binary links.
func TestThePluginImportsNoController(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command, to list the plugin's imports: %v", err)
	}
	out, err := exec.Command(goCmd, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed %d packages: %q", len(deps), deps)
	}
	for _, p := range deps {
		if strings.HasPrefix(p, "github.com/slmops/slmops/controllers") {
			t.Errorf("kubectl-slm imports %s; read names from api/v1alpha1 instead", p)
		}
	}
}
