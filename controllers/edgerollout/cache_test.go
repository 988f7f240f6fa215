package edgerollout

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/controllers/edgerollout/plan"
	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/test/testutil"
)

// variantModel is a model with an arm64 variant: digests base (default) and
// base+1 (arm64).
func variantModel(base int) *slmopsv1alpha1.SLMModel {
	m, _ := httpModelAndRollout()
	m.Spec.Digest = testutil.Digest(base)
	m.Spec.Variants = []slmopsv1alpha1.ModelVariant{{
		Name: "arm64", NodeSelector: slmopsv1alpha1.NodeSelector{MatchLabels: map[string]string{"kubernetes.io/arch": "arm64"}},
		Source: m.Spec.Source, Digest: testutil.Digest(base + 1), Quantization: slmopsv1alpha1.QuantizationQ4_0,
	}}
	return m
}

// revisionDaemonSets are the DaemonSets the operator made for revision rev
// of m, one per artifact.
func revisionDaemonSets(t *testing.T, r *slmopsv1alpha1.EdgeRollout, m *slmopsv1alpha1.SLMModel, rev string) []*appsv1.DaemonSet {
	t.Helper()
	arts, err := plan.Artifacts(m)
	if err != nil {
		t.Fatal(err)
	}
	var out []*appsv1.DaemonSet
	for _, a := range arts {
		ds, err := buildDaemonSet(r, m, rev, a, Defaults{})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ds)
	}
	return out
}

// TestTheCachePinsListStableAndCanaryOfEveryVariant: what the rollout may
// return to is every artifact of its stable and canary revisions, whatever
// the phase; a revision that is neither (a canary superseded after its
// rollback) is not pinned.
func TestTheCachePinsListStableAndCanaryOfEveryVariant(t *testing.T) {
	_, r := httpModelAndRollout()
	a, b, c := variantModel(10), variantModel(20), variantModel(30)
	history := func(revs ...string) []slmopsv1alpha1.RevisionHistory {
		digest := map[string]string{"rev-a": testutil.Digest(10), "rev-b": testutil.Digest(20), "rev-c": testutil.Digest(30)}
		var out []slmopsv1alpha1.RevisionHistory
		for _, rev := range revs {
			out = append(out, slmopsv1alpha1.RevisionHistory{Revision: rev, Digest: digest[rev]})
		}
		return out
	}
	cases := map[string]struct {
		status     slmopsv1alpha1.EdgeRolloutStatus
		current    *slmopsv1alpha1.SLMModel
		daemonSets [][]*appsv1.DaemonSet
		want       []int
	}{
		"a canary in progress: stable A and canary B, both artifacts each": {
			status:     slmopsv1alpha1.EdgeRolloutStatus{StableRevision: "rev-a", CanaryRevision: "rev-b", Phase: slmopsv1alpha1.PhaseProgressing, History: history("rev-b", "rev-a")},
			current:    b,
			daemonSets: [][]*appsv1.DaemonSet{revisionDaemonSets(t, r, a, "rev-a"), revisionDaemonSets(t, r, b, "rev-b")},
			want:       []int{10, 11, 20, 21},
		},
		"B rolled back: still pinned, a retry returns to it": {
			status:     slmopsv1alpha1.EdgeRolloutStatus{StableRevision: "rev-a", CanaryRevision: "rev-b", Phase: slmopsv1alpha1.PhaseRolledBack, History: history("rev-b", "rev-a")},
			current:    b,
			daemonSets: [][]*appsv1.DaemonSet{revisionDaemonSets(t, r, a, "rev-a")},
			want:       []int{10, 11, 20, 21},
		},
		"a new attempt C after the rollback: A and C, not B": {
			status:     slmopsv1alpha1.EdgeRolloutStatus{StableRevision: "rev-a", CanaryRevision: "rev-c", Phase: slmopsv1alpha1.PhaseProgressing, History: history("rev-c", "rev-b", "rev-a")},
			current:    c,
			daemonSets: [][]*appsv1.DaemonSet{revisionDaemonSets(t, r, a, "rev-a"), revisionDaemonSets(t, r, b, "rev-b")},
			want:       []int{10, 11, 30, 31},
		},
		"the stable DaemonSets gone: the history still names its default artifact": {
			status:  slmopsv1alpha1.EdgeRolloutStatus{StableRevision: "rev-a", CanaryRevision: "rev-c", Phase: slmopsv1alpha1.PhaseProgressing, History: history("rev-c", "rev-a")},
			current: c,
			want:    []int{10, 30, 31},
		},
		"completed: the stable revision alone": {
			status:     slmopsv1alpha1.EdgeRolloutStatus{StableRevision: "rev-c", Phase: slmopsv1alpha1.PhaseCompleted, History: history("rev-c", "rev-a")},
			current:    c,
			daemonSets: [][]*appsv1.DaemonSet{revisionDaemonSets(t, r, a, "rev-a"), revisionDaemonSets(t, r, c, "rev-c")},
			want:       []int{30, 31},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			arts, err := plan.Artifacts(tc.current)
			if err != nil {
				t.Fatal(err)
			}
			var daemonSets []*appsv1.DaemonSet
			for _, ds := range tc.daemonSets {
				daemonSets = append(daemonSets, ds...)
			}
			var want []string
			for _, i := range tc.want {
				want = append(want, testutil.Digest(i))
			}
			if diff := cmp.Diff(want, plan.CachePins(&tc.status, arts, daemonSets)); diff != "" {
				t.Errorf("pins (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTheCacheConfigMapIsOwnedAndFollowsTheStatus: <rollout>-cache is made
// once, labelled and owned like the peer directory, and rewritten when the
// stable revision changes.
func TestTheCacheConfigMapIsOwnedAndFollowsTheStatus(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := slmopsv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	_, ro := httpModelAndRollout()
	ro.UID = "uid-1"
	a, b := variantModel(10), variantModel(20)
	rec := &Reconciler{Client: fake.NewClientBuilder().WithScheme(scheme).Build()}
	ctx := context.Background()
	pins := func() []string {
		t.Helper()
		var cm corev1.ConfigMap
		if err := rec.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: slmopsv1alpha1.CacheConfigMapName(ro.Name)}, &cm); err != nil {
			t.Fatal(err)
		}
		if !metav1.IsControlledBy(&cm, ro) || cm.Labels[slmopsv1alpha1.ManagedByLabel] != slmopsv1alpha1.ManagedByValue || cm.Labels[slmopsv1alpha1.RolloutLabel] != ro.Name {
			t.Errorf("ConfigMap %s: owners %v, labels %v; want owned by the rollout, with the managed-by and rollout labels", cm.Name, cm.OwnerReferences, cm.Labels)
		}
		var p config.Pins
		if err := json.Unmarshal([]byte(cm.Data[config.PinsKey]), &p); err != nil {
			t.Fatal(err)
		}
		return p.Digests
	}

	ro.Status = slmopsv1alpha1.EdgeRolloutStatus{StableRevision: "rev-a", CanaryRevision: "rev-b", Phase: slmopsv1alpha1.PhaseProgressing}
	arts, _ := plan.Artifacts(b)
	obs := &observation{daemonSets: revisionDaemonSets(t, ro, a, "rev-a")}
	if err := rec.reconcileCache(ctx, ro, arts, obs); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{testutil.Digest(10), testutil.Digest(11), testutil.Digest(20), testutil.Digest(21)}, pins()); diff != "" {
		t.Errorf("pins during the canary (-want +got):\n%s", diff)
	}

	// B promoted: A is no longer something the rollout returns to.
	ro.Status = slmopsv1alpha1.EdgeRolloutStatus{StableRevision: "rev-b", Phase: slmopsv1alpha1.PhaseCompleted}
	obs.daemonSets = append(obs.daemonSets, revisionDaemonSets(t, ro, b, "rev-b")...)
	if err := rec.reconcileCache(ctx, ro, arts, obs); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{testutil.Digest(20), testutil.Digest(21)}, pins()); diff != "" {
		t.Errorf("pins after the promotion (-want +got):\n%s", diff)
	}
}

// TestTheTemplateDoesNotChangeWithTheStableRevision: the pins reach the
// pods through a mounted ConfigMap, so a new stable revision changes no
// DaemonSet template (no restart), serving or stager; the pods get the pins
// file, their owner name and the operator's bound.
func TestTheTemplateDoesNotChangeWithTheStableRevision(t *testing.T) {
	m, r := httpModelAndRollout()
	r.Spec.Distribution.Staging = &slmopsv1alpha1.Staging{MaxConcurrentNodes: 5}
	d := Defaults{ModelCacheMaxBytes: 20 << 30}
	rev := computeRevision(r, m, d)
	build := func(st slmopsv1alpha1.EdgeRolloutStatus) (serving, stager *appsv1.DaemonSet) {
		t.Helper()
		ro := r.DeepCopy()
		ro.Status = st
		serving, err := buildDaemonSet(ro, m, rev, defaultArtifact(m), d)
		if err != nil {
			t.Fatal(err)
		}
		stager, err = buildStageDaemonSet(ro, m, rev, defaultArtifact(m), d)
		if err != nil {
			t.Fatal(err)
		}
		return serving, stager
	}
	serving, stager := build(slmopsv1alpha1.EdgeRolloutStatus{StableRevision: "old", CanaryRevision: rev, Phase: slmopsv1alpha1.PhaseProgressing})
	servingAfter, stagerAfter := build(slmopsv1alpha1.EdgeRolloutStatus{StableRevision: rev, Phase: slmopsv1alpha1.PhaseCompleted,
		History: []slmopsv1alpha1.RevisionHistory{{Revision: rev, Digest: m.Spec.Digest}}})
	if diff := cmp.Diff(serving.Spec.Template, servingAfter.Spec.Template); diff != "" {
		t.Errorf("the serving template changed with the stable revision (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(stager.Spec.Template, stagerAfter.Spec.Template); diff != "" || stager.Annotations[slmopsv1alpha1.StageConfigAnnotation] != stagerAfter.Annotations[slmopsv1alpha1.StageConfigAnnotation] {
		t.Errorf("the stager template changed with the stable revision (-before +after):\n%s", diff)
	}

	for name, ds := range map[string]*appsv1.DaemonSet{"serving": serving, "stager": stager} {
		spec := ds.Spec.Template.Spec
		var cfg config.Config
		for _, e := range spec.Containers[0].Env {
			if e.Name == config.EnvConfig {
				if err := json.Unmarshal([]byte(e.Value), &cfg); err != nil {
					t.Fatal(err)
				}
			}
		}
		want := config.Cache{PinsFile: cacheMountPath + "/" + config.PinsKey, Owner: "edge.shops", MaxBytes: 20 << 30}
		if cfg.Cache != want {
			t.Errorf("%s: cache config %+v; want %+v", name, cfg.Cache, want)
		}
		mounted := false
		for _, v := range spec.Volumes {
			if v.Name == cacheVolume && v.ConfigMap != nil && v.ConfigMap.Name == slmopsv1alpha1.CacheConfigMapName(r.Name) && ptr.Deref(v.ConfigMap.Optional, false) {
				mounted = true
			}
		}
		for _, vm := range spec.Containers[0].VolumeMounts {
			if vm.Name == cacheVolume && (vm.MountPath != cacheMountPath || !vm.ReadOnly) {
				mounted = false
			}
		}
		if !mounted {
			t.Errorf("%s: the cache pins are not mounted (optionally, read-only) at %s", name, cacheMountPath)
		}
	}
	if computeRevision(r, m, Defaults{}) != rev {
		t.Error("the cache bound changed the revision; it is no part of what a node runs")
	}
}
