package plan

import (
	"hash/fnv"
	"math"
	"slices"
	"sort"
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
func selectCohort(ordered []Node, canaryRev string, size int, includeUnreachable bool, canJoin func(Node) bool) map[string]bool {
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
func (d *decider) ordered() []Node {
	if d.order == nil {
		d.order = cohortOrder(d.targets, d.canary)
	}
	return d.order
}

// cohortOrder orders the target nodes for cohort selection.
func cohortOrder(targets []Node, canary *slmopsv1alpha1.CanaryStrategy) []Node {
	ordered := slices.Clone(targets)
	// A hash of the name, mixed so that similar names scatter: cohorts are
	// a fixed pseudo-random sample rather than the alphabetically first nodes.
	key := func(n Node) uint64 {
		h := fnv.New64a()
		_, _ = h.Write([]byte(n.Name))
		x := h.Sum64()
		x ^= x >> 33
		x *= 0xff51afd7ed558ccd
		x ^= x >> 33
		return x
	}
	sort.SliceStable(ordered, func(i, j int) bool {
		ki, kj := key(ordered[i]), key(ordered[j])
		if ki != kj {
			return ki < kj
		}
		return ordered[i].Name < ordered[j].Name
	})
	if canary.TopologyKey == "" {
		return ordered
	}
	bySite := map[string][]Node{}
	var sites []string
	for _, n := range ordered {
		if _, ok := bySite[n.Site]; !ok {
			sites = append(sites, n.Site)
		}
		bySite[n.Site] = append(bySite[n.Site], n)
	}
	slices.Sort(sites)
	out := make([]Node, 0, len(ordered))
	if canary.TopologyOrder == slmopsv1alpha1.TopologySiteBySite {
		for _, s := range sites {
			out = append(out, bySite[s]...)
		}
		return out
	}
	for i := 0; len(out) < len(ordered); i++ {
		for _, s := range sites {
			if i < len(bySite[s]) {
				out = append(out, bySite[s][i])
			}
		}
	}
	return out
}
