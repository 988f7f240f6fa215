package main

import (
	"strings"
	"testing"

	"github.com/slmops/slmops/test/testutil"
)

// TestThePluginImportsNoController: kubectl-slm reads the operator's labels
// and reasons from api/v1alpha1, so that it links no reconciler and registers
// none of the manager's metrics. go list prints what the binary links.
func TestThePluginImportsNoController(t *testing.T) {
	deps := testutil.GoListDeps(t)
	for _, p := range deps {
		if strings.HasPrefix(p, "github.com/slmops/slmops/controllers") {
			t.Errorf("kubectl-slm imports %s; read names from api/v1alpha1 instead", p)
		}
	}
}
