package edgerollout

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/controllers/edgerollout/plan"
	"github.com/slmops/slmops/inferd/config"
)

// TestAStagerFetchesWithinTheBudgetAndServesItsSite: the stager DaemonSet of
// a revision runs inferd in stage mode on the nodes whose stage label names
// the revision, with its share of the download budget, the disk headroom
// and the peer directory; it is not selected by the serving DaemonSet.
func TestAStagerFetchesWithinTheBudgetAndServesItsSite(t *testing.T) {
	m, r := httpModelAndRollout()
	m.Spec.SelfTest = &slmopsv1alpha1.SelfTest{Prompts: []slmopsv1alpha1.GoldenPrompt{{Prompt: "hi", MaxTokens: 4}}}
	r.Name = "a-rollout-name-that-is-long-enough-to-need-cutting-down"
	r.Spec.Distribution = slmopsv1alpha1.Distribution{
		Staging:     &slmopsv1alpha1.Staging{MaxConcurrentNodes: 20, MaxBytesPerSecond: ptr.To(resource.MustParse("100Mi"))},
		PeerSharing: &slmopsv1alpha1.PeerSharing{TopologyKey: "zone"},
		Fit:         slmopsv1alpha1.Fit{DiskHeadroom: ptr.To(resource.MustParse("1Gi"))},
	}
	rev := computeRevision(r, m, Defaults{})
	ds, err := buildStageDaemonSet(r, m, rev, defaultArtifact(m), Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	serving, err := buildDaemonSet(r, m, rev, defaultArtifact(m), Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Name) > 63 || ds.Name == serving.Name || !strings.HasSuffix(ds.Name, rev+"-stage") {
		t.Errorf("stager name %q (%d chars); want ≤ 63, ending in %s-stage, not the serving DaemonSet's", ds.Name, len(ds.Name), rev)
	}
	pt := ds.Spec.Template
	if sel := labels.SelectorFromSet(serving.Spec.Selector.MatchLabels); sel.Matches(labels.Set(pt.Labels)) {
		t.Error("the serving DaemonSet's selector takes the stager's pods")
	}
	if pt.Spec.NodeSelector[slmopsv1alpha1.StageLabel(r.Namespace, r.Name)] != rev || len(pt.Spec.NodeSelector) != 1 {
		t.Errorf("node selector %v; want only the stage label = %s", pt.Spec.NodeSelector, rev)
	}
	c := pt.Spec.Containers[0]
	var cfg config.Config
	for _, e := range c.Env {
		if e.Name == config.EnvConfig {
			if err := json.Unmarshal([]byte(e.Value), &cfg); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !cfg.Stage || cfg.SelfTest != nil || cfg.Download.BytesPerSecond != 100<<20/20 || cfg.Download.DiskHeadroomBytes != 1<<30 {
		t.Errorf("stager config: stage %v, self-test %v, %d bytes/s, headroom %d; want stage, none, 5 MiB/s (100 MiB/s over 20 nodes), 1 GiB",
			cfg.Stage, cfg.SelfTest, cfg.Download.BytesPerSecond, cfg.Download.DiskHeadroomBytes)
	}
	if !cfg.Peers.Serve || cfg.Peers.File != peersMountPath+"/"+config.PeerDirectoryKey {
		t.Errorf("peers %+v; want serve and the mounted directory", cfg.Peers)
	}
	mounted := false
	for _, v := range pt.Spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == slmopsv1alpha1.PeersConfigMapName(r.Name) && ptr.Deref(v.ConfigMap.Optional, false) {
			mounted = true
		}
	}
	if !mounted {
		t.Error("the peer directory is not mounted (optionally)")
	}
	if mem := c.Resources.Limits[corev1.ResourceMemory]; mem.Cmp(resource.MustParse("128Mi")) != 0 || c.LivenessProbe != nil || c.ReadinessProbe == nil {
		t.Errorf("resources %v, liveness %v, readiness %v; want a 128 Mi limit, readiness only", c.Resources, c.LivenessProbe, c.ReadinessProbe)
	}
	if sc := c.SecurityContext; sc == nil || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) || !ptr.Deref(pt.Spec.SecurityContext.RunAsNonRoot, false) {
		t.Error("the stager lost the secure defaults")
	}
	// A changed budget is a changed stager (it is replaced), not a new revision.
	r.Spec.Distribution.Staging.MaxConcurrentNodes = 10
	again, err := buildStageDaemonSet(r, m, rev, defaultArtifact(m), Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	if again.Annotations[slmopsv1alpha1.StageConfigAnnotation] == ds.Annotations[slmopsv1alpha1.StageConfigAnnotation] || computeRevision(r, m, Defaults{}) != rev {
		t.Error("a new download budget must change the stager's config hash and not the revision")
	}
}

// TestThePeerDirectoryListsReadyHoldersPerSite: stagers first, then serving
// pods, at most maxPeers per site and digest, by pod address.
func TestThePeerDirectoryListsReadyHoldersPerSite(t *testing.T) {
	m, r := httpModelAndRollout()
	r.Spec.Distribution.PeerSharing = &slmopsv1alpha1.PeerSharing{MaxPeers: 2}
	pod := func(ip string, ready bool) *corev1.Pod {
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		return &corev1.Pod{Status: corev1.PodStatus{PodIP: ip, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}}}
	}
	obs := &observation{
		in: plan.Input{Nodes: []plan.Node{
			{Name: "a1", PeerSite: "a", Target: true, Variant: slmopsv1alpha1.DefaultVariant}, {Name: "a2", PeerSite: "a", Target: true, Variant: slmopsv1alpha1.DefaultVariant},
			{Name: "a3", PeerSite: "a", Target: true, Variant: slmopsv1alpha1.DefaultVariant}, {Name: "b1", PeerSite: "b", Target: true, Variant: slmopsv1alpha1.DefaultVariant},
			{Name: "x", Target: true, Variant: slmopsv1alpha1.DefaultVariant},
		}},
		stagePods:   map[string]*corev1.Pod{"a2": pod("10.0.0.2", true), "a3": pod("10.0.0.3", false), "b1": pod("10.0.1.1", true)},
		servingPods: map[string]*corev1.Pod{"a1": pod("10.0.0.11", true), "a2": pod("10.0.0.12", true), "x": pod("10.9.9.9", true)},
	}
	dir := peerDirectory(r, []plan.Artifact{defaultArtifact(m)}, obs)
	got := dir.Blobs[m.Spec.Digest]
	want := map[string][]config.PeerEntry{
		"a": {{Node: "a2", URL: "http://10.0.0.2:8080"}, {Node: "a1", URL: "http://10.0.0.11:8080"}},
		"b": {{Node: "b1", URL: "http://10.0.1.1:8080"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("peer directory (-want +got):\n%s", diff)
	}
	if _, ok := dir.Nodes["x"]; ok || dir.Nodes["a3"] != "a" {
		t.Errorf("nodes %v; want every node with a site, and no node without one", dir.Nodes)
	}
}
