package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/slmops/slmops/inferd/engine"
)

// TestCRDAcceptsWhatThisBuildRuns: the SLMModel CRD that the operator installs
// accepts exactly the quantizations and architectures that this inferd runs.
// The test lives here, in the binary's package, because this binary's imports
// decide which architectures are registered (engine.Architectures), and the
// kernels decide which quantizations run (engine.Quantizations). When it
// fails, change the rule on Quantization (or on SLMModelSpec.Architecture) in
// api/v1alpha1/slmmodel_types.go and run make manifests.
func TestCRDAcceptsWhatThisBuildRuns(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "slmops.dev_slmmodels.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	if len(crd.Spec.Versions) != 1 {
		t.Fatalf("the SLMModel CRD has %d versions; this test reads one", len(crd.Spec.Versions))
	}
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	for field, want := range map[string][]string{
		"spec.quantization":          engine.Quantizations(),
		"spec.variants.quantization": engine.Quantizations(),
		"spec.architecture":          engine.Architectures(),
	} {
		var schema apiextensionsv1.JSONSchemaProps
		switch field {
		case "spec.variants.quantization":
			schema = spec.Properties["variants"].Items.Schema.Properties["quantization"]
		default:
			schema = spec.Properties[strings.TrimPrefix(field, "spec.")]
		}
		if len(schema.Enum) > 0 {
			t.Errorf("%s has an OpenAPI enum: an enum violation makes the API server skip the CEL rules and say so; use a rule", field)
		}
		accepted, message := acceptedValues(t, field, schema)
		if diff := cmp.Diff(sorted(want), sorted(accepted)); diff != "" {
			t.Errorf("%s accepts other values than this inferd runs (-runs +accepted):\n%s", field, diff)
		}
		for _, v := range want {
			if !strings.Contains(message, v) {
				t.Errorf("%s: the message %q does not list %s", field, message, v)
			}
		}
	}
}

// listRule is a rule of the form self in ['a', 'b'].
var listRule = regexp.MustCompile(`^self in \[((?:'[^']*'(?:, )?)+)\]$`)

// acceptedValues returns the values of the field's one "self in [...]" rule
// and its message, or the values of its enum.
func acceptedValues(t *testing.T, field string, schema apiextensionsv1.JSONSchemaProps) ([]string, string) {
	t.Helper()
	for _, r := range schema.XValidations {
		m := listRule.FindStringSubmatch(r.Rule)
		if m == nil {
			continue
		}
		var out []string
		for _, quoted := range strings.Split(m[1], ", ") {
			out = append(out, strings.Trim(quoted, "'"))
		}
		return out, r.Message
	}
	if len(schema.Enum) > 0 {
		var out []string
		for _, v := range schema.Enum {
			out = append(out, strings.Trim(string(v.Raw), `"`))
		}
		return out, ""
	}
	t.Errorf("%s has no rule of the form self in ['...']: %+v", field, schema.XValidations)
	return nil, ""
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
