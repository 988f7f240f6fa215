package v1alpha1_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/test/testenv"
)

// minimalObjects leave out every optional block, or give it empty or in part,
// as a person writes YAML: a Go client always sends the struct fields that
// have no omitempty pointer (runtime: {}), so only YAML finds a block without
// defaults.
const minimalObjects = `
apiVersion: slmops.dev/v1alpha1
kind: SLMModel
metadata: {name: only-required}
spec:
  source: {http: {url: "https://models.example.com/m.gguf"}}
  digest: ` + digestA + `
  quantization: Q4_0
---
apiVersion: slmops.dev/v1alpha1
kind: SLMModel
metadata: {name: empty-runtime}
spec:
  source: {oci: {reference: "registry.example.com/models/m:q8_0"}}
  digest: ` + digestA + `
  quantization: Q8_0
  runtime: {}
---
apiVersion: slmops.dev/v1alpha1
kind: SLMModel
metadata: {name: blocks-in-part}
spec:
  source: {http: {url: "https://models.example.com/m.gguf"}}
  digest: ` + digestA + `
  quantization: Q4_K_M
  runtime: {threads: 2}
  selfTest:
    prompts: [{prompt: "hi"}]
  variants:
  - name: arm64
    nodeSelector: {matchLabels: {kubernetes.io/arch: arm64}}
    source: {http: {url: "https://models.example.com/arm.gguf"}}
    digest: ` + digestB + `
    quantization: Q4_0
---
apiVersion: slmops.dev/v1alpha1
kind: EdgeRollout
metadata: {name: only-required}
spec:
  modelRef: {name: only-required}
---
apiVersion: slmops.dev/v1alpha1
kind: EdgeRollout
metadata: {name: empty-blocks}
spec:
  modelRef: {name: only-required}
  template: {}
  strategy: {canary: {}}
  analysis: {}
  distribution: {staging: {}, fit: {}}
---
apiVersion: slmops.dev/v1alpha1
kind: EdgeRollout
metadata: {name: blocks-in-part}
spec:
  modelRef: {name: only-required}
  template: {image: "ghcr.io/slmops/inferd:dev"}
  strategy:
    canary:
      steps: [{nodes: 1}, {nodes: "100%"}]
      unreachableNodes: {policy: Wait}
      topologyKey: topology.kubernetes.io/zone
  analysis: {successRatio: "0.9"}
  distribution:
    staging: {windows: [{start: "22:00", end: "06:00"}], timeZone: Europe/Berlin}
    peerSharing: {}
`

// TestAppliedManifestsGetTheirDefaults: the samples, the README's YAML
// examples and minimal objects go through kubectl apply to the API server as
// written, and read back with every default that the operator relies on
// filled in (a model without spec.runtime once reached inferd with a context
// length and a concurrency of 0).
func TestAppliedManifestsGetTheirDefaults(t *testing.T) {
	sources := map[string][]string{"minimal": splitDocuments(minimalObjects)}
	samples, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "slmops_*.yaml"))
	if err != nil || len(samples) < 2 {
		t.Fatalf("samples: %v, %v", samples, err)
	}
	for _, f := range samples {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sources["samples"] = append(sources["samples"], splitDocuments(string(data))...)
	}
	readme, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	sources["readme"] = readmeExamples(string(readme))
	t.Logf("the README has %d SLMModel or EdgeRollout examples", len(sources["readme"]))
	if len(sources["readme"]) < 2 {
		t.Errorf("the README has %d SLMModel or EdgeRollout examples; its API reference shows at least one of each", len(sources["readme"]))
	}

	for source, docs := range sources {
		ns := "applied-" + source
		if err := env.CreateNamespace(ns); err != nil {
			t.Fatal(err)
		}
		for _, doc := range docs {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
				t.Fatalf("%s: %v\n%s", source, err, doc)
			}
			// Each source gets a namespace of its own, so that names may repeat.
			unstructured.RemoveNestedField(u.Object, "metadata", "namespace")
			written, err := yaml.Marshal(u.Object)
			if err != nil {
				t.Fatal(err)
			}
			t.Run(source+"/"+u.GetKind()+"/"+u.GetName(), func(t *testing.T) {
				file := filepath.Join(t.TempDir(), "object.yaml")
				if err := os.WriteFile(file, written, 0o600); err != nil {
					t.Fatal(err)
				}
				if out, err := env.Kubectl("apply", "-n", ns, "-f", file); err != nil {
					t.Fatalf("kubectl apply: %v\n%s\n%s", err, out, written)
				}
				got := &unstructured.Unstructured{}
				got.SetGroupVersionKind(slmopsv1alpha1.GroupVersion.WithKind(u.GetKind()))
				if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: u.GetName()}, got); err != nil {
					t.Fatal(err)
				}
				switch u.GetKind() {
				case "SLMModel":
					checkModelDefaults(t, got)
				case "EdgeRollout":
					checkRolloutDefaults(t, got)
				default:
					t.Fatalf("kind %q", u.GetKind())
				}
			})
		}
	}
}

func checkModelDefaults(t *testing.T, u *unstructured.Unstructured) {
	t.Helper()
	var m slmopsv1alpha1.SLMModel
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &m); err != nil {
		t.Fatal(err)
	}
	s := m.Spec
	if s.Format != slmopsv1alpha1.ModelFormatGGUF {
		t.Errorf("format = %q, want the default GGUF", s.Format)
	}
	if s.Runtime.ContextLength <= 0 || s.Runtime.MaxConcurrentRequests <= 0 || s.Runtime.CPUPolicy != slmopsv1alpha1.CPUPolicyAuto {
		t.Errorf("runtime = %+v, want contextLength, maxConcurrentRequests and cpuPolicy (Auto) defaulted", s.Runtime)
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "source", "http"); found {
		if _, found, _ := unstructured.NestedBool(u.Object, "spec", "source", "http", "allowInsecureHTTP"); !found {
			t.Error("source.http.allowInsecureHTTP was not defaulted")
		}
	}
	if st := s.SelfTest; st != nil {
		if st.Timeout == nil {
			t.Error("selfTest.timeout was not defaulted")
		}
		for i, p := range st.Prompts {
			if p.MaxTokens <= 0 {
				t.Errorf("selfTest.prompts[%d].maxTokens = %d, want the default", i, p.MaxTokens)
			}
		}
	}
}

func checkRolloutDefaults(t *testing.T, u *unstructured.Unstructured) {
	t.Helper()
	var r slmopsv1alpha1.EdgeRollout
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &r); err != nil {
		t.Fatal(err)
	}
	s := r.Spec
	if s.Template.Port <= 0 || s.Template.ImagePullPolicy == "" {
		t.Errorf("template = %+v, want port and imagePullPolicy defaulted", s.Template)
	}
	c := s.Strategy.Canary
	if len(c.Steps) == 0 || c.Steps[len(c.Steps)-1].Nodes.String() != "100%" {
		t.Errorf("strategy.canary.steps = %v, want steps that end at 100%%", c.Steps)
	}
	if c.MaxUnavailable == nil || c.MinReadySeconds == nil || c.ProgressDeadlineSeconds <= 0 || c.TopologyOrder == "" {
		t.Errorf("strategy.canary = %+v, want maxUnavailable, minReadySeconds, progressDeadlineSeconds and topologyOrder defaulted", c)
	}
	if c.UnreachableNodes.Policy == "" || c.UnreachableNodes.Deadline == nil {
		t.Errorf("strategy.canary.unreachableNodes = %+v, want policy and deadline defaulted", c.UnreachableNodes)
	}
	if s.Analysis.SuccessRatio == "" || s.Analysis.MaxFailedNodes == nil {
		t.Errorf("analysis = %+v, want successRatio and maxFailedNodes defaulted", s.Analysis)
	}
	if s.RollbackPolicy == "" {
		t.Error("rollbackPolicy was not defaulted")
	}
	d := s.Distribution
	if d.Fit.MemoryHeadroom == nil || d.Fit.DiskHeadroom == nil || d.MaxExcludedNodes == nil {
		t.Errorf("distribution = %+v, want fit and maxExcludedNodes defaulted", d)
	}
	if d.Staging != nil && (d.Staging.LookaheadSteps == nil || d.Staging.MaxConcurrentNodes <= 0) {
		t.Errorf("distribution.staging = %+v, want lookaheadSteps and maxConcurrentNodes defaulted", d.Staging)
	}
	if d.PeerSharing != nil && d.PeerSharing.MaxPeers <= 0 {
		t.Errorf("distribution.peerSharing = %+v, want maxPeers defaulted", d.PeerSharing)
	}
}

// splitDocuments splits a YAML stream into its non-empty documents.
func splitDocuments(stream string) []string {
	var out []string
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(stream, -1) {
		var v map[string]any
		if err := yaml.Unmarshal([]byte(doc), &v); err == nil && len(v) == 0 {
			continue
		}
		out = append(out, doc)
	}
	return out
}

var yamlBlock = regexp.MustCompile("(?ms)^```ya?ml\\s*$\n(.*?)^```\\s*$")

// readmeExamples returns the SLMModel and EdgeRollout documents of the
// README's yaml code blocks.
func readmeExamples(readme string) []string {
	var out []string
	for _, m := range yamlBlock.FindAllStringSubmatch(readme, -1) {
		for _, doc := range splitDocuments(m[1]) {
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				// Not an object: a fragment that shows one field.
				continue
			}
			if strings.HasPrefix(head.APIVersion, slmopsv1alpha1.GroupVersion.Group+"/") && (head.Kind == "SLMModel" || head.Kind == "EdgeRollout") {
				out = append(out, doc)
			}
		}
	}
	return out
}

// TestReadmeExamplesAreFound: the README extraction finds a yaml block's
// objects and only those.
func TestReadmeExamplesAreFound(t *testing.T) {
	readme := "text\n```yaml\napiVersion: slmops.dev/v1alpha1\nkind: SLMModel\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\n```\n" +
		"```sh\nkubectl apply -f x.yaml\n```\n```yml\nkind: EdgeRollout\napiVersion: slmops.dev/v1alpha1\n```\n```yaml\nspec:\n  runtime: {}\n```\n"
	got := readmeExamples(readme)
	if len(got) != 2 || !strings.Contains(got[0], "kind: SLMModel") || !strings.Contains(got[1], "kind: EdgeRollout") {
		t.Errorf("readmeExamples = %q, want the SLMModel and the EdgeRollout", got)
	}
}

// TestTimeZonesAreCheckedAgainstTheZoneDatabase: the API server's CEL knows
// the IANA zones (kube-apiserver embeds Go's time/tzdata), so a zone that does
// not exist is refused at admission instead of staging in UTC.
func TestTimeZonesAreCheckedAgainstTheZoneDatabase(t *testing.T) {
	for zone, ok := range map[string]bool{
		"Europe/Berlin": true, "America/Argentina/Buenos_Aires": true, "Asia/Kolkata": true, "UTC": true, "Etc/GMT+5": true,
		"Mars/Olympus": false, "Europe/Berln": false, "CEST": false,
	} {
		t.Run(zone, func(t *testing.T) {
			r := object(t, validRollout, map[string]any{"distribution": `{staging: {windows: [{start: "22:00", end: "06:00"}]}}`})
			if err := unstructured.SetNestedField(r.Object, zone, "spec", "distribution", "staging", "timeZone"); err != nil {
				t.Fatal(err)
			}
			err := env.Client.Create(context.Background(), r)
			switch {
			case ok && err != nil:
				t.Fatalf("%s refused: %v", zone, err)
			case !ok && err == nil:
				t.Fatalf("%s accepted", zone)
			case !ok:
				// CEL reports the unknown zone as an evaluation error, whose
				// text comes before the rule's message.
				for _, want := range []string{"spec.distribution.staging.timeZone", "unknown time zone " + zone, timeZoneMessage} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("the error does not say %q: %v", want, err)
					}
				}
				if n := len(causes(t, err)); n != 1 {
					t.Errorf("%d causes, want 1: %v", n, err)
				}
			}
		})
	}
}
