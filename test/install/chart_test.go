package install

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// rendered is a chart rendered by helm template, by kind and name.
type rendered map[string]*unstructured.Unstructured

func render(t *testing.T, args ...string) rendered {
	t.Helper()
	out, err := helm(append([]string{"template", "slmops", chartDir, "--namespace", "slmops-system"}, args...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, out)
	}
	return parseManifests(t, out)
}

func parseManifests(t *testing.T, manifests string) rendered {
	t.Helper()
	objs := rendered{}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("the manifests do not parse: %v", err)
		}
		if u.Object == nil {
			continue
		}
		key := u.GetKind() + "/" + u.GetName()
		if _, dup := objs[key]; dup {
			t.Errorf("%s is rendered twice", key)
		}
		objs[key] = &u
	}
	return objs
}

// as converts a rendered object into a typed one.
func as[T any](t *testing.T, r rendered, key string) *T {
	t.Helper()
	u, ok := r[key]
	if !ok {
		t.Fatalf("%s is not rendered; have %v", key, r.keys())
	}
	var out T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &out, true); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return &out
}

func (r rendered) keys() []string {
	var ks []string
	for k := range r {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestChartLints(t *testing.T) {
	for _, values := range []string{"", filepath.Join("testdata", "values-custom.yaml")} {
		args := []string{"lint", "--strict", chartDir}
		if values != "" {
			args = append(args, "--values", values)
		}
		if out, err := helm(args...); err != nil {
			t.Errorf("helm %v: %v\n%s", args, err, out)
		}
	}
}

// TestChartDefaults: the default values render a secure, least-privilege
// install whose CRDs and RBAC are what controller-gen generates.
func TestChartDefaults(t *testing.T) {
	g := NewWithT(t)
	r := render(t)
	g.Expect(r.keys()).To(ConsistOf(
		"CustomResourceDefinition/edgerollouts.slmops.dev", "CustomResourceDefinition/slmmodels.slmops.dev",
		"ServiceAccount/slmops-manager", "Deployment/slmops-manager", "Service/slmops-metrics",
		"ClusterRole/slmops-manager", "ClusterRoleBinding/slmops-manager",
		"Role/slmops-leader-election", "RoleBinding/slmops-leader-election",
		"ClusterRole/slmops-metrics-auth", "ClusterRoleBinding/slmops-metrics-auth", "ClusterRole/slmops-metrics-reader",
		"ClusterRole/slmops-editor", "ClusterRole/slmops-viewer",
	))

	d := as[appsv1.Deployment](t, r, "Deployment/slmops-manager")
	pod := d.Spec.Template.Spec
	g.Expect(pod.ServiceAccountName).To(Equal("slmops-manager"))
	g.Expect(*pod.SecurityContext.RunAsNonRoot).To(BeTrue())
	g.Expect(pod.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
	g.Expect(pod.Containers).To(HaveLen(1))
	c := pod.Containers[0]
	g.Expect(c.Image).To(Equal("ghcr.io/slmops/manager:v0.1.0"), "the tag defaults to the appVersion")
	g.Expect(*c.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
	g.Expect(*c.SecurityContext.AllowPrivilegeEscalation).To(BeFalse())
	g.Expect(c.SecurityContext.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
	g.Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
	g.Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
	g.Expect(c.Resources.Requests).NotTo(BeEmpty())
	g.Expect(c.Resources.Limits).To(HaveKey(corev1.ResourceMemory))
	g.Expect(c.Args).To(ContainElements(
		"--leader-elect=true", "--leader-election-namespace=slmops-system",
		"--metrics-bind-address=:8443", "--metrics-secure=true",
		"--inferd-image=ghcr.io/slmops/inferd:v0.1.0", "--model-cache-dir=/var/lib/slmops/models",
	))

	// The CRDs are config/crd/bases, kept when the release goes.
	for _, name := range []string{"edgerollouts.slmops.dev", "slmmodels.slmops.dev"} {
		crd := as[apiextensionsv1.CustomResourceDefinition](t, r, "CustomResourceDefinition/"+name)
		g.Expect(crd.Annotations).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"))
		want := readCRD(t, name)
		g.Expect(crd.Spec).To(Equal(want.Spec), "%s differs from config/crd/bases", name)
	}

	// The manager's rules are the generated ones; nothing has a wildcard.
	clusterRules, roleRules := generatedRules(t)
	g.Expect(as[rbacv1.ClusterRole](t, r, "ClusterRole/slmops-manager").Rules).To(Equal(clusterRules))
	g.Expect(as[rbacv1.Role](t, r, "Role/slmops-leader-election").Rules).To(Equal(roleRules))
	for _, key := range r.keys() {
		var rules []rbacv1.PolicyRule
		switch r[key].GetKind() {
		case "ClusterRole":
			rules = as[rbacv1.ClusterRole](t, r, key).Rules
		case "Role":
			rules = as[rbacv1.Role](t, r, key).Rules
		default:
			continue
		}
		for _, rule := range rules {
			for _, field := range [][]string{rule.Verbs, rule.Resources, rule.APIGroups, rule.NonResourceURLs} {
				g.Expect(field).NotTo(ContainElement("*"), "%s has a wildcard rule %+v", key, rule)
			}
		}
	}
	crb := as[rbacv1.ClusterRoleBinding](t, r, "ClusterRoleBinding/slmops-manager")
	g.Expect(crb.Subjects).To(ConsistOf(rbacv1.Subject{Kind: "ServiceAccount", Name: "slmops-manager", Namespace: "slmops-system"}))
}

// TestChartCustomValues: every value reaches what it configures.
func TestChartCustomValues(t *testing.T) {
	g := NewWithT(t)
	r := render(t, "--values", filepath.Join("testdata", "values-custom.yaml"))
	g.Expect(r).NotTo(HaveKey("ClusterRole/edge-ops-editor"), "rbac.aggregateToDefaultRoles=false")
	g.Expect(r).To(HaveKey("ServiceAccount/slmops-operator"))

	d := as[appsv1.Deployment](t, r, "Deployment/edge-ops-manager")
	pod := d.Spec.Template.Spec
	g.Expect(*d.Spec.Replicas).To(BeEquivalentTo(2))
	g.Expect(pod.ServiceAccountName).To(Equal("slmops-operator"))
	g.Expect(pod.ImagePullSecrets).To(ConsistOf(corev1.LocalObjectReference{Name: "regcred"}))
	// Helm merges maps into the defaults (a null value removes a key).
	g.Expect(pod.NodeSelector).To(Equal(map[string]string{"node-role.kubernetes.io/control-plane": "true", "kubernetes.io/os": "linux"}))
	g.Expect(pod.Tolerations).To(HaveLen(1))
	g.Expect(pod.Affinity.PodAntiAffinity).NotTo(BeNil())
	g.Expect(pod.PriorityClassName).To(Equal("system-cluster-critical"))
	g.Expect(d.Spec.Template.Annotations).To(HaveKeyWithValue("example.com/owner", "edge-team"))
	g.Expect(d.Spec.Template.Labels).To(HaveKeyWithValue("example.com/tier", "control"))
	c := pod.Containers[0]
	g.Expect(c.Image).To(Equal("registry.example.com/slmops/manager:v9.9.9"))
	g.Expect(c.ImagePullPolicy).To(Equal(corev1.PullAlways))
	g.Expect(c.Resources.Limits.Memory().String()).To(Equal("512Mi"))
	g.Expect(c.Args).To(ContainElements(
		"--inferd-image=registry.example.com/slmops/inferd:v9.9.9", "--model-cache-dir=/data/slmops/models",
		"--metrics-bind-address=:9443", "--metrics-cert-dir=/etc/slmops/metrics-certs", "--zap-log-level=debug",
	))
	g.Expect(pod.Volumes).To(ContainElement(HaveField("Secret.SecretName", "slmops-metrics-tls")))

	for _, name := range []string{"edgerollouts.slmops.dev", "slmmodels.slmops.dev"} {
		crd := as[apiextensionsv1.CustomResourceDefinition](t, r, "CustomResourceDefinition/"+name)
		g.Expect(crd.Annotations).NotTo(HaveKey("helm.sh/resource-policy"), "crds.keep=false")
	}

	// The ServiceMonitor verifies the endpoint's certificate with the
	// Secret's CA.
	sm := r["ServiceMonitor/edge-ops-manager"]
	g.Expect(sm).NotTo(BeNil(), "metrics.serviceMonitor.enabled")
	g.Expect(sm.GetLabels()).To(HaveKeyWithValue("release", "prometheus"))
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	g.Expect(endpoints).To(HaveLen(1))
	ep := endpoints[0].(map[string]any)
	g.Expect(ep).To(HaveKeyWithValue("scheme", "https"))
	g.Expect(ep).To(HaveKeyWithValue("interval", "15s"))
	tlsConfig := ep["tlsConfig"].(map[string]any)
	g.Expect(tlsConfig).NotTo(HaveKey("insecureSkipVerify"))
	g.Expect(tlsConfig).To(HaveKeyWithValue("serverName", "edge-ops-metrics.slmops-system.svc"))

	// Without the CRDs, and with plain-HTTP metrics: no metrics RBAC.
	r = render(t, "--set", "crds.install=false", "--set", "metrics.secure=false")
	for _, key := range r.keys() {
		g.Expect(key).NotTo(HavePrefix("CustomResourceDefinition/"))
		g.Expect(key).NotTo(ContainSubstring("metrics-auth"))
	}
}

// TestChartRejectsBadValues: values.schema.json stops a typo or a wrong type
// with the path of the bad value.
func TestChartRejectsBadValues(t *testing.T) {
	for set, want := range map[string]string{
		"replicaCount=two":             "/replicaCount",
		"metrics.prot=8443":            "prot",
		"inferd.modelCacheDir=models":  "/inferd/modelCacheDir",
		"image.pullPolicy=Sometimes":   "/image/pullPolicy",
		"logLevel=loud":                "/logLevel",
		"metrics.serviceMonitor.x=1":   "'x' not allowed",
		"serviceAccount.create=maybe":  "/serviceAccount/create",
		"inferd.image.repository=":     "/inferd/image/repository",
		"metrics.port=80":              "/metrics/port",
		"crds.install=yes-please-sure": "/crds/install",
	} {
		out, err := helm("template", "slmops", chartDir, "--set", set)
		if err == nil {
			t.Errorf("--set %s rendered; want a schema error", set)
			continue
		}
		if !strings.Contains(out, want) {
			t.Errorf("--set %s: the error does not name %q:\n%s", set, want, out)
		}
	}
}

func readCRD(t *testing.T, name string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	group, plural := name[strings.Index(name, ".")+1:], name[:strings.Index(name, ".")]
	raw, err := os.ReadFile(filepath.Join(root, "config", "crd", "bases", group+"_"+plural+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(raw, &crd); err != nil {
		t.Fatal(err)
	}
	return &crd
}

// generatedRules are the rules that controller-gen writes into
// config/rbac/role.yaml: the ClusterRole's and the (lease) Role's.
func generatedRules(t *testing.T) (cluster, role []rbacv1.PolicyRule) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range bytes.Split(raw, []byte("\n---\n")) {
		var obj struct {
			Kind  string              `json:"kind"`
			Rules []rbacv1.PolicyRule `json:"rules"`
		}
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatal(err)
		}
		switch obj.Kind {
		case "ClusterRole":
			cluster = obj.Rules
		case "Role":
			role = obj.Rules
		}
	}
	if cluster == nil || role == nil {
		t.Fatal("config/rbac/role.yaml has no ClusterRole or no Role")
	}
	return cluster, role
}
