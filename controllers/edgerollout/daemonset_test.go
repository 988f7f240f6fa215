package edgerollout

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/controllers/edgerollout/plan"
	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/test/testutil"
)

// TestRegistryCredentialsComeFromThePullSecretAtRunTime: an OCI model's pull
// secret reaches inferd as a secretKeyRef, never as a value in the pod spec.
func TestRegistryCredentialsComeFromThePullSecretAtRunTime(t *testing.T) {
	m := &slmopsv1alpha1.SLMModel{
		ObjectMeta: metav1.ObjectMeta{Name: "tiny", Namespace: "edge"},
		Spec: slmopsv1alpha1.SLMModelSpec{
			Source: slmopsv1alpha1.ModelSource{OCI: &slmopsv1alpha1.OCISource{
				Reference: "registry.example.com/models/tiny:q4", PullSecretRef: &slmopsv1alpha1.LocalObjectReference{Name: "regcred"},
			}},
			Digest:       "sha256:" + "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12",
			Quantization: slmopsv1alpha1.QuantizationQ4_0,
			Runtime:      slmopsv1alpha1.ModelRuntime{ContextLength: 2048, MaxConcurrentRequests: 2},
		},
	}
	r := &slmopsv1alpha1.EdgeRollout{ObjectMeta: metav1.ObjectMeta{Name: "shops", Namespace: "edge"}}
	r.Spec.Template.Port = 8080
	ds, err := buildDaemonSet(r, m, computeRevision(r, m, Defaults{}), defaultArtifact(m), Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	var found *corev1.EnvVar
	for i, e := range ds.Spec.Template.Spec.Containers[0].Env {
		if e.Name == config.EnvRegistryAuth {
			found = &ds.Spec.Template.Spec.Containers[0].Env[i]
		}
		if e.Name == config.EnvAuthorization {
			t.Errorf("an OCI model got the http source's %s", e.Name)
		}
	}
	if found == nil || found.Value != "" || found.ValueFrom == nil || found.ValueFrom.SecretKeyRef == nil ||
		found.ValueFrom.SecretKeyRef.Name != "regcred" || found.ValueFrom.SecretKeyRef.Key != corev1.DockerConfigJsonKey {
		t.Fatalf("%s = %+v; want a secretKeyRef to regcred/.dockerconfigjson", config.EnvRegistryAuth, found)
	}
}

// TestRuntimeSettingsReachInferd: the model's runtime settings, the CPU
// policy among them, are what inferd reads from its config.
func TestRuntimeSettingsReachInferd(t *testing.T) {
	m, r := httpModelAndRollout()
	m.Spec.Runtime = slmopsv1alpha1.ModelRuntime{ContextLength: 4096, Threads: ptr.To[int32](2), MaxConcurrentRequests: 3,
		CPUPolicy: slmopsv1alpha1.CPUPolicyExclusive}
	ds, err := buildDaemonSet(r, m, computeRevision(r, m, Defaults{}), defaultArtifact(m), Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ds.Spec.Template.Spec.Containers[0].Env {
		if e.Name != config.EnvConfig {
			continue
		}
		t.Setenv(config.EnvConfig, e.Value)
		c, err := config.FromEnv()
		if err != nil {
			t.Fatal(err)
		}
		want := config.Runtime{ContextLength: 4096, Threads: 2, MaxConcurrentRequests: 3, CPUPolicy: config.CPUPolicyExclusive}
		if c.Runtime != want {
			t.Errorf("inferd's runtime = %+v; want %+v", c.Runtime, want)
		}
		return
	}
	t.Fatalf("the inferd container has no %s", config.EnvConfig)
}

// TestOperatorDefaultsFillTheTemplate: a rollout that names no inferd image
// runs the operator's, a new operator image is a new revision (so it rolls
// out as a canary), a rollout that names one keeps it, and the model cache
// hostPath is the operator's.
func TestOperatorDefaultsFillTheTemplate(t *testing.T) {
	m, r := httpModelAndRollout()
	build := func(d Defaults) (string, *appsv1.DaemonSet) {
		rev := computeRevision(r, m, d)
		ds, err := buildDaemonSet(r, m, rev, defaultArtifact(m), d)
		if err != nil {
			t.Fatal(err)
		}
		return rev, ds
	}
	image := func(ds *appsv1.DaemonSet) string { return ds.Spec.Template.Spec.Containers[0].Image }
	hostPath := func(ds *appsv1.DaemonSet) string {
		for _, v := range ds.Spec.Template.Spec.Volumes {
			if v.HostPath != nil {
				return v.HostPath.Path
			}
		}
		return ""
	}

	rev0, ds := build(Defaults{})
	if image(ds) != DefaultInferdImage || hostPath(ds) != config.DefaultCacheDir {
		t.Errorf("no defaults: image %q, cache %q; want %q, %q", image(ds), hostPath(ds), DefaultInferdImage, config.DefaultCacheDir)
	}
	if rev, _ := build(Defaults{InferdImage: DefaultInferdImage, ModelCacheDir: config.DefaultCacheDir}); rev != rev0 {
		t.Errorf("the built-in defaults spelled out changed the revision: %s, was %s", rev, rev0)
	}
	rev1, ds := build(Defaults{InferdImage: "registry.local/inferd:v0.2.0", ModelCacheDir: "/data/models"})
	if image(ds) != "registry.local/inferd:v0.2.0" || hostPath(ds) != "/data/models" {
		t.Errorf("operator defaults: image %q, cache %q", image(ds), hostPath(ds))
	}
	if rev1 == rev0 {
		t.Error("a new operator image did not make a new revision")
	}
	r.Spec.Template.Image = "registry.local/inferd:pinned"
	revA, ds := build(Defaults{InferdImage: "registry.local/inferd:v0.2.0"})
	revB, _ := build(Defaults{InferdImage: "registry.local/inferd:v0.3.0"})
	if image(ds) != "registry.local/inferd:pinned" || revA != revB {
		t.Errorf("a pinned image: ran %q, revisions %s and %s; want the pinned image and one revision", image(ds), revA, revB)
	}
}

// httpModelAndRollout is a model from an https source and a rollout of it.
func httpModelAndRollout() (*slmopsv1alpha1.SLMModel, *slmopsv1alpha1.EdgeRollout) {
	return testutil.Model("tiny").Digest("sha256:" + strings.Repeat("ab12", 16)).Obj(), testutil.Rollout("shops").Model("tiny").Obj()
}

func defaultArtifact(m *slmopsv1alpha1.SLMModel) plan.Artifact {
	arts, err := plan.Artifacts(m)
	if err != nil || len(arts) != 1 {
		panic(fmt.Sprintf("a model without variants has %d artifacts (%v)", len(arts), err))
	}
	return arts[0]
}

// TestTheOperatorRefusesAConfigInferdWouldRefuse: a model that admission
// let through but inferd would refuse at start (no runtime settings, as a
// YAML object without spec.runtime gave before the schema defaulted it) is
// reported by the operator, with config.Validate's words, instead of
// becoming a DaemonSet whose pods crash-loop.
func TestTheOperatorRefusesAConfigInferdWouldRefuse(t *testing.T) {
	m, r := httpModelAndRollout()
	arts := []plan.Artifact{defaultArtifact(m)}
	if msg := configError(r, m, arts, Defaults{}); msg != "" {
		t.Fatalf("a valid model is refused: %s", msg)
	}
	m.Spec.Runtime = slmopsv1alpha1.ModelRuntime{}
	msg := configError(r, m, arts, Defaults{})
	if !strings.Contains(msg, "runtime.contextLength and runtime.maxConcurrentRequests must be positive") {
		t.Errorf("configError %q; want config.Validate's message", msg)
	}
	if _, err := buildDaemonSet(r, m, "rev", arts[0], Defaults{}); err == nil {
		t.Errorf("buildDaemonSet built a DaemonSet of an invalid config")
	}
	r.Spec.Distribution.Staging = &slmopsv1alpha1.Staging{MaxConcurrentNodes: 2}
	if msg := configError(r, m, arts, Defaults{}); msg == "" {
		t.Errorf("the stager's config is not checked")
	}
}

// TestTheAPITokenComesFromASecret: template.apiTokenSecretRef reaches inferd
// as an environment variable read from the Secret, never as a value in the
// pod spec; without it inferd gets no token variable.
func TestTheAPITokenComesFromASecret(t *testing.T) {
	m, r := httpModelAndRollout()
	find := func(ds *appsv1.DaemonSet) *corev1.EnvVar {
		for _, e := range ds.Spec.Template.Spec.Containers[0].Env {
			if e.Name == config.EnvAPIToken {
				return &e
			}
		}
		return nil
	}
	ds, err := buildDaemonSet(r, m, "rev", defaultArtifact(m), Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	if e := find(ds); e != nil {
		t.Errorf("no apiTokenSecretRef, yet inferd gets %s", config.EnvAPIToken)
	}
	r.Spec.Template.APITokenSecretRef = &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "inferd-api"}, Key: "token"}
	ds, err = buildDaemonSet(r, m, "rev", defaultArtifact(m), Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	e := find(ds)
	if e == nil || e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
		e.ValueFrom.SecretKeyRef.Name != "inferd-api" || e.ValueFrom.SecretKeyRef.Key != "token" {
		t.Errorf("%s = %+v; want it read from Secret inferd-api key token", config.EnvAPIToken, e)
	}
}

// TestAQualityCheckInferdCannotCompileIsAnInvalidConfig: a golden prompt's
// expectRegex that is not RE2, or an expectJSONSchema with a keyword the
// self-test does not check, is refused by the operator with config.Validate's
// words (so the rollout says InvalidConfig), not found out on every node.
func TestAQualityCheckInferdCannotCompileIsAnInvalidConfig(t *testing.T) {
	for name, tc := range map[string]struct {
		prompt slmopsv1alpha1.GoldenPrompt
		says   string
	}{
		"a lookahead":      {slmopsv1alpha1.GoldenPrompt{Prompt: "p", MaxTokens: 4, ExpectRegex: `(?!x)`}, "selfTest.prompts[0].expectRegex: error parsing regexp"},
		"a schema keyword": {slmopsv1alpha1.GoldenPrompt{Prompt: "p", MaxTokens: 4, ExpectJSONSchema: &runtime.RawExtension{Raw: []byte(`{"type":"string","format":"email"}`)}}, `keyword "format" is not supported`},
	} {
		t.Run(name, func(t *testing.T) {
			m, r := httpModelAndRollout()
			m.Spec.SelfTest = &slmopsv1alpha1.SelfTest{Prompts: []slmopsv1alpha1.GoldenPrompt{tc.prompt}}
			if msg := configError(r, m, []plan.Artifact{defaultArtifact(m)}, Defaults{}); !strings.Contains(msg, tc.says) {
				t.Errorf("configError %q; want it to say %q", msg, tc.says)
			}
		})
	}
}

// TestOnlyServingPodsGetAToken: with reports on, a serving pod runs as the
// inferd ServiceAccount with its token and knows its own name (the downward
// API), and its config turns the report on; the rest of the locked-down
// shape stays. A stager, and every pod with reports off, gets no token.
// Every serving pod gets its memory limit from the downward API (a stager
// loads no model and gets none).
func TestOnlyServingPodsGetAToken(t *testing.T) {
	m, r := httpModelAndRollout()
	m.Spec.SelfTest = &slmopsv1alpha1.SelfTest{Prompts: []slmopsv1alpha1.GoldenPrompt{{Prompt: "hi", MaxTokens: 4}}}
	r.Spec.Distribution.Staging = &slmopsv1alpha1.Staging{MaxConcurrentNodes: 2}
	type shape struct {
		ServiceAccount string
		Token          bool
		PodEnv         map[string]string
		Report         bool
		// MemoryLimit is the downward API's source of the memory limit
		// inferd checks its estimate against: container/resource/divisor.
		MemoryLimit string
	}
	shapeOf := func(t *testing.T, ds *appsv1.DaemonSet) shape {
		spec := ds.Spec.Template.Spec
		c := spec.Containers[0]
		// What every inferd pod keeps, token or not.
		if !*spec.SecurityContext.RunAsNonRoot || spec.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
			*c.SecurityContext.AllowPrivilegeEscalation || !*c.SecurityContext.ReadOnlyRootFilesystem ||
			!cmp.Equal(c.SecurityContext.Capabilities.Drop, []corev1.Capability{"ALL"}) || *spec.EnableServiceLinks {
			t.Errorf("%s is not locked down: %+v", ds.Name, spec)
		}
		for _, v := range spec.Volumes {
			if v.Projected != nil || v.Secret != nil {
				t.Errorf("%s mounts volume %s itself; the token comes only from automountServiceAccountToken", ds.Name, v.Name)
			}
		}
		s := shape{ServiceAccount: spec.ServiceAccountName, Token: spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken}
		for _, e := range c.Env {
			switch e.Name {
			case config.EnvPodName, config.EnvPodNamespace:
				if s.PodEnv == nil {
					s.PodEnv = map[string]string{}
				}
				s.PodEnv[e.Name] = e.ValueFrom.FieldRef.FieldPath
			case config.EnvMemoryLimit:
				ref := e.ValueFrom.ResourceFieldRef
				s.MemoryLimit = ref.ContainerName + "/" + ref.Resource + "/" + ref.Divisor.String()
			case config.EnvConfig:
				var cfg config.Config
				if err := json.Unmarshal([]byte(e.Value), &cfg); err != nil {
					t.Fatal(err)
				}
				if err := cfg.Validate(); err != nil {
					t.Errorf("%s: inferd would refuse its config: %v", ds.Name, err)
				}
				s.Report = cfg.Report.Enabled
			}
		}
		return s
	}
	const limit = containerName + "/limits.memory/1"
	reporting := shape{ServiceAccount: slmopsv1alpha1.InferdServiceAccount, Token: true, Report: true, MemoryLimit: limit,
		PodEnv: map[string]string{config.EnvPodName: "metadata.name", config.EnvPodNamespace: "metadata.namespace"}}
	for name, tc := range map[string]struct {
		d               Defaults
		serving, stager shape
	}{
		"reports off: no pod gets a token": {Defaults{}, shape{MemoryLimit: limit}, shape{}},
		"reports on: only serving pods do": {Defaults{InferdReports: true}, reporting, shape{}},
	} {
		t.Run(name, func(t *testing.T) {
			rev := computeRevision(r, m, tc.d)
			serving, err := buildDaemonSet(r, m, rev, defaultArtifact(m), tc.d)
			if err != nil {
				t.Fatal(err)
			}
			stager, err := buildStageDaemonSet(r, m, rev, defaultArtifact(m), tc.d)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.serving, shapeOf(t, serving)); diff != "" {
				t.Errorf("serving pod (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.stager, shapeOf(t, stager)); diff != "" {
				t.Errorf("stager pod (-want +got):\n%s", diff)
			}
		})
	}
}
