package v1alpha1

// The defaults of the API in Go. The CRD's +kubebuilder:default markers are
// the defaults that count: the API server fills them in on every write and
// every read, so a rollout or model that the operator gets from the cluster
// has them. These functions fill in the same values, and only those, for an
// object that did not pass through the schema (one built in Go by a test or
// a tool), so that the operator's code reads a field without a fallback of
// its own: a default lives in the marker and here, nowhere else.
// defaults_crd_test.go compares the two with the generated CRDs.

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// DefaultEdgeRolloutSpec fills in what the EdgeRollout CRD's defaults fill in
// and s leaves unset. It changes no field that is set, so it is a no-op on a
// spec read from the API server.
func DefaultEdgeRolloutSpec(s *EdgeRolloutSpec) {
	t := &s.Template
	if t.ImagePullPolicy == "" {
		t.ImagePullPolicy = corev1.PullIfNotPresent
	}
	if t.Port == 0 {
		t.Port = 8080
	}

	c := &s.Strategy.Canary
	if len(c.Steps) == 0 {
		c.Steps = []CanaryStep{{Nodes: intstr.FromString("10%")}, {Nodes: intstr.FromString("50%")}, {Nodes: intstr.FromString("100%")}}
	}
	if c.MaxUnavailable == nil {
		c.MaxUnavailable = ptr.To(intstr.FromString("10%"))
	}
	if c.MinReadySeconds == nil {
		c.MinReadySeconds = ptr.To[int32](10)
	}
	if c.ProgressDeadlineSeconds == 0 {
		c.ProgressDeadlineSeconds = 600
	}
	if c.UnreachableNodes.Policy == "" {
		c.UnreachableNodes.Policy = UnreachableNodesSkip
	}
	if c.UnreachableNodes.Deadline == nil {
		c.UnreachableNodes.Deadline = &metav1.Duration{Duration: 10 * time.Minute}
	}
	if c.TopologyOrder == "" {
		c.TopologyOrder = TopologySpread
	}

	a := &s.Analysis
	if a.SuccessRatio == "" {
		a.SuccessRatio = "1"
	}
	if a.MaxFailedNodes == nil {
		a.MaxFailedNodes = ptr.To(intstr.FromInt32(0))
	}
	if a.HardwareClassLabels == nil {
		a.HardwareClassLabels = []string{"kubernetes.io/arch", "node.kubernetes.io/instance-type"}
	}
	if a.Scope == "" {
		a.Scope = AnalysisScopeFleet
	}

	if s.RollbackPolicy == "" {
		s.RollbackPolicy = RollbackAutomatic
	}

	d := &s.Distribution
	if st := d.Staging; st != nil {
		if st.LookaheadSteps == nil {
			st.LookaheadSteps = ptr.To[int32](1)
		}
		if st.MaxConcurrentNodes == 0 {
			st.MaxConcurrentNodes = 10
		}
	}
	if ps := d.PeerSharing; ps != nil && ps.MaxPeers == 0 {
		ps.MaxPeers = 3
	}
	if d.Fit.MemoryHeadroom == nil {
		d.Fit.MemoryHeadroom = ptr.To(resource.MustParse("256Mi"))
	}
	if d.Fit.DiskHeadroom == nil {
		d.Fit.DiskHeadroom = ptr.To(resource.MustParse("512Mi"))
	}
	if d.MaxExcludedNodes == nil {
		d.MaxExcludedNodes = ptr.To(intstr.FromString("10%"))
	}
}

// DefaultSLMModelSpec fills in what the SLMModel CRD's defaults fill in and s
// leaves unset. It changes no field that is set. (source.*.allowInsecureHTTP
// defaults to false, which a Go bool already is.)
func DefaultSLMModelSpec(s *SLMModelSpec) {
	if s.Format == "" {
		s.Format = ModelFormatGGUF
	}
	r := &s.Runtime
	if r.ContextLength == 0 {
		r.ContextLength = 2048
	}
	if r.CPUPolicy == "" {
		r.CPUPolicy = CPUPolicyAuto
	}
	if r.MaxConcurrentRequests == 0 {
		r.MaxConcurrentRequests = 2
	}
	if st := s.SelfTest; st != nil {
		if st.Timeout == nil {
			st.Timeout = &metav1.Duration{Duration: 5 * time.Minute}
		}
		for i := range st.Prompts {
			if st.Prompts[i].MaxTokens == 0 {
				st.Prompts[i].MaxTokens = 16
			}
		}
	}
}
