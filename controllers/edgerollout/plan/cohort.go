package plan

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// canarySteps are the canary's steps; one step to every node when it has none.
func canarySteps(canary *slmopsv1alpha1.CanaryStrategy) []slmopsv1alpha1.CanaryStep {
	if len(canary.Steps) == 0 {
		return []slmopsv1alpha1.CanaryStep{{Nodes: intstr.FromString("100%")}}
	}
	return canary.Steps
}

// stepSize is the cohort size of step i of total target nodes: a count, or a
// percentage rounded up, never smaller than an earlier step's.
func stepSize(steps []slmopsv1alpha1.CanaryStep, i, total int) int {
	size := 0
	for j := 0; j <= i && j < len(steps); j++ {
		size = max(size, scaled(&steps[j].Nodes, total, true, 1))
	}
	return min(size, total)
}

// scaled resolves a count or percentage of total. roundUp picks ceil over
// floor for percentages; atLeast is the floor of the result (and the value
// when v is nil).
func scaled(v *intstr.IntOrString, total int, roundUp bool, atLeast int) int {
	if v == nil {
		return atLeast
	}
	n := v.IntValue()
	if v.Type == intstr.String {
		pct, err := strconv.Atoi(strings.TrimSuffix(v.StrVal, "%"))
		if err != nil {
			return atLeast
		}
		f := float64(total) * float64(pct) / 100
		if roundUp {
			n = int(math.Ceil(f - 1e-9))
		} else {
			n = int(math.Floor(f + 1e-9))
		}
	}
	return max(n, atLeast)
}

// successRatio parses analysis.successRatio; the schema guarantees 0..1
// (and defaults it). Anything else counts as 1, the strictest.
func successRatio(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1 {
		return 1
	}
	return f
}

// selectCohort picks the size target nodes that run the canary at this step,
// from the target nodes in cohort order (cohortOrder: Spread takes nodes from
// every site in turn, SiteBySite fills one site after another). Nodes that
// already run it stay (no churn). Unreachable nodes are picked only when
// includeUnreachable (the Wait policy before its deadline) or when they
// already run the canary; others only when canJoin (nil: all) allows.
func selectCohort(ordered []*Node, canaryRev string, size int, includeUnreachable bool, canJoin func(*Node) bool) map[string]bool {
	cohort := make(map[string]bool, size)
	for _, n := range ordered {
		if len(cohort) == size {
			return cohort
		}
		if canaryRev != "" && n.Revision == canaryRev {
			cohort[n.Name] = true
		}
	}
	for _, n := range ordered {
		if len(cohort) == size {
			break
		}
		if !cohort[n.Name] && (n.Reachable || includeUnreachable) && (canJoin == nil || canJoin(n)) {
			cohort[n.Name] = true
		}
	}
	return cohort
}

// ordered is the target nodes in cohort order, sorted once per plan.
func (d *decider) ordered() []*Node {
	if d.order == nil {
		d.order = cohortOrder(d.targets, d.canary)
	}
	return d.order
}

// cohortOrder orders the target nodes for cohort selection: by a hash of
// the name, mixed so that similar names scatter (cohorts are a fixed
// pseudo-random sample rather than the alphabetically first nodes), then,
// with a topology key, site by site or one node of each site in turn.
// Each hash is taken once and the nodes are copied once: at thousands of
// nodes this ran on every reconcile.
func cohortOrder(targets []*Node, canary *slmopsv1alpha1.CanaryStrategy) []*Node {
	type keyed struct {
		key uint64
		i   int
	}
	ks := make([]keyed, len(targets))
	for i := range targets {
		ks[i] = keyed{nameKey(targets[i].Name), i}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if c := cmp.Compare(a.key, b.key); c != 0 {
			return c
		}
		return strings.Compare(targets[a.i].Name, targets[b.i].Name)
	})
	out := make([]*Node, 0, len(targets))
	if canary.TopologyKey == "" {
		for _, k := range ks {
			out = append(out, targets[k.i])
		}
		return out
	}
	bySite := map[string][]int{}
	var sites []string
	for _, k := range ks {
		site := targets[k.i].Site
		if _, ok := bySite[site]; !ok {
			sites = append(sites, site)
		}
		bySite[site] = append(bySite[site], k.i)
	}
	slices.Sort(sites)
	if canary.TopologyOrder == slmopsv1alpha1.TopologySiteBySite {
		for _, s := range sites {
			for _, i := range bySite[s] {
				out = append(out, targets[i])
			}
		}
		return out
	}
	for round := 0; len(out) < len(targets); round++ {
		for _, s := range sites {
			if round < len(bySite[s]) {
				out = append(out, targets[bySite[s][round]])
			}
		}
	}
	return out
}

// nameKey is the 64-bit FNV-1a hash of name, mixed (murmur3's finalizer).
func nameKey(name string) uint64 {
	x := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		x ^= uint64(name[i])
		x *= 1099511628211
	}
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x
}
