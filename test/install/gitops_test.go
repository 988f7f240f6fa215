package install

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// TestGitOpsManifestsPointAtWhatExists: the Argo CD Applications and Flux
// objects of config/gitops name paths that exist and build (kustomize), give
// the chart values it accepts (rendered with them), and refer to each
// other by the right names. Flux reconciles such a Kustomization for real
// in test/e2e (flux_test.go); Argo CD cannot run here, and its health
// script is run in controllers/edgerollout.
func TestGitOpsManifestsPointAtWhatExists(t *testing.T) {
	var files []string
	err := filepath.WalkDir(filepath.Join(root, "config", "gitops"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".yaml") {
			files = append(files, path)
		}
		return err
	})
	if err != nil || len(files) == 0 {
		t.Fatalf("no GitOps manifests: %v", err)
	}
	// objs is every object by kind and name, which is how they refer to
	// each other; all of them, by file, are checked (operator.yaml and
	// operator-kustomize.yaml both define Kustomization/slmops-operator:
	// one is applied in place of the other).
	objs := map[string]*unstructured.Unstructured{}
	type defined struct {
		key string
		obj *unstructured.Unstructured
	}
	var all []defined
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		for _, o := range parseManifests(t, string(raw)) {
			objs[o.GetKind()+"/"+o.GetName()] = o
			all = append(all, defined{rel + ": " + o.GetKind() + "/" + o.GetName(), o})
		}
	}
	var checked []string
	for _, d := range all {
		key, o := d.key, d.obj
		switch o.GetKind() {
		case "Application": // Argo CD
			path, _, _ := unstructured.NestedString(o.Object, "spec", "source", "path")
			if path == "charts/slmops" {
				values, _, _ := unstructured.NestedMap(o.Object, "spec", "source", "helm", "valuesObject")
				renderWith(t, key, values)
			} else {
				kustomizeBuilds(t, key, path)
			}
			checked = append(checked, key)
		case "HelmRelease": // Flux
			chart, _, _ := unstructured.NestedString(o.Object, "spec", "chart", "spec", "chart")
			if strings.TrimPrefix(chart, "./") != "charts/slmops" {
				t.Errorf("%s installs %q; want ./charts/slmops", key, chart)
			}
			source, _, _ := unstructured.NestedString(o.Object, "spec", "chart", "spec", "sourceRef", "name")
			if objs["GitRepository/"+source] == nil {
				t.Errorf("%s's source %q is not defined", key, source)
			}
			values, _, _ := unstructured.NestedMap(o.Object, "spec", "values")
			renderWith(t, key, values)
			checked = append(checked, key)
		case "Kustomization":
			if o.GetAPIVersion() == "kustomize.config.k8s.io/v1beta1" {
				continue // a kustomize file, built through the Flux Kustomization that points at it
			}
			path, _, _ := unstructured.NestedString(o.Object, "spec", "path")
			kustomizeBuilds(t, key, strings.TrimPrefix(path, "./"))
			source, _, _ := unstructured.NestedString(o.Object, "spec", "sourceRef", "name")
			if objs["GitRepository/"+source] == nil {
				t.Errorf("%s's source %q is not defined", key, source)
			}
			deps, _, _ := unstructured.NestedSlice(o.Object, "spec", "dependsOn")
			for _, dep := range deps {
				name, _ := dep.(map[string]any)["name"].(string)
				if objs["Kustomization/"+name] == nil {
					t.Errorf("%s depends on Kustomization %q, which is not defined", key, name)
				}
			}
			if wait, _, _ := unstructured.NestedBool(o.Object, "spec", "wait"); !wait {
				t.Errorf("%s does not wait: Flux would not read the rollouts' health", key)
			}
			checked = append(checked, key)
		}
	}
	t.Logf("checked %v", checked)
	if len(checked) < 6 {
		t.Errorf("checked only %v", checked)
	}
}

func renderWith(t *testing.T, who string, values map[string]any) {
	t.Helper()
	raw, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(f, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := helm("template", "slmops", chartDir, "--values", f); err != nil {
		t.Errorf("%s: the chart does not render with its values: %v\n%s", who, err, out)
	}
}

func kustomizeBuilds(t *testing.T, who, path string) {
	t.Helper()
	if out, err := exec.Command(kubectlBin, "kustomize", filepath.Join(root, path)).CombinedOutput(); err != nil {
		t.Errorf("%s: kustomize %s does not build: %v\n%s", who, path, err, out)
	}
}
