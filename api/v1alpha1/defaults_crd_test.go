package v1alpha1_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/test/testenv"
)

// passedThrough are the fields of embedded Kubernetes types (an EnvVar, a
// Toleration, ResourceRequirements...) that the operator copies into the
// inferd pod template as they are. The defaults their schemas carry (a
// secretKeyRef's name "", a fileKeyRef's optional false) are the API
// server's to fill in, on the rollout and again on the DaemonSet; the Go
// defaulting leaves them alone.
var passedThrough = map[string]bool{
	"spec.tolerations":                true,
	"spec.template.imagePullSecrets":  true,
	"spec.template.resources":         true,
	"spec.template.env":               true,
	"spec.template.apiTokenSecretRef": true,
	"spec.runtime.resources":          true,
}

// TestGoDefaultsAreTheCRDDefaults: for every field that has a default in
// the generated CRDs' schemas, DefaultEdgeRolloutSpec and DefaultSLMModelSpec
// set the same value as the API server does, and they set nothing else.
// Two specs are defaulted both ways: an empty one, and a skeleton in which
// every optional block is present and empty and every list has one empty
// item, so that the defaults inside optional blocks and list items are
// reached too. The API server's side is its own defaulting code run on the
// CRD's structural schema; both sides are then read into the Go types and
// compared as JSON, so that "10m" and "10m0s" are the same duration.
func TestGoDefaultsAreTheCRDDefaults(t *testing.T) {
	for _, c := range []struct {
		file    string
		goSpec  func() any
		goApply func(any)
	}{
		{
			file:    "slmops.dev_edgerollouts.yaml",
			goSpec:  func() any { return &slmopsv1alpha1.EdgeRolloutSpec{} },
			goApply: func(s any) { slmopsv1alpha1.DefaultEdgeRolloutSpec(s.(*slmopsv1alpha1.EdgeRolloutSpec)) },
		},
		{
			file:    "slmops.dev_slmmodels.yaml",
			goSpec:  func() any { return &slmopsv1alpha1.SLMModelSpec{} },
			goApply: func(s any) { slmopsv1alpha1.DefaultSLMModelSpec(s.(*slmopsv1alpha1.SLMModelSpec)) },
		},
	} {
		t.Run(c.file, func(t *testing.T) {
			schema, structural := specSchema(t, c.file)
			var paths []string
			defaultPaths(schema, "spec", &paths)
			sort.Strings(paths)
			if len(paths) < 5 {
				t.Fatalf("%d defaults found in the schema of %s: %v", len(paths), c.file, paths)
			}
			t.Logf("defaults: %s", strings.Join(paths, ", "))

			reached := map[string]bool{}
			for name, obj := range map[string]map[string]any{"empty": {}, "skeleton": skeleton(schema, "spec")} {
				// The API server's defaults.
				server := runtime.DeepCopyJSON(obj)
				structuraldefaulting.Default(server, structural)
				want := throughGo(t, server, c.goSpec(), nil)
				// The Go defaults.
				got := throughGo(t, obj, c.goSpec(), c.goApply)

				for _, p := range paths {
					w, g := lookup(want, strings.Split(p, ".")[1:]), lookup(got, strings.Split(p, ".")[1:])
					if len(w) > 0 {
						reached[p] = true
					}
					if diff := cmp.Diff(w, g); diff != "" {
						t.Errorf("%s: %s (-CRD +Go):\n%s", name, p, diff)
					}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s: the Go defaults differ from the CRD's (-CRD +Go):\n%s", name, diff)
				}
			}
			for _, p := range paths {
				if !reached[p] {
					t.Errorf("the default of %s is not reached by the test's objects: give its block in skeleton", p)
				}
			}
		})
	}
}

// specSchema is the schema of spec in a CRD of config/crd/bases, and its
// structural form, which is what the API server defaults with.
func specSchema(t *testing.T, file string) (apiextensionsv1.JSONSchemaProps, *structuralschema.Structural) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "crd", "bases", file))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	if len(crd.Spec.Versions) != 1 {
		t.Fatalf("%s has %d versions; this test reads one", file, len(crd.Spec.Versions))
	}
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	var internal apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(&spec, &internal, nil); err != nil {
		t.Fatal(err)
	}
	s, err := structuralschema.NewStructural(&internal)
	if err != nil {
		t.Fatal(err)
	}
	return spec, s
}

// defaultPaths appends the path of every field under s that has a default,
// with "[]" for the items of a list, leaving out passedThrough.
func defaultPaths(s apiextensionsv1.JSONSchemaProps, path string, out *[]string) {
	if passedThrough[path] {
		return
	}
	if s.Default != nil && path != "spec" {
		*out = append(*out, path)
	}
	for name, p := range s.Properties {
		defaultPaths(p, path+"."+name, out)
	}
	if s.Items != nil && s.Items.Schema != nil {
		defaultPaths(*s.Items.Schema, path+".[]", out)
	}
}

// skeleton is an object of schema s with every field that has properties
// present (and so defaulted inside), every list without a default given one
// such item, and every other field absent (and so defaulted, where it has a
// default).
func skeleton(s apiextensionsv1.JSONSchemaProps, path string) map[string]any {
	obj := map[string]any{}
	for name, p := range s.Properties {
		sub := path + "." + name
		switch {
		case passedThrough[sub]:
		case p.Type == "object" && len(p.Properties) > 0:
			obj[name] = skeleton(p, sub)
		case p.Type == "array" && p.Default == nil && p.Items != nil && p.Items.Schema != nil && len(p.Items.Schema.Properties) > 0:
			obj[name] = []any{skeleton(*p.Items.Schema, sub+".[]")}
		}
	}
	return obj
}

// throughGo reads obj into the Go type of spec, applies apply (when not nil),
// and returns it as JSON again: the form the operator reads.
func throughGo(t *testing.T, obj map[string]any, spec any, apply func(any)) map[string]any {
	t.Helper()
	data, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, spec); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	if apply != nil {
		apply(spec)
	}
	if data, err = json.Marshal(spec); err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// lookup returns the values at path in v; "[]" takes every item of a list.
func lookup(v any, path []string) []any {
	if len(path) == 0 {
		return []any{v}
	}
	switch x := v.(type) {
	case map[string]any:
		if path[0] == "[]" {
			return nil
		}
		next, ok := x[path[0]]
		if !ok {
			return nil
		}
		return lookup(next, path[1:])
	case []any:
		if path[0] != "[]" {
			return nil
		}
		var out []any
		for _, item := range x {
			out = append(out, lookup(item, path[1:])...)
		}
		return out
	}
	return nil
}
