package install

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
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
		"ValidatingAdmissionPolicy/slmops-manager-nodes", "ValidatingAdmissionPolicyBinding/slmops-manager-nodes",
		"ValidatingAdmissionPolicy/slmops-manager-owned", "ValidatingAdmissionPolicyBinding/slmops-manager-owned",
		"ValidatingAdmissionPolicy/slmops-manager-pods", "ValidatingAdmissionPolicyBinding/slmops-manager-pods",
		"ClusterRole/slmops-inferd-report",
		"ValidatingAdmissionPolicy/slmops-inferd-report", "ValidatingAdmissionPolicyBinding/slmops-inferd-report",
	))
	// inferd's token may patch pods, nothing else (the policy narrows it to
	// its own pod's report annotation); no namespace listed, no
	// ServiceAccount made.
	g.Expect(as[rbacv1.ClusterRole](t, r, "ClusterRole/slmops-inferd-report").Rules).To(Equal([]rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"patch"}}}))
	inferdPolicy := as[admissionregistrationv1.ValidatingAdmissionPolicy](t, r, "ValidatingAdmissionPolicy/slmops-inferd-report")
	g.Expect(inferdPolicy.Spec.FailurePolicy).To(HaveValue(Equal(admissionregistrationv1.Fail)))
	for _, v := range inferdPolicy.Spec.Validations {
		g.Expect(v.MessageExpression).NotTo(BeEmpty(), "every denial says what and why")
	}
	g.Expect(as[admissionregistrationv1.ValidatingAdmissionPolicyBinding](t, r, "ValidatingAdmissionPolicyBinding/slmops-inferd-report").Spec.ValidationActions).
		To(ConsistOf(admissionregistrationv1.Deny))

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
		"--model-cache-max-bytes=0", "--inferd-reports=true",
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

	// The admission policies act on the manager's ServiceAccount alone, and
	// deny (test/install checks what against the API server).
	checkPolicies(t, r, "slmops-manager", "system:serviceaccount:slmops-system:slmops-manager", "/var/lib/slmops/models")
}

// checkPolicies: the three admission policies and their bindings are
// rendered for the manager's ServiceAccount user and the model cache dir.
func checkPolicies(t *testing.T, r rendered, prefix, user, cacheDir string) {
	t.Helper()
	g := NewWithT(t)
	resources := map[string][]string{}
	for _, name := range []string{"nodes", "owned", "pods"} {
		vap := as[admissionregistrationv1.ValidatingAdmissionPolicy](t, r, "ValidatingAdmissionPolicy/"+prefix+"-"+name)
		g.Expect(vap.Spec.FailurePolicy).To(HaveValue(Equal(admissionregistrationv1.Fail)))
		g.Expect(vap.Spec.MatchConditions).To(ConsistOf(admissionregistrationv1.MatchCondition{
			Name: "manager", Expression: "request.userInfo.username == '" + user + "'"}))
		g.Expect(vap.Spec.Validations).NotTo(BeEmpty())
		for _, v := range vap.Spec.Validations {
			g.Expect(v.MessageExpression).NotTo(BeEmpty(), "%s: every denial says what and why", vap.Name)
			g.Expect(v.Message).NotTo(BeEmpty(), "%s: the message when messageExpression fails", vap.Name)
		}
		for _, rule := range vap.Spec.MatchConstraints.ResourceRules {
			resources[name] = append(resources[name], rule.Resources...)
		}
		b := as[admissionregistrationv1.ValidatingAdmissionPolicyBinding](t, r, "ValidatingAdmissionPolicyBinding/"+prefix+"-"+name)
		g.Expect(b.Spec.PolicyName).To(Equal(vap.Name))
		g.Expect(b.Spec.ValidationActions).To(ConsistOf(admissionregistrationv1.Deny))
		if name == "pods" {
			g.Expect(vap.Spec.Variables).To(ContainElement(admissionregistrationv1.Variable{Name: "cacheDir", Expression: `"` + cacheDir + `"`}))
		}
	}
	g.Expect(resources).To(Equal(map[string][]string{
		"nodes": {"nodes", "nodes/status"}, "owned": {"daemonsets", "configmaps"}, "pods": {"daemonsets"},
	}))
}

// TestChartCustomValues: every value reaches what it configures.
func TestChartCustomValues(t *testing.T) {
	g := NewWithT(t)
	r := render(t, "--values", filepath.Join("testdata", "values-custom.yaml"))
	g.Expect(r).NotTo(HaveKey("ClusterRole/edge-ops-editor"), "rbac.aggregateToDefaultRoles=false")
	g.Expect(r).To(HaveKey("ServiceAccount/slmops-operator"))
	g.Expect(r).To(HaveKey("NetworkPolicy/edge-ops-inferd-server"), "inferd.networkPolicy")
	g.Expect(r).To(HaveKey("NetworkPolicy/edge-ops-inferd-stager"), "inferd.networkPolicy")

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
		"--model-cache-max-bytes=20Gi",
		"--metrics-bind-address=:9443", "--metrics-cert-dir=/etc/slmops/metrics-certs", "--zap-log-level=debug",
		"--rollout-workers=12",
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
	g.Expect(tlsConfig).To(HaveKeyWithValue("serverName", "metrics.edge.example.com"))
	g.Expect(tlsConfig).To(HaveKeyWithValue("ca", map[string]any{"secret": map[string]any{"name": "metrics-ca", "key": "ca.pem"}}))

	// admissionPolicy.enabled=false; turned on, the policies name the
	// custom ServiceAccount and model cache. Without the policies inferd's
	// token would be RBAC's alone (patch any pod of the namespace), so
	// reports stay off and nothing of them is rendered.
	for _, key := range r.keys() {
		g.Expect(key).NotTo(HavePrefix("ValidatingAdmissionPolicy"))
		g.Expect(key).NotTo(ContainSubstring("slmops-inferd"))
	}
	g.Expect(c.Args).To(ContainElement("--inferd-reports=false"))
	withPolicies := render(t, "--values", filepath.Join("testdata", "values-custom.yaml"), "--set", "admissionPolicy.enabled=true")
	sa := as[corev1.ServiceAccount](t, withPolicies, "ServiceAccount/slmops-inferd")
	g.Expect(sa.Namespace).To(Equal("stores"))
	g.Expect(sa.AutomountServiceAccountToken).To(HaveValue(BeFalse()))
	rb := as[rbacv1.RoleBinding](t, withPolicies, "RoleBinding/slmops-inferd")
	g.Expect(rb.Namespace).To(Equal("stores"))
	g.Expect(rb.RoleRef).To(Equal(rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "slmops-inferd-report"}))
	g.Expect(rb.Subjects).To(ConsistOf(rbacv1.Subject{Kind: "ServiceAccount", Name: "slmops-inferd", Namespace: "stores"}))
	checkPolicies(t, render(t, "--values", filepath.Join("testdata", "values-custom.yaml"), "--set", "admissionPolicy.enabled=true"),
		"edge-ops-manager", "system:serviceaccount:slmops-system:slmops-operator", "/data/slmops/models")

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
		"replicaCount=two":                                  "/replicaCount",
		"metrics.prot=8443":                                 "prot",
		"inferd.modelCacheDir=models":                       "/inferd/modelCacheDir",
		"inferd.modelCacheMaxBytes=lots":                    "/inferd/modelCacheMaxBytes",
		"image.pullPolicy=Sometimes":                        "/image/pullPolicy",
		"logLevel=loud":                                     "/logLevel",
		"rolloutWorkers=0":                                  "/rolloutWorkers",
		"metrics.serviceMonitor.x=1":                        "'x' not allowed",
		"serviceAccount.create=maybe":                       "/serviceAccount/create",
		"inferd.image.repository=":                          "/inferd/image/repository",
		"metrics.port=80":                                   "/metrics/port",
		"crds.install=yes-please-sure":                      "/crds/install",
		"admissionPolicy.enabled=sometimes":                 "/admissionPolicy/enabled",
		"inferd.report.namespaces={Stores_1}":               "/inferd/report/namespaces/0",
		"inferd.report.enabled=often":                       "/inferd/report/enabled",
		"inferd.networkPolicy.peerCIDRs={10.42.0.0}":        "/inferd/networkPolicy/peerCIDRs/0",
		"inferd.networkPolicy.api.ipBlocks={everyone}":      "/inferd/networkPolicy/api/ipBlocks/0",
		"inferd.networkPolicy.namespaces={Stores}":          "/inferd/networkPolicy/namespaces/0",
		"metrics.serviceMonitor.serverName=Metrics_Host":    "/metrics/serviceMonitor/serverName",
		"metrics.serviceMonitor.ca.secret.file=ca.crt":      "'file' not allowed",
		"metrics.serviceMonitor.insecureSkipVerify=perhaps": "/metrics/serviceMonitor/insecureSkipVerify",
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

// TestChartAdmissionPolicyNeedsKubernetes130: on a cluster without
// ValidatingAdmissionPolicy v1 the chart says so instead of failing on the
// API server; with the policies off it installs there.
func TestChartAdmissionPolicyNeedsKubernetes130(t *testing.T) {
	out, err := helm("template", "slmops", chartDir, "--kube-version", "1.29.4")
	if err == nil || !strings.Contains(out, "admissionPolicy.enabled needs ValidatingAdmissionPolicy") {
		t.Errorf("rendered for Kubernetes 1.29 with the policies on, or without saying why not: %v\n%s", err, out)
	}
	r := render(t, "--kube-version", "1.29.4", "--set", "admissionPolicy.enabled=false")
	for _, key := range r.keys() {
		if strings.HasPrefix(key, "ValidatingAdmissionPolicy") {
			t.Errorf("admissionPolicy.enabled=false renders %s", key)
		}
	}
}

// TestChartServiceMonitorVerifiesTLS: Prometheus' token goes only to an
// endpoint whose certificate it verified, unless insecureSkipVerify is
// chosen explicitly.
func TestChartServiceMonitorVerifiesTLS(t *testing.T) {
	tlsConfig := func(t *testing.T, args ...string) map[string]any {
		t.Helper()
		r := render(t, append([]string{"--set", "metrics.serviceMonitor.enabled=true"}, args...)...)
		sm := r["ServiceMonitor/slmops-manager"]
		if sm == nil {
			t.Fatalf("no ServiceMonitor; have %v", r.keys())
		}
		endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		ep := endpoints[0].(map[string]any)
		if ep["scheme"] != "https" || ep["bearerTokenFile"] == nil {
			t.Errorf("the endpoint is not HTTPS with Prometheus' token: %v", ep)
		}
		return ep["tlsConfig"].(map[string]any)
	}
	for name, c := range map[string]struct {
		args []string
		want map[string]any
	}{
		"the CA of metrics.certSecret by default": {
			args: []string{"--set", "metrics.certSecret=metrics-tls"},
			want: map[string]any{"serverName": "slmops-metrics.slmops-system.svc",
				"ca": map[string]any{"secret": map[string]any{"name": "metrics-tls", "key": "ca.crt"}}},
		},
		"a CA from a ConfigMap and another server name": {
			args: []string{"--set", "metrics.serviceMonitor.ca.configMap.name=metrics-ca", "--set", "metrics.serviceMonitor.serverName=metrics.example.com"},
			want: map[string]any{"serverName": "metrics.example.com",
				"ca": map[string]any{"configMap": map[string]any{"name": "metrics-ca", "key": "ca.crt"}}},
		},
		"a CA from a Secret before metrics.certSecret's": {
			args: []string{"--set", "metrics.certSecret=metrics-tls", "--set", "metrics.serviceMonitor.ca.secret.name=issuer-ca", "--set", "metrics.serviceMonitor.ca.secret.key=tls.ca"},
			want: map[string]any{"serverName": "slmops-metrics.slmops-system.svc",
				"ca": map[string]any{"secret": map[string]any{"name": "issuer-ca", "key": "tls.ca"}}},
		},
		"no verification only when asked for": {
			args: []string{"--set", "metrics.serviceMonitor.insecureSkipVerify=true"},
			want: map[string]any{"serverName": "slmops-metrics.slmops-system.svc", "insecureSkipVerify": true},
		},
	} {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(c.want, tlsConfig(t, c.args...)); diff != "" {
				t.Errorf("tlsConfig (-want +got):\n%s", diff)
			}
		})
	}
	// With the self-signed certificate and nothing chosen, the chart
	// refuses instead of rendering a ServiceMonitor that cannot verify.
	out, err := helm("template", "slmops", chartDir, "--set", "metrics.serviceMonitor.enabled=true")
	if err == nil || !strings.Contains(out, "must verify the endpoint's certificate") {
		t.Errorf("a ServiceMonitor without a CA rendered, or failed without saying why: %v\n%s", err, out)
	}
}

// TestChartInferdNetworkPolicy: the optional NetworkPolicies select the pods
// that the operator labels, in each listed namespace; serving pods take API
// calls from the chosen namespaces and CIDRs and model files from the peer
// CIDRs, stagers only the latter; a policy without sources admits nobody.
func TestChartInferdNetworkPolicy(t *testing.T) {
	g := NewWithT(t)
	if _, ok := render(t)["NetworkPolicy/slmops-inferd-server"]; ok {
		t.Error("a NetworkPolicy is rendered by default")
	}
	policies := func(t *testing.T, args ...string) map[string]*networkingv1.NetworkPolicy {
		t.Helper()
		out, err := helm(append([]string{"template", "slmops", chartDir, "--namespace", "slmops-system",
			"--show-only", "templates/networkpolicy.yaml", "--set", "inferd.networkPolicy.enabled=true"}, args...)...)
		if err != nil {
			t.Fatalf("helm template: %v\n%s", err, out)
		}
		nps := map[string]*networkingv1.NetworkPolicy{}
		for _, doc := range strings.Split(out, "\n---\n") {
			var np networkingv1.NetworkPolicy
			if err := yaml.UnmarshalStrict([]byte(doc), &np); err != nil {
				t.Fatal(err)
			}
			if np.Name != "" {
				nps[np.Namespace+"/"+np.Name] = &np
			}
		}
		return nps
	}
	http := intstr.FromString("http")
	tcp := corev1.ProtocolTCP
	port := []networkingv1.NetworkPolicyPort{{Port: &http, Protocol: &tcp}}
	peers := networkingv1.NetworkPolicyIngressRule{Ports: port, From: []networkingv1.NetworkPolicyPeer{
		{IPBlock: &networkingv1.IPBlock{CIDR: "10.42.0.0/24"}}, {IPBlock: &networkingv1.IPBlock{CIDR: "10.42.1.0/24"}},
	}}
	api := networkingv1.NetworkPolicyIngressRule{Ports: port, From: []networkingv1.NetworkPolicyPeer{
		{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "store-apps"}}},
		{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.10.0/24"}},
	}}

	nps := policies(t, "--set", "inferd.networkPolicy.namespaces={stores,lab}",
		"--set", "inferd.networkPolicy.api.namespaceSelectors[0].matchLabels.kubernetes\\.io/metadata\\.name=store-apps",
		"--set", "inferd.networkPolicy.api.ipBlocks={192.168.10.0/24}",
		"--set", "inferd.networkPolicy.peerCIDRs={10.42.0.0/24,10.42.1.0/24}")
	g.Expect(nps).To(HaveLen(4))
	for _, ns := range []string{"stores", "lab"} {
		for component, ingress := range map[string][]networkingv1.NetworkPolicyIngressRule{
			"server": {api, peers}, "stager": {peers},
		} {
			np := nps[ns+"/slmops-inferd-"+component]
			g.Expect(np).NotTo(BeNil(), "no %s policy in %s; have %v", component, ns, slices.Collect(maps.Keys(nps)))
			// The labels the operator gives inferd pods (controllers/edgerollout/daemonset.go).
			g.Expect(np.Spec.PodSelector.MatchLabels).To(Equal(map[string]string{
				"app.kubernetes.io/name": "inferd", slmopsv1alpha1.ManagedByLabel: slmopsv1alpha1.ManagedByValue,
				"app.kubernetes.io/component": "model-" + component,
			}))
			g.Expect(np.Spec.PolicyTypes).To(ConsistOf(networkingv1.PolicyTypeIngress))
			if diff := cmp.Diff(ingress, np.Spec.Ingress); diff != "" {
				t.Errorf("%s/%s ingress (-want +got):\n%s", ns, np.Name, diff)
			}
		}
	}

	// No sources: no rule, so no ingress at all (a rule without "from"
	// would admit everyone).
	nps = policies(t, "--set", "inferd.networkPolicy.namespaces={stores}")
	for key, np := range nps {
		g.Expect(np.Spec.Ingress).To(BeEmpty(), key)
		g.Expect(np.Spec.PolicyTypes).To(ConsistOf(networkingv1.PolicyTypeIngress), key)
	}
	// Peers only: serving pods get the peer rule alone.
	nps = policies(t, "--set", "inferd.networkPolicy.namespaces={stores}", "--set", "inferd.networkPolicy.peerCIDRs={10.42.0.0/24,10.42.1.0/24}")
	g.Expect(nps["stores/slmops-inferd-server"].Spec.Ingress).To(Equal([]networkingv1.NetworkPolicyIngressRule{peers}))

	out, err := helm("template", "slmops", chartDir, "--set", "inferd.networkPolicy.enabled=true")
	if err == nil || !strings.Contains(out, "inferd.networkPolicy.namespaces") {
		t.Errorf("a NetworkPolicy without namespaces rendered, or failed without saying why: %v\n%s", err, out)
	}
}
