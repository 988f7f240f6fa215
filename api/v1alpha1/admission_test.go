package v1alpha1_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/test/testenv"
)

func TestCRDsAreServed(t *testing.T) {
	for _, kind := range []string{"SLMModel", "EdgeRollout"} {
		if !env.Served(slmopsv1alpha1.GroupVersion.WithKind(kind)) {
			t.Errorf("the API server does not serve %s", kind)
		}
	}
}

const (
	digestA = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	digestB = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

// The messages that say what to fix, where several cases share one.
const (
	digestMessage       = "digest must be sha256: followed by 64 lowercase hex digits (0-9, a-f), as sha256sum prints them"
	quantizationMessage = "quantization must be one that inferd runs: F32, F16, BF16, Q8_0, Q6_K, Q5_K_M, Q5_K_S, Q5_1, Q5_0, Q4_K_M, Q4_K_S, Q4_1, Q4_0, Q3_K_L, Q3_K_M, Q3_K_S, Q2_K or Q2_K_S (requantize other files, for example with llama.cpp's llama-quantize)"
	architectureMessage = "architecture must be one that inferd runs: llama, qwen2, qwen3, phi3, gemma3, granite, smollm3 or slmops-bigram"
	ttftMessage         = "selfTest.maxTimeToFirstToken must be a positive duration such as 1500ms or 2s (a number and a unit: ms, s, m or h)"
	pauseMessage        = "pause.duration must be a duration from 0s to 720h, such as 90s, 10m or 1h30m (a number and a unit: s, m or h)"
	successRatioMessage = "analysis.successRatio must be a fraction from 0 to 1 with at most 4 decimals, such as 0.95 (not a percentage)"
	timeZoneMessage     = "distribution.staging.timeZone must be an IANA time zone name such as Europe/Berlin, America/New_York or UTC"
	maxExcludedMessage  = "maxExcludedNodes must be a node count of at least 0 or a percentage from 0% to 100%, such as 10%"
)

// leaks are what an error shows when a rule fails on an input it did not
// expect, instead of saying what to fix: CEL evaluation errors, and a schema
// pattern printed as the only explanation.
var leaks = []string{
	"evaluating rule", "type conversion error", "index out of bounds", "no such key", "no such overload",
	"google.protobuf", "should match '", "<nil>", "some validation rules were not checked",
}

// skipsRules are the mistakes for which the API server adds, after its clear
// message, that it did not run the CEL rules: a required field is missing, or
// a length or item limit is exceeded. It checks those bounds first because
// the CEL cost limits rely on them, so no schema can avoid the note.
var skipsRules = map[string]bool{
	"a model needs a source": true, "a URL has a length limit": true, "a model needs a digest": true,
	"a quantization is required": true, "a variant has a digest": true, "a rollout names its model": true,
	"at most twenty steps": true,
}

// checkOneClearMessage fails unless err has exactly one cause (two when the
// API server adds its note that it skipped the CEL rules) and shows none of
// the leaks.
func checkOneClearMessage(t *testing.T, err error, skipsRules bool) {
	t.Helper()
	want := 1
	if skipsRules {
		want = 2
	}
	if n := len(causes(t, err)); n != want {
		t.Errorf("%d causes, want %d: %v", n, want, err)
	}
	text := err.Error()
	if skipsRules {
		text = strings.Replace(text, "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation", "", 1)
	}
	for _, leak := range leaks {
		if strings.Contains(text, leak) {
			t.Errorf("the error shows %q instead of only saying what to fix: %v", leak, err)
		}
	}
}

// causes are the field errors of an Invalid error.
func causes(t *testing.T, err error) []metav1.StatusCause {
	t.Helper()
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		t.Fatalf("not an API status with details: %v", err)
	}
	return status.Status().Details.Causes
}

// validModel is the smallest SLMModel the API server accepts; the cases below
// change one thing in it.
const validModel = `
apiVersion: slmops.dev/v1alpha1
kind: SLMModel
metadata: {generateName: model-}
spec:
  source:
    http: {url: "https://models.example.com/tinyllama-q4_0.gguf"}
  digest: ` + digestA + `
  quantization: Q4_0
`

// validRollout is the smallest EdgeRollout the API server accepts.
const validRollout = `
apiVersion: slmops.dev/v1alpha1
kind: EdgeRollout
metadata: {generateName: rollout-}
spec:
  modelRef: {name: tinyllama}
`

// object parses base, then sets each path (dot-separated, under spec) to the
// YAML value given; a nil value deletes the field.
func object(t *testing.T, base string, set map[string]any) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(base), &u.Object); err != nil {
		t.Fatal(err)
	}
	for path, value := range set {
		fields := append([]string{"spec"}, strings.Split(path, ".")...)
		if value == nil {
			unstructured.RemoveNestedField(u.Object, fields...)
			continue
		}
		if s, ok := value.(string); ok {
			var parsed any
			if err := yaml.Unmarshal([]byte(s), &parsed); err != nil {
				t.Fatalf("value of %s: %v", path, err)
			}
			value = parsed
		}
		if err := unstructured.SetNestedField(u.Object, value, fields...); err != nil {
			t.Fatalf("set %s: %v", path, err)
		}
	}
	u.SetNamespace("default")
	return u
}

// TestInvalidObjectsAreRejectedAtAdmission: every case is one mistake a user
// could make, and the API server's answer must say what to fix. No webhook is
// involved: this is the CRD's OpenAPI schema and CEL rules.
func TestInvalidObjectsAreRejectedAtAdmission(t *testing.T) {
	longURL := "https://models.example.com/" + strings.Repeat("a", 2048)
	twentyOneSteps := "[" + strings.Repeat("{nodes: 1},", 20) + `{nodes: "100%"}]`
	tests := map[string]struct {
		base string
		set  map[string]any
		want string
	}{
		// SLMModel: source.
		"a model needs a source": {validModel, map[string]any{"source": nil}, `spec.source: Required value`},
		"an empty source names no artifact": {validModel, map[string]any{"source": "{}"},
			"set exactly one of source.http or source.oci"},
		"a source with both http and oci is ambiguous": {validModel, map[string]any{"source.oci": "{reference: registry.example.com/models/tinyllama:q4}"},
			"set exactly one of source.http or source.oci"},
		"plain http needs an explicit opt-out": {validModel, map[string]any{"source.http.url": "http://models.example.com/m.gguf"},
			"source.http.url must start with https:// (or with http:// when allowInsecureHTTP is true)"},
		"other URL schemes are refused": {validModel, map[string]any{"source.http.url": "ftp://models.example.com/m.gguf"},
			"source.http.url must start with https://"},
		"a URL needs a host": {validModel, map[string]any{"source.http.url": "https:///m.gguf"},
			"source.http.url must be an absolute URL with a host"},
		"a URL has a length limit": {validModel, map[string]any{"source.http.url": longURL},
			"spec.source.http.url: Too long: may not be more than 2048"},
		"a CA bundle with plain http makes no sense": {validModel, map[string]any{"source.http": "{url: 'http://models.example.com/m.gguf', allowInsecureHTTP: true, caBundle: 'PEM'}"},
			"source.http.caBundle only applies to an https:// url"},
		"an OCI reference needs a tag or digest": {validModel, map[string]any{"source": "{oci: {reference: registry.example.com/models/tinyllama}}"},
			`spec.source.oci.reference: Invalid value`},
		"an OCI repository is lower case": {validModel, map[string]any{"source": "{oci: {reference: registry.example.com/Models/TinyLlama:q4}}"},
			`spec.source.oci.reference: Invalid value`},
		// SLMModel: the artifact.
		"a model needs a digest":                    {validModel, map[string]any{"digest": nil}, `spec.digest: Required value`},
		"a digest names its algorithm":              {validModel, map[string]any{"digest": strings.TrimPrefix(digestA, "sha256:")}, `spec.digest: Invalid value`},
		"a digest is lower-case hex":                {validModel, map[string]any{"digest": "sha256:" + strings.ToUpper(digestA[7:])}, digestMessage},
		"a digest is not upper-case at all":         {validModel, map[string]any{"digest": strings.ToUpper(digestA)}, digestMessage},
		"a digest is sha256":                        {validModel, map[string]any{"digest": "sha512:" + digestA[7:]}, `spec.digest: Invalid value`},
		"a quantization is required":                {validModel, map[string]any{"quantization": nil}, `spec.quantization: Required value`},
		"an unknown quantization":                   {validModel, map[string]any{"quantization": "Q4_X"}, `spec.quantization: Invalid value: "Q4_X": ` + quantizationMessage},
		"an unknown format":                         {validModel, map[string]any{"format": "ONNX"}, `spec.format: Invalid value: "ONNX": format must be GGUF, the only format inferd loads`},
		"a size is positive":                        {validModel, map[string]any{"sizeBytes": "0"}, `spec.sizeBytes: Invalid value: 0: spec.sizeBytes in body should be greater than or equal to 1`},
		"an architecture is a GGUF name":            {validModel, map[string]any{"architecture": "Llama 3"}, `spec.architecture: Invalid value: "Llama 3": ` + architectureMessage},
		"an architecture inferd cannot run":         {validModel, map[string]any{"architecture": "gpt2"}, `spec.architecture: Invalid value: "gpt2": ` + architectureMessage},
		"a context window has a floor":              {validModel, map[string]any{"runtime": "{contextLength: 64}"}, `spec.runtime.contextLength: Invalid value: 64: spec.runtime.contextLength in body should be greater than or equal to 128`},
		"threads are at least one":                  {validModel, map[string]any{"runtime": "{threads: 0}"}, `spec.runtime.threads in body should be greater than or equal to 1`},
		"a CPU policy is Auto, Shared or Exclusive": {validModel, map[string]any{"runtime": "{cpuPolicy: Dedicated}"}, `spec.runtime.cpuPolicy: Invalid value: "Dedicated": cpuPolicy must be Auto, Shared or Exclusive`},
		"concurrency is at least one":               {validModel, map[string]any{"runtime": "{maxConcurrentRequests: 0}"}, `spec.runtime.maxConcurrentRequests in body should be greater than or equal to 1`},
		"a self-test has prompts":                   {validModel, map[string]any{"selfTest": "{prompts: []}"}, `spec.selfTest.prompts: Invalid value: 0: spec.selfTest.prompts in body should have at least 1 items`},
		"a golden prompt is not empty":              {validModel, map[string]any{"selfTest": "{prompts: [{prompt: ''}]}"}, `spec.selfTest.prompts[0].prompt: Invalid value: "": spec.selfTest.prompts[0].prompt in body should be at least 1 chars long`},
		"a golden prompt is short":                  {validModel, map[string]any{"selfTest": "{prompts: [{prompt: hi, maxTokens: 1000}]}"}, `spec.selfTest.prompts[0].maxTokens in body should be less than or equal to 512`},
		"a time to first token is positive":         {validModel, map[string]any{"selfTest": "{prompts: [{prompt: hi}], maxTimeToFirstToken: '-1s'}"}, ttftMessage},
		"a time to first token is a duration":       {validModel, map[string]any{"selfTest": "{prompts: [{prompt: hi}], maxTimeToFirstToken: soon}"}, `spec.selfTest.maxTimeToFirstToken: Invalid value: "soon": ` + ttftMessage},
		"a time to first token has a unit":          {validModel, map[string]any{"selfTest": "{prompts: [{prompt: hi}], maxTimeToFirstToken: '1500'}"}, ttftMessage},
		"a self-test timeout is bounded":            {validModel, map[string]any{"selfTest": "{prompts: [{prompt: hi}], timeout: 2h}"}, "selfTest.timeout must be a duration from 1s to 1h, such as 90s or 5m"},
		"a self-test timeout is a duration":         {validModel, map[string]any{"selfTest": "{prompts: [{prompt: hi}], timeout: 5min}"}, "selfTest.timeout must be a duration from 1s to 1h, such as 90s or 5m"},
		// SLMModel: variants.
		"variant names are unique": {validModel, map[string]any{"variants": fmt.Sprintf(`[
			{name: arm, nodeSelector: {matchLabels: {kubernetes.io/arch: arm64}}, source: {http: {url: "https://m.example.com/a.gguf"}}, digest: %[1]s, quantization: Q4_0},
			{name: arm, nodeSelector: {matchLabels: {kubernetes.io/arch: arm}}, source: {http: {url: "https://m.example.com/b.gguf"}}, digest: %[1]s, quantization: Q8_0}]`, digestB)},
			`spec.variants[1]: Duplicate value`},
		"two variants with one node selector": {validModel, map[string]any{"variants": fmt.Sprintf(`[
			{name: arm64-q4, nodeSelector: {matchLabels: {kubernetes.io/arch: arm64}}, source: {http: {url: "https://m.example.com/a.gguf"}}, digest: %[1]s, quantization: Q4_0},
			{name: amd64-q8, nodeSelector: {matchLabels: {kubernetes.io/arch: amd64}}, source: {http: {url: "https://m.example.com/b.gguf"}}, digest: %[1]s, quantization: Q8_0},
			{name: arm64-q8, nodeSelector: {matchLabels: {kubernetes.io/arch: arm64}}, source: {http: {url: "https://m.example.com/c.gguf"}}, digest: %[1]s, quantization: Q8_0}]`, digestB)},
			"spec.variants: Invalid value: variant arm64-q8 has the nodeSelector of an earlier variant, so it can never match (the first variant that matches a node wins): give it its own nodeSelector or remove it"},
		"two variants that both select every node": {validModel, map[string]any{"variants": fmt.Sprintf(`[
			{name: a, nodeSelector: {}, source: {http: {url: "https://m.example.com/a.gguf"}}, digest: %[1]s, quantization: Q4_0},
			{name: b, nodeSelector: {}, source: {http: {url: "https://m.example.com/b.gguf"}}, digest: %[1]s, quantization: Q8_0}]`, digestB)},
			"variant b has the nodeSelector of an earlier variant"},
		"a variant's quantization is one inferd runs": {validModel, map[string]any{"variants": fmt.Sprintf(`[{name: arm, nodeSelector: {}, source: {http: {url: "https://m.example.com/a.gguf"}}, digest: %s, quantization: IQ4_XS}]`, digestB)},
			`spec.variants[0].quantization: Invalid value: "IQ4_XS": ` + quantizationMessage},
		"a variant's digest is lower-case hex": {validModel, map[string]any{"variants": fmt.Sprintf(`[{name: arm, nodeSelector: {}, source: {http: {url: "https://m.example.com/a.gguf"}}, digest: %s, quantization: Q8_0}]`, "sha256:"+strings.ToUpper(digestB[7:]))},
			`spec.variants[0].digest: Invalid value: "sha256:FEDCBA`},
		"a variant has a digest": {validModel, map[string]any{"variants": `[{name: arm, nodeSelector: {}, source: {http: {url: "https://m.example.com/a.gguf"}}, quantization: Q4_0}]`},
			`spec.variants[0].digest: Required value`},
		"a variant is another file": {validModel, map[string]any{"variants": fmt.Sprintf(`[{name: arm, nodeSelector: {}, source: {http: {url: "https://m.example.com/a.gguf"}}, digest: %s, quantization: Q4_0}]`, digestA)},
			"a variant's digest must differ from spec.digest"},
		"a variant name is a DNS label": {validModel, map[string]any{"variants": fmt.Sprintf(`[{name: ARM_64, nodeSelector: {}, source: {http: {url: "https://m.example.com/a.gguf"}}, digest: %s, quantization: Q4_0}]`, digestB)},
			`spec.variants[0].name: Invalid value`},
		"a variant's node selector is checked too": {validModel, map[string]any{"variants": fmt.Sprintf(`[{name: arm, nodeSelector: {matchExpressions: [{key: a, operator: Like}]}, source: {http: {url: "https://m.example.com/a.gguf"}}, digest: %s, quantization: Q4_0}]`, digestB)},
			`spec.variants[0].nodeSelector.matchExpressions[0].operator: Invalid value: "Like": operator must be In, NotIn, Exists or DoesNotExist`},
		"a variant's source is checked too": {validModel, map[string]any{"variants": fmt.Sprintf(`[{name: arm, nodeSelector: {}, source: {http: {url: "http://m.example.com/a.gguf"}}, digest: %s, quantization: Q4_0}]`, digestB)},
			"source.http.url must start with https://"},

		// EdgeRollout: what and where.
		"a rollout names its model":           {validRollout, map[string]any{"modelRef": nil}, `spec.modelRef: Required value`},
		"a model name is not empty":           {validRollout, map[string]any{"modelRef": "{name: ''}"}, `spec.modelRef.name: Invalid value: "": spec.modelRef.name in body should be at least 1 chars long`},
		"a node selector is a label selector": {validRollout, map[string]any{"nodeSelector": "{matchExpressions: [{key: zone, operator: Near}]}"}, `spec.nodeSelector.matchExpressions[0].operator: Invalid value: "Near": operator must be In, NotIn, Exists or DoesNotExist`},
		"In needs values":                     {validRollout, map[string]any{"nodeSelector": "{matchExpressions: [{key: zone, operator: In}]}"}, "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist"},
		// EdgeRollout: canary steps.
		"a canary has steps":                {validRollout, map[string]any{"strategy": "{canary: {steps: []}}"}, `spec.strategy.canary.steps: Invalid value: strategy.canary.steps must not be empty: list steps that end with nodes: "100%", or leave steps out for the default 10%, 50%, 100%`},
		"the last step reaches every node":  {validRollout, map[string]any{"strategy": `{canary: {steps: [{nodes: "5%"}, {nodes: "50%"}]}}`}, `the last canary step must be nodes: "100%"`},
		"a step of zero percent":            {validRollout, map[string]any{"strategy": `{canary: {steps: [{nodes: "0%"}, {nodes: "100%"}]}}`}, "nodes must be a node count of at least 1 or a percentage from 1% to 100%"},
		"a step of zero nodes":              {validRollout, map[string]any{"strategy": `{canary: {steps: [{nodes: 0}, {nodes: "100%"}]}}`}, "nodes must be a node count of at least 1 or a percentage from 1% to 100%"},
		"a step above one hundred percent":  {validRollout, map[string]any{"strategy": `{canary: {steps: [{nodes: "150%"}, {nodes: "100%"}]}}`}, "nodes must be a node count of at least 1 or a percentage from 1% to 100%"},
		"a step of a fraction of a percent": {validRollout, map[string]any{"strategy": `{canary: {steps: [{nodes: "10.5%"}, {nodes: "100%"}]}}`}, `spec.strategy.canary.steps[0].nodes: Invalid value: "10.5%": nodes must be a node count of at least 1 or a percentage from 1% to 100%`},
		"a step that is not a number":       {validRollout, map[string]any{"strategy": `{canary: {steps: [{nodes: "some"}, {nodes: "100%"}]}}`}, "nodes must be a node count of at least 1 or a percentage from 1% to 100%"},
		"percentages that shrink":           {validRollout, map[string]any{"strategy": `{canary: {steps: [{nodes: "50%"}, {nodes: "10%"}, {nodes: "100%"}]}}`}, "percentage steps must strictly increase"},
		"percentages that repeat":           {validRollout, map[string]any{"strategy": `{canary: {steps: [{nodes: "10%"}, {nodes: "10%"}, {nodes: "100%"}]}}`}, "percentage steps must strictly increase"},
		"node counts that shrink":           {validRollout, map[string]any{"strategy": `{canary: {steps: [{nodes: 10}, {nodes: 5}, {nodes: "100%"}]}}`}, "node-count steps must strictly increase"},
		"at most twenty steps":              {validRollout, map[string]any{"strategy": "{canary: {steps: " + twentyOneSteps + "}}"}, `spec.strategy.canary.steps: Too many: 21: must have at most 20 items`},
		"a pause is not negative":           {validRollout, map[string]any{"strategy": `{canary: {steps: [{nodes: 1, pause: {duration: "-5m"}}, {nodes: "100%"}]}}`}, pauseMessage},
		"a pause is a Go duration":          {validRollout, map[string]any{"strategy": `{canary: {steps: [{nodes: 1, pause: {duration: "10min"}}, {nodes: "100%"}]}}`}, `spec.strategy.canary.steps[0].pause.duration: Invalid value: "10min": ` + pauseMessage},
		"a pause is at most 30 days":        {validRollout, map[string]any{"strategy": `{canary: {steps: [{nodes: 1, pause: {duration: "721h"}}, {nodes: "100%"}]}}`}, pauseMessage},
		// EdgeRollout: pace and policy.
		"maxUnavailable is at least one node":    {validRollout, map[string]any{"strategy": `{canary: {maxUnavailable: "0%"}}`}, "maxUnavailable must be a node count of at least 1 or a percentage from 1% to 100%"},
		"minReadySeconds is not negative":        {validRollout, map[string]any{"strategy": `{canary: {minReadySeconds: -1}}`}, `spec.strategy.canary.minReadySeconds in body should be greater than or equal to 0`},
		"a progress deadline has a floor":        {validRollout, map[string]any{"strategy": `{canary: {progressDeadlineSeconds: 10}}`}, `spec.strategy.canary.progressDeadlineSeconds in body should be greater than or equal to 30`},
		"an unknown unreachable-node policy":     {validRollout, map[string]any{"strategy": `{canary: {unreachableNodes: {policy: Ignore}}}`}, `spec.strategy.canary.unreachableNodes.policy: Invalid value: "Ignore": unreachableNodes.policy must be Skip (go on without them) or Wait (hold the step up to the deadline)`},
		"a deadline is a Go duration":            {validRollout, map[string]any{"strategy": `{canary: {unreachableNodes: {policy: Wait, deadline: 1d}}}`}, `spec.strategy.canary.unreachableNodes.deadline: Invalid value: "1d": unreachableNodes.deadline must be a duration from 1s to 168h, such as 90s, 10m or 2h`},
		"an unknown topology order":              {validRollout, map[string]any{"strategy": `{canary: {topologyKey: zone, topologyOrder: Random}}`}, `spec.strategy.canary.topologyOrder: Invalid value: "Random": topologyOrder must be Spread or SiteBySite`},
		"a topology key is a label key":          {validRollout, map[string]any{"strategy": `{canary: {topologyKey: "bad key!"}}`}, `spec.strategy.canary.topologyKey: Invalid value: "bad key!": topologyKey must be a node label key, such as topology.kubernetes.io/zone`},
		"site by site needs sites":               {validRollout, map[string]any{"strategy": `{canary: {topologyOrder: SiteBySite}}`}, "strategy.canary.topologyOrder SiteBySite needs strategy.canary.topologyKey"},
		"a success ratio is at most one":         {validRollout, map[string]any{"analysis": `{successRatio: "1.5"}`}, `spec.analysis.successRatio: Invalid value: "1.5": ` + successRatioMessage},
		"a success ratio is not a percentage":    {validRollout, map[string]any{"analysis": `{successRatio: "95%"}`}, `spec.analysis.successRatio: Invalid value: "95%": ` + successRatioMessage},
		"failed nodes are not negative":          {validRollout, map[string]any{"analysis": `{maxFailedNodes: -1}`}, "maxFailedNodes must be a node count of at least 0 or a percentage from 0% to 100%"},
		"an unknown rollback policy":             {validRollout, map[string]any{"rollbackPolicy": "Sometimes"}, `spec.rollbackPolicy: Invalid value: "Sometimes": rollbackPolicy must be Automatic or Manual`},
		"inferd listens on an unprivileged port": {validRollout, map[string]any{"template": "{port: 80}"}, `spec.template.port: Invalid value: 80: spec.template.port in body should be greater than or equal to 1024`},
		"an unknown pull policy":                 {validRollout, map[string]any{"template": "{imagePullPolicy: Sometimes}"}, `spec.template.imagePullPolicy: Invalid value: "Sometimes": imagePullPolicy must be Always, IfNotPresent or Never`},
		// EdgeRollout: distribution.
		"peer sharing needs sites":                   {validRollout, map[string]any{"distribution": "{staging: {}, peerSharing: {}}"}, "distribution.peerSharing needs a topologyKey"},
		"peer sharing needs staging":                 {validRollout, map[string]any{"distribution": "{peerSharing: {topologyKey: zone}}"}, "distribution.peerSharing needs distribution.staging"},
		"a staging window is a time of day":          {validRollout, map[string]any{"distribution": `{staging: {windows: [{start: "25:00", end: "06:00"}]}}`}, `spec.distribution.staging.windows[0].start: Invalid value: "25:00": a staging window's start must be a time of day as HH:MM, 24-hour, such as 22:00`},
		"a staging window ends at a time of day":     {validRollout, map[string]any{"distribution": `{staging: {windows: [{start: "22:00", end: "6am"}]}}`}, `spec.distribution.staging.windows[0].end: Invalid value: "6am": a staging window's end must be a time of day as HH:MM, 24-hour, such as 06:00`},
		"an empty staging window":                    {validRollout, map[string]any{"distribution": `{staging: {windows: [{start: "22:00", end: "22:00"}]}}`}, "a staging window must not start and end at the same time"},
		"a download budget of bytes":                 {validRollout, map[string]any{"distribution": `{staging: {maxBytesPerSecond: "100"}}`}, "spec.distribution.staging.maxBytesPerSecond: Invalid value: \"100\": maxBytesPerSecond must be a quantity of bytes of at least 1Ki, such as 10Mi or 200M"},
		"at least one stager at a time":              {validRollout, map[string]any{"distribution": `{staging: {maxConcurrentNodes: 0}}`}, "spec.distribution.staging.maxConcurrentNodes in body should be greater than or equal to 1"},
		"a time zone is a zone name":                 {validRollout, map[string]any{"distribution": `{staging: {timeZone: "UTC; rm -rf"}}`}, `spec.distribution.staging.timeZone: Invalid value: "UTC; rm -rf": ` + timeZoneMessage},
		"a time zone is not an offset":               {validRollout, map[string]any{"distribution": `{staging: {timeZone: "+01:00"}}`}, timeZoneMessage},
		"a time zone is not the manager's":           {validRollout, map[string]any{"distribution": `{staging: {timeZone: "Local"}}`}, timeZoneMessage},
		"excluded nodes are not negative":            {validRollout, map[string]any{"distribution": `{maxExcludedNodes: -1}`}, `spec.distribution.maxExcludedNodes: Invalid value: -1: ` + maxExcludedMessage},
		"excluded nodes are at most all":             {validRollout, map[string]any{"distribution": `{maxExcludedNodes: "150%"}`}, `spec.distribution.maxExcludedNodes: Invalid value: "150%": ` + maxExcludedMessage},
		"excluded nodes are a count or a percentage": {validRollout, map[string]any{"distribution": `{maxExcludedNodes: "ten"}`}, `spec.distribution.maxExcludedNodes: Invalid value: "ten": ` + maxExcludedMessage},
	}
	// llama.cpp file types whose tensor types inferd has no kernels for, and
	// a name in the wrong case.
	for _, q := range []string{"IQ4_XS", "IQ4_NL", "IQ3_M", "IQ2_XXS", "IQ1_S", "TQ1_0", "MXFP4_MOE", "q4_k_m"} {
		tests["a quantization inferd cannot run: "+q] = struct {
			base string
			set  map[string]any
			want string
		}{validModel, map[string]any{"quantization": q}, fmt.Sprintf(`spec.quantization: Invalid value: %q: %s`, q, quantizationMessage)}
	}
	if len(tests) < 30 {
		t.Fatalf("only %d invalid objects; the API promises at least 30 checked mistakes", len(tests))
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			obj := object(t, tc.base, tc.set)
			err := env.Client.Create(context.Background(), obj)
			if err == nil {
				t.Fatalf("the API server accepted it; want an error containing %q", tc.want)
			}
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant an Invalid error containing %q", err, tc.want)
			}
			checkOneClearMessage(t, err, skipsRules[name])
		})
	}
}

// TestValidObjectsAreAcceptedWithDefaults: the base objects are accepted, and the
// schema fills in the documented defaults.
func TestValidObjectsAreAcceptedWithDefaults(t *testing.T) {
	ctx := context.Background()
	model := object(t, validModel, nil)
	if err := env.Client.Create(ctx, model); err != nil {
		t.Fatalf("create the smallest model: %v", err)
	}
	for path, want := range map[string]any{
		"spec.format":                        "GGUF",
		"spec.source.http.allowInsecureHTTP": false,
		"spec.runtime.contextLength":         int64(2048),
		"spec.runtime.maxConcurrentRequests": int64(2),
		"spec.runtime.cpuPolicy":             "Auto",
	} {
		got, _, _ := unstructured.NestedFieldNoCopy(model.Object, strings.Split(path, ".")...)
		if got != want {
			t.Errorf("%s = %v, want the default %v", path, got, want)
		}
	}

	rollout := object(t, validRollout, nil)
	if err := env.Client.Create(ctx, rollout); err != nil {
		t.Fatalf("create the smallest rollout: %v", err)
	}
	for path, want := range map[string]any{
		"spec.rollbackPolicy":                            "Automatic",
		"spec.template.port":                             int64(8080),
		"spec.template.imagePullPolicy":                  "IfNotPresent",
		"spec.strategy.canary.maxUnavailable":            "10%",
		"spec.strategy.canary.minReadySeconds":           int64(10),
		"spec.strategy.canary.progressDeadlineSeconds":   int64(600),
		"spec.strategy.canary.unreachableNodes.policy":   "Skip",
		"spec.strategy.canary.unreachableNodes.deadline": "10m",
		"spec.strategy.canary.topologyOrder":             "Spread",
		"spec.analysis.successRatio":                     "1",
		"spec.distribution.fit.memoryHeadroom":           "256Mi",
		"spec.distribution.fit.diskHeadroom":             "512Mi",
		"spec.analysis.maxFailedNodes":                   int64(0),
		"spec.distribution.maxExcludedNodes":             "10%",
	} {
		got, _, _ := unstructured.NestedFieldNoCopy(rollout.Object, strings.Split(path, ".")...)
		if got != want {
			t.Errorf("%s = %#v, want the default %#v", path, got, want)
		}
	}
	steps, _, _ := unstructured.NestedSlice(rollout.Object, "spec", "strategy", "canary", "steps")
	if got := fmt.Sprint(steps); got != "[map[nodes:10%] map[nodes:50%] map[nodes:100%]]" {
		t.Errorf("default steps = %s, want 10%%, 50%%, 100%%", got)
	}
}

// TestExplicitZeroIsNotDefaulted: minReadySeconds: 0 means "count a pod at
// once", not "use the default of 10".
func TestExplicitZeroIsNotDefaulted(t *testing.T) {
	r := object(t, validRollout, map[string]any{"strategy": "{canary: {minReadySeconds: 0}}"})
	if err := env.Client.Create(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	got, found, _ := unstructured.NestedInt64(r.Object, "spec", "strategy", "canary", "minReadySeconds")
	if !found || got != 0 {
		t.Errorf("minReadySeconds = %d (found %v), want the explicit 0", got, found)
	}
	typed := &slmopsv1alpha1.EdgeRollout{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(r.Object, typed); err != nil {
		t.Fatal(err)
	}
	if typed.Spec.Strategy.Canary.MinReadySeconds == nil || *typed.Spec.Strategy.Canary.MinReadySeconds != 0 {
		t.Errorf("the Go type loses the explicit 0: %v", typed.Spec.Strategy.Canary.MinReadySeconds)
	}
}

// TestFileFactsChangeOnlyWithTheDigest: quantization, architecture and size
// describe the file that the digest names, so an update may change them only
// together with the digest (which makes a new revision).
func TestFileFactsChangeOnlyWithTheDigest(t *testing.T) {
	ctx := context.Background()
	model := object(t, validModel, map[string]any{"architecture": "llama"})
	if err := env.Client.Create(ctx, model); err != nil {
		t.Fatal(err)
	}
	for field, value := range map[string]any{"quantization": "Q8_0", "architecture": "qwen2", "sizeBytes": int64(1000)} {
		changed := model.DeepCopy()
		if err := unstructured.SetNestedField(changed.Object, value, "spec", field); err != nil {
			t.Fatal(err)
		}
		err := env.Client.Update(ctx, changed)
		if err == nil || !strings.Contains(err.Error(), "change them only together with spec.digest") {
			t.Errorf("changing spec.%s alone: got %v, want it refused", field, err)
		}
	}
	if err := unstructured.SetNestedField(model.Object, digestB, "spec", "digest"); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(model.Object, "Q8_0", "spec", "quantization"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Update(ctx, model); err != nil {
		t.Fatalf("a new digest with a new quantization must be accepted: %v", err)
	}
}

// TestSamplesAreAccepted: every file in config/samples works as it is.
func TestSamplesAreAccepted(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "slmops_*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("samples: %v, %v", files, err)
	}
	ns := "samples"
	if err := env.CreateNamespace(ns); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range strings.Split(string(data), "\n---\n") {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			u.SetNamespace(ns)
			if err := env.Client.Create(context.Background(), u); err != nil {
				t.Errorf("%s: %s %s refused: %v", filepath.Base(f), u.GetKind(), u.GetName(), err)
			}
		}
	}
}

// TestDistributionDefaults: staging and peer sharing turned on with {} get
// their documented defaults.
func TestDistributionDefaults(t *testing.T) {
	rollout := object(t, validRollout, map[string]any{"distribution": `{staging: {maxBytesPerSecond: 10Mi, windows: [{start: "22:00", end: "06:00"}]}, peerSharing: {topologyKey: topology.kubernetes.io/zone}}`})
	rollout.SetName("with-distribution")
	if err := env.Client.Create(context.Background(), rollout); err != nil {
		t.Fatalf("create a rollout with staging and peer sharing: %v", err)
	}
	for path, want := range map[string]any{
		"spec.distribution.staging.maxConcurrentNodes": int64(10),
		"spec.distribution.staging.lookaheadSteps":     int64(1),
		"spec.distribution.staging.maxBytesPerSecond":  "10Mi",
		"spec.distribution.peerSharing.maxPeers":       int64(3),
		"spec.distribution.fit.diskHeadroom":           "512Mi",
	} {
		got, _, _ := unstructured.NestedFieldNoCopy(rollout.Object, strings.Split(path, ".")...)
		if got != want {
			t.Errorf("%s = %v (%T), want %v", path, got, got, want)
		}
	}
}
