// Package testutil builds the objects that tests of slmops read and write:
// EdgeRollouts, SLMModels, Nodes and Pods, with the few fields a case is
// about and the schema's defaults for the rest, so that a case reads in a
// line or two:
//
//	ro := testutil.Rollout("shops").Model("tiny").Steps("10%", "100%").Obj()
//	n := testutil.Node("shop-1").Label("zone", "a").Allocatable("2Gi", "10Gi").Obj()
//
// What it owns: builders and small fixtures (Digest). What it may not
// touch: any controller or inferd package (it imports only the API), so
// that every test package, the plan's among them, can use it.
package testutil

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// Namespace is the namespace of the objects the builders make, unless a
// case names another.
const Namespace = "edge"

// Epoch is the fixed "now" of tests that need a clock.
var Epoch = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// Digest is a well-formed sha256 digest that differs for every n.
func Digest(n int) string { return fmt.Sprintf("sha256:%064x", n) }

// RolloutBuilder builds an EdgeRollout.
type RolloutBuilder struct{ ro *slmopsv1alpha1.EdgeRollout }

// Rollout starts an EdgeRollout called name, of the SLMModel "tiny", on
// port 8080.
func Rollout(name string) *RolloutBuilder {
	ro := &slmopsv1alpha1.EdgeRollout{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace}}
	ro.Spec.ModelRef.Name = "tiny"
	ro.Spec.Template.Port = 8080
	return &RolloutBuilder{ro: ro}
}

// Namespace sets the namespace.
func (b *RolloutBuilder) Namespace(ns string) *RolloutBuilder { b.ro.Namespace = ns; return b }

// Model sets spec.modelRef.
func (b *RolloutBuilder) Model(name string) *RolloutBuilder {
	b.ro.Spec.ModelRef.Name = name
	return b
}

// Steps sets the canary steps, each a count ("3") or a percentage ("10%").
func (b *RolloutBuilder) Steps(steps ...string) *RolloutBuilder {
	b.ro.Spec.Strategy.Canary.Steps = nil
	for _, s := range steps {
		b.ro.Spec.Strategy.Canary.Steps = append(b.ro.Spec.Strategy.Canary.Steps, slmopsv1alpha1.CanaryStep{Nodes: intstr.Parse(s)})
	}
	return b
}

// Staging turns staging on with at most maxConcurrent nodes downloading.
func (b *RolloutBuilder) Staging(maxConcurrent int32) *RolloutBuilder {
	b.ro.Spec.Distribution.Staging = &slmopsv1alpha1.Staging{MaxConcurrentNodes: maxConcurrent}
	return b
}

// PeerSharing turns peer sharing on within the sites of topologyKey.
func (b *RolloutBuilder) PeerSharing(topologyKey string) *RolloutBuilder {
	b.ro.Spec.Distribution.PeerSharing = &slmopsv1alpha1.PeerSharing{TopologyKey: topologyKey}
	return b
}

// Select sets spec.nodeSelector's matchLabels.
func (b *RolloutBuilder) Select(labels map[string]string) *RolloutBuilder {
	b.ro.Spec.NodeSelector.MatchLabels = labels
	return b
}

// Obj is the EdgeRollout as built, without defaults: what a user applies.
func (b *RolloutBuilder) Obj() *slmopsv1alpha1.EdgeRollout { return b.ro.DeepCopy() }

// Spec is the spec as the schema defaults it: what the controller reads.
func (b *RolloutBuilder) Spec() slmopsv1alpha1.EdgeRolloutSpec {
	s := *b.ro.Spec.DeepCopy()
	slmopsv1alpha1.DefaultEdgeRolloutSpec(&s)
	return s
}

// ModelBuilder builds an SLMModel.
type ModelBuilder struct{ m *slmopsv1alpha1.SLMModel }

// Model starts an SLMModel called name: a Q4_0 file over HTTPS with
// Digest(0), a context of 2048 tokens and two concurrent requests.
func Model(name string) *ModelBuilder {
	return &ModelBuilder{m: &slmopsv1alpha1.SLMModel{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace},
		Spec: slmopsv1alpha1.SLMModelSpec{
			Source:       slmopsv1alpha1.ModelSource{HTTP: &slmopsv1alpha1.HTTPSource{URL: "https://m.example.com/" + name + ".gguf"}},
			Digest:       Digest(0),
			Quantization: slmopsv1alpha1.QuantizationQ4_0,
			Runtime:      slmopsv1alpha1.ModelRuntime{ContextLength: 2048, MaxConcurrentRequests: 2},
		},
	}}
}

// Namespace sets the namespace.
func (b *ModelBuilder) Namespace(ns string) *ModelBuilder { b.m.Namespace = ns; return b }

// URL sets the HTTP source.
func (b *ModelBuilder) URL(u string) *ModelBuilder {
	b.m.Spec.Source = slmopsv1alpha1.ModelSource{HTTP: &slmopsv1alpha1.HTTPSource{URL: u}}
	return b
}

// Digest sets the digest.
func (b *ModelBuilder) Digest(d string) *ModelBuilder { b.m.Spec.Digest = d; return b }

// Quantization sets the quantization.
func (b *ModelBuilder) Quantization(q slmopsv1alpha1.Quantization) *ModelBuilder {
	b.m.Spec.Quantization = q
	return b
}

// Size sets spec.sizeBytes.
func (b *ModelBuilder) Size(bytes int64) *ModelBuilder { b.m.Spec.SizeBytes = ptr.To(bytes); return b }

// Variant adds a variant for the nodes with labels, a Q8_0 file of digest.
func (b *ModelBuilder) Variant(name string, labels map[string]string, digest string) *ModelBuilder {
	b.m.Spec.Variants = append(b.m.Spec.Variants, slmopsv1alpha1.ModelVariant{
		Name: name, NodeSelector: slmopsv1alpha1.NodeSelector{MatchLabels: labels},
		Source: b.m.Spec.Source, Digest: digest, Quantization: slmopsv1alpha1.QuantizationQ8_0,
	})
	return b
}

// SelfTest adds golden prompts of maxTokens tokens each.
func (b *ModelBuilder) SelfTest(maxTokens int32, prompts ...string) *ModelBuilder {
	st := &slmopsv1alpha1.SelfTest{}
	for _, p := range prompts {
		st.Prompts = append(st.Prompts, slmopsv1alpha1.GoldenPrompt{Prompt: p, MaxTokens: maxTokens})
	}
	b.m.Spec.SelfTest = st
	return b
}

// Obj is the SLMModel as built.
func (b *ModelBuilder) Obj() *slmopsv1alpha1.SLMModel { return b.m.DeepCopy() }

// NodeBuilder builds a Node.
type NodeBuilder struct{ n *corev1.Node }

// Node starts a Ready node called name.
func Node(name string) *NodeBuilder {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	return &NodeBuilder{n: n}
}

// Label sets a label.
func (b *NodeBuilder) Label(key, value string) *NodeBuilder { b.n.Labels[key] = value; return b }

// NotReady makes the node NotReady: unreachable, to the operator.
func (b *NodeBuilder) NotReady() *NodeBuilder {
	b.n.Status.Conditions[0].Status = corev1.ConditionFalse
	return b
}

// Allocatable sets the allocatable memory and ephemeral storage, such as
// "2Gi"; an empty string leaves that resource unknown.
func (b *NodeBuilder) Allocatable(memory, disk string) *NodeBuilder {
	b.n.Status.Allocatable = corev1.ResourceList{}
	if memory != "" {
		b.n.Status.Allocatable[corev1.ResourceMemory] = resource.MustParse(memory)
	}
	if disk != "" {
		b.n.Status.Allocatable[corev1.ResourceEphemeralStorage] = resource.MustParse(disk)
	}
	return b
}

// Obj is the Node as built.
func (b *NodeBuilder) Obj() *corev1.Node { return b.n.DeepCopy() }

// PodBuilder builds the Pod of an inferd container.
type PodBuilder struct{ p *corev1.Pod }

// Pod starts a Running pod called name with one container, inferd, created
// at created.
func Pod(name string, created time.Time) *PodBuilder {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace, CreationTimestamp: metav1.NewTime(created), Labels: map[string]string{}}}
	p.Status.Phase = corev1.PodRunning
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "inferd"}}
	return &PodBuilder{p: p}
}

// On schedules the pod to node.
func (b *PodBuilder) On(node string) *PodBuilder { b.p.Spec.NodeName = node; return b }

// Label sets a label.
func (b *PodBuilder) Label(key, value string) *PodBuilder { b.p.Labels[key] = value; return b }

// Annotate sets an annotation.
func (b *PodBuilder) Annotate(key, value string) *PodBuilder {
	if b.p.Annotations == nil {
		b.p.Annotations = map[string]string{}
	}
	b.p.Annotations[key] = value
	return b
}

// IP sets the pod's address.
func (b *PodBuilder) IP(ip string) *PodBuilder { b.p.Status.PodIP = ip; return b }

// Ready makes the pod Ready since the time given.
func (b *PodBuilder) Ready(since time.Time) *PodBuilder {
	b.p.Status.Conditions = append(b.p.Status.Conditions, corev1.PodCondition{
		Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(since),
	})
	b.p.Status.ContainerStatuses[0].Ready = true
	return b
}

// Waiting puts the container in a waiting state, such as CrashLoopBackOff.
func (b *PodBuilder) Waiting(reason, message string) *PodBuilder {
	b.p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}
	return b
}

// Terminated records that the container ended restarts times, last with
// the termination message given.
func (b *PodBuilder) Terminated(restarts int32, message string) *PodBuilder {
	cs := &b.p.Status.ContainerStatuses[0]
	cs.RestartCount = restarts
	cs.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: message}}
	return b
}

// Failed makes the pod Failed with message.
func (b *PodBuilder) Failed(message string) *PodBuilder {
	b.p.Status.Phase, b.p.Status.Message = corev1.PodFailed, message
	return b
}

// Obj is the Pod as built.
func (b *PodBuilder) Obj() *corev1.Pod { return b.p.DeepCopy() }

// GoListDeps is every package that the package in the test's folder links,
// itself included, as `go list -deps` prints them: for tests that hold a
// package's imports to what it may use.
func GoListDeps(t testing.TB) []string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command, to list the package's imports: %v", err)
	}
	out, err := exec.Command(goCmd, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed %d packages: %q", len(deps), deps)
	}
	return deps
}
