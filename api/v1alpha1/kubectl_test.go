package v1alpha1_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestKubectlExplainShowsTheDocComments: the doc comments of the Go types reach
// `kubectl explain`, the first place a user looks.
func TestKubectlExplainShowsTheDocComments(t *testing.T) {
	for resource, want := range map[string][]string{
		"edgerollout.spec.strategy": {"canary grows a cohort of nodes step by step"},
		"edgerollout.spec.strategy.canary": {
			"steps of the canary, in order; the last one must be \"100%\"",
			"maxUnavailable", "unreachableNodes", "topologyKey",
		},
		"slmmodel.spec.digest": {"sha256 of the model file"},
		"slm.spec.selfTest":    {"on-node gate"},
	} {
		// The API server publishes a new CRD's OpenAPI schema asynchronously.
		var out string
		var err error
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if out, err = env.Kubectl("explain", resource); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(strings.Join(strings.Fields(out), " "), w) {
				t.Errorf("kubectl explain %s does not show %q:\n%s", resource, w, out)
			}
		}
	}
}

// TestKubectlGetShowsThePrinterColumns: `kubectl get er` answers what a person
// checks first: model, phase, step, canary/ready/target nodes, age.
func TestKubectlGetShowsThePrinterColumns(t *testing.T) {
	ctx := context.Background()
	if err := env.CreateNamespace("columns"); err != nil {
		t.Fatal(err)
	}
	r := object(t, validRollout, nil)
	r.SetNamespace("columns")
	r.SetGenerateName("")
	r.SetName("stores")
	if err := env.Client.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	st := map[string]any{"phase": "Progressing", "currentStep": int64(1), "canaryNodes": int64(50), "readyNodes": int64(180), "targetNodes": int64(200)}
	if err := unstructured.SetNestedMap(r.Object, st, "status"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Status().Update(ctx, r); err != nil {
		t.Fatal(err)
	}
	out, err := env.Kubectl("get", "er", "-n", "columns")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("kubectl get er:\n%s", out)
	}
	header, row := strings.Fields(lines[0]), strings.Fields(lines[1])
	wantHeader := []string{"NAME", "MODEL", "PHASE", "STEP", "CANARY", "READY", "TARGET", "AGE"}
	if strings.Join(header, " ") != strings.Join(wantHeader, " ") {
		t.Errorf("header = %v, want %v", header, wantHeader)
	}
	if got := strings.Join(row[:7], " "); got != "stores tinyllama Progressing 1 50 180 200" {
		t.Errorf("row = %q", got)
	}

	out, err = env.Kubectl("get", "crd", "slmmodels.slmops.dev", "-o", "jsonpath={.spec.versions[0].additionalPrinterColumns[*].name}")
	if err != nil {
		t.Fatal(err)
	}
	if out != "Quant Arch Size Digest Ready Rollouts Age" {
		t.Errorf("SLMModel printer columns = %q", out)
	}
}
