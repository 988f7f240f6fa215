package plan

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// Hardware classes. A node's class is the values of
// analysis.hardwareClassLabels on it: nodes of one class are alike, so what
// the canary's inferd pods measured in their self-tests is compared with what
// the stable revision's measured on the same class, never across classes. The
// status lists each class with both revisions' figures; the relative
// thresholds fail a class whose canary is slower than its stable revision;
// and under analysis.scope HardwareClass a class that fails goes back to
// its revision (status.excludedClasses) while the others go on.

const (
	// maxClasses bounds status.hardwareClasses; the rest are added up.
	maxClasses = 16
	// otherClass is the name the classes beyond maxClasses are added up under.
	otherClass = "(other)"
	// maxExcludedClasses bounds status.excludedClasses; a canary that
	// would exclude more fails as a whole.
	maxExcludedClasses = 16
	// maxClassMessage bounds the message of an excluded class.
	maxClassMessage = 512
)

// ClassOf is the hardware class of a node with these labels: the values of
// keys, joined by "/", "-" for a label the node lacks.
func ClassOf(nodeLabels map[string]string, keys []string) string {
	vals := make([]string, len(keys))
	for i, k := range keys {
		vals[i] = nodeLabels[k]
		if vals[i] == "" {
			vals[i] = "-"
		}
	}
	return strings.Join(vals, "/")
}

// sample is what the self-tests of some nodes measured.
type sample struct {
	decode, ttft []float64
}

func (s *sample) add(n *Node) {
	if r := n.Pod.Report; r != nil {
		s.decode = append(s.decode, r.DecodeTokensPerSecond)
		s.ttft = append(s.ttft, r.TimeToFirstTokenSeconds)
	}
}

// percentile is the nearest-rank p-th percentile (0 < p <= 1) of values.
func percentile(values []float64, p float64) float64 {
	if len(values) == 0 {
		return 0
	}
	v := slices.Clone(values)
	slices.Sort(v)
	i := int(math.Ceil(p*float64(len(v)))) - 1
	return v[max(0, min(i, len(v)-1))]
}

// decimal prints a figure for the status: at most three decimals, no
// trailing zeros.
func decimal(f float64) string {
	s := strconv.FormatFloat(f, 'f', 3, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// failedPod reports whether a node's pod failed: it crash-loops or failed,
// or its self-test report says it did not pass.
func failedPod(p Pod) bool {
	return p.Failure != "" || (p.Report != nil && !p.Report.Passed)
}

// classCount gathers one revision's nodes of one class.
type classCount struct {
	nodes, ready, failed int32
	sample               sample
}

func (c *classCount) add(n *Node) {
	c.nodes++
	if n.Pod.Ready && n.Reachable {
		c.ready++
	}
	if failedPod(n.Pod) {
		c.failed++
	}
	c.sample.add(n)
}

func (c *classCount) merge(o *classCount) {
	c.nodes, c.ready, c.failed = c.nodes+o.nodes, c.ready+o.ready, c.failed+o.failed
	c.sample.decode = append(c.sample.decode, o.sample.decode...)
	c.sample.ttft = append(c.sample.ttft, o.sample.ttft...)
}

func (c *classCount) figures(rev string) *slmopsv1alpha1.ClassFigures {
	if c == nil || rev == "" {
		return nil
	}
	f := &slmopsv1alpha1.ClassFigures{Revision: rev, Nodes: c.nodes, Ready: c.ready, Failed: c.failed, Reports: int32(len(c.sample.decode))}
	if len(c.sample.decode) > 0 {
		f.DecodeTokensPerSecondP50 = decimal(percentile(c.sample.decode, 0.5))
		f.DecodeTokensPerSecondP90 = decimal(percentile(c.sample.decode, 0.9))
		f.TimeToFirstTokenSecondsP50 = decimal(percentile(c.sample.ttft, 0.5))
		f.TimeToFirstTokenSecondsP90 = decimal(percentile(c.sample.ttft, 0.9))
	}
	return f
}

// classStatus fills status.hardwareClasses: every class of the target
// nodes, largest first, at most maxClasses and the rest under otherClass.
func (d *decider) classStatus() []slmopsv1alpha1.HardwareClassStatus {
	st := d.st
	type class struct {
		name           string
		nodes          int32
		canary, stable classCount
		// home is the class's stable revision: the rollout's, or the
		// revision an excluded class stays on.
		home string
	}
	byName := map[string]*class{}
	for _, n := range d.all {
		c := byName[n.Class]
		if c == nil {
			c = &class{name: n.Class, home: d.home(n)}
			byName[n.Class] = c
		}
		c.nodes++
		switch {
		case st.CanaryRevision != "" && n.Revision == st.CanaryRevision:
			c.canary.add(n)
		case n.Revision != "" && n.Revision == c.home:
			c.stable.add(n)
		}
	}
	if len(byName) == 0 || (len(byName) == 1 && byName[""] != nil) {
		return nil
	}
	classes := make([]*class, 0, len(byName))
	for _, c := range byName {
		classes = append(classes, c)
	}
	sort.Slice(classes, func(i, j int) bool {
		if classes[i].nodes != classes[j].nodes {
			return classes[i].nodes > classes[j].nodes
		}
		return classes[i].name < classes[j].name
	})
	if len(classes) > maxClasses {
		other := &class{name: otherClass, home: st.StableRevision}
		for _, c := range classes[maxClasses:] {
			other.nodes += c.nodes
			other.canary.merge(&c.canary)
			other.stable.merge(&c.stable)
		}
		classes = append(classes[:maxClasses:maxClasses], other)
	}
	out := make([]slmopsv1alpha1.HardwareClassStatus, 0, len(classes))
	for _, c := range classes {
		cs := slmopsv1alpha1.HardwareClassStatus{Name: c.name, Nodes: c.nodes}
		if c.canary.nodes > 0 {
			cs.Canary = c.canary.figures(st.CanaryRevision)
		}
		if c.stable.nodes > 0 {
			cs.Stable = c.stable.figures(c.home)
		}
		out = append(out, cs)
	}
	return out
}

// classFailure is a hardware class on which the canary failed.
type classFailure struct {
	Class, Reason, Message string
}

// ratio parses a relative threshold of the spec; 0 when unset or not a
// positive number (the schema refuses those).
func ratio(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// slowerClasses are the classes on which the canary's healthy cohort nodes
// measured a median decode rate below minRelativeThroughput of the stable
// revision's median on the same class, or a median time to first token
// above maxRelativeTimeToFirstToken of it. A class without reports of both
// revisions is not compared.
func (d *decider) slowerClasses(healthy map[string]bool) []classFailure {
	a := d.in.Spec.Analysis
	minTPS, maxTTFT := ratio(a.MinRelativeThroughput), ratio(a.MaxRelativeTimeToFirstToken)
	if minTPS == 0 && maxTTFT == 0 {
		return nil
	}
	canary, stable := map[string]*sample{}, map[string]*sample{}
	get := func(m map[string]*sample, class string) *sample {
		if m[class] == nil {
			m[class] = &sample{}
		}
		return m[class]
	}
	for _, n := range d.targets {
		switch {
		case healthy[n.Name]:
			get(canary, n.Class).add(n)
		case n.Revision != "" && n.Revision == d.st.StableRevision && n.Pod.Ready && n.Reachable:
			get(stable, n.Class).add(n)
		}
	}
	var out []classFailure
	for class, c := range canary {
		s := stable[class]
		if s == nil || len(s.decode) == 0 || len(c.decode) == 0 {
			continue
		}
		cTPS, sTPS := percentile(c.decode, 0.5), percentile(s.decode, 0.5)
		cTTFT, sTTFT := percentile(c.ttft, 0.5), percentile(s.ttft, 0.5)
		var why []string
		if minTPS > 0 && sTPS > 0 && cTPS < minTPS*sTPS {
			why = append(why, fmt.Sprintf("decodes %s tokens/s (median of %d nodes), %s of stable's %s (median of %d), below minRelativeThroughput %s",
				decimal(cTPS), len(c.decode), decimal(cTPS/sTPS), decimal(sTPS), len(s.decode), a.MinRelativeThroughput))
		}
		if maxTTFT > 0 && sTTFT > 0 && cTTFT > maxTTFT*sTTFT {
			why = append(why, fmt.Sprintf("takes %ss to the first token (median of %d nodes), %s times stable's %ss (median of %d), above maxRelativeTimeToFirstToken %s",
				decimal(cTTFT), len(c.ttft), decimal(cTTFT/sTTFT), decimal(sTTFT), len(s.ttft), a.MaxRelativeTimeToFirstToken))
		}
		if len(why) > 0 {
			out = append(out, classFailure{Class: class, Reason: slmopsv1alpha1.ReasonSlowerThanStable,
				Message: fmt.Sprintf("on class %s the canary %s", class, strings.Join(why, "; it "))})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Class < out[j].Class })
	return out
}

// failingClasses are the classes whose failing cohort nodes are more than
// maxFailedNodes of the class's target nodes.
func (d *decider) failingClasses(failing []slmopsv1alpha1.FailingNode) []classFailure {
	classOf := map[string]string{}
	size := map[string]int{}
	for _, n := range d.targets {
		classOf[n.Name] = n.Class
		size[n.Class]++
	}
	byClass := map[string][]slmopsv1alpha1.FailingNode{}
	for _, f := range failing {
		c := classOf[f.Node]
		byClass[c] = append(byClass[c], f)
	}
	var out []classFailure
	for class, fs := range byClass {
		limit := scaled(d.in.Spec.Analysis.MaxFailedNodes, size[class], false, 0)
		if len(fs) <= limit {
			continue
		}
		out = append(out, classFailure{Class: class, Reason: slmopsv1alpha1.ReasonCanaryFailed,
			Message: fmt.Sprintf("on class %s %d canary nodes failed, more than maxFailedNodes %d of its %d nodes: %s (%s)",
				class, len(fs), limit, size[class], fs[0].Node, fs[0].Reason)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Class < out[j].Class })
	return out
}

// excludeClasses sends the failed classes back to their revision under
// scope HardwareClass, and reports whether it did: not when the failure is
// not one of classes, or when it would leave no class to roll out to (the
// canary then fails as a whole).
func (d *decider) excludeClasses(failed []classFailure) bool {
	if d.in.Spec.Analysis.Scope != slmopsv1alpha1.AnalysisScopeHardwareClass || len(failed) == 0 {
		return false
	}
	left := map[string]bool{}
	for _, n := range d.targets {
		left[n.Class] = true
	}
	for _, f := range failed {
		delete(left, f.Class)
	}
	if len(left) == 0 || len(d.st.ExcludedClasses)+len(failed) > maxExcludedClasses {
		return false
	}
	st := d.st
	for _, f := range failed {
		home := st.StableRevision
		if e := d.classEntry(f.Class); e != nil {
			home = e.Revision
		}
		entry := slmopsv1alpha1.ExcludedClass{Name: f.Class, Revision: home, CanaryRevision: st.CanaryRevision,
			Reason: f.Reason, Message: truncate(f.Message, maxClassMessage)}
		if i := slices.IndexFunc(st.ExcludedClasses, func(e slmopsv1alpha1.ExcludedClass) bool { return e.Name == f.Class }); i >= 0 {
			st.ExcludedClasses[i] = entry
		} else {
			st.ExcludedClasses = append(st.ExcludedClasses, entry)
		}
		d.event(corev1.EventTypeWarning, slmopsv1alpha1.EventReasonClassRolledBack, "Revision %s rolled back on hardware class %s to %s: %s",
			st.CanaryRevision, f.Class, stableName(home), f.Message)
	}
	sort.Slice(st.ExcludedClasses, func(i, j int) bool { return st.ExcludedClasses[i].Name < st.ExcludedClasses[j].Name })
	d.blockClasses()
	return true
}

// classEntry is the class's entry in status.excludedClasses, nil if none.
func (d *decider) classEntry(class string) *slmopsv1alpha1.ExcludedClass {
	for i := range d.st.ExcludedClasses {
		if d.st.ExcludedClasses[i].Name == class {
			return &d.st.ExcludedClasses[i]
		}
	}
	return nil
}

// home is the revision a node runs when it is not in the canary's cohort:
// its class's revision when the canary failed on its class once, the
// stable revision otherwise.
func (d *decider) home(n *Node) string {
	if e := d.classEntry(n.Class); e != nil {
		return e.Revision
	}
	return d.st.StableRevision
}

// blockClasses moves the nodes of the classes that the current canary
// failed on out of the targets: they take no part in its cohort, its steps
// or its staging, and go home (see assign).
func (d *decider) blockClasses() {
	if d.st.CanaryRevision == "" {
		return
	}
	blocked := map[string]bool{}
	for _, e := range d.st.ExcludedClasses {
		if e.CanaryRevision == d.st.CanaryRevision {
			blocked[e.Name] = true
		}
	}
	if len(blocked) == 0 {
		return
	}
	kept := d.targets[:0:0]
	for _, n := range d.targets {
		if blocked[n.Class] {
			d.blocked = append(d.blocked, n)
		} else {
			kept = append(kept, n)
		}
	}
	d.targets, d.order = kept, nil
}

// keepClassesOf drops the classes that a completed canary rolled out to
// from status.excludedClasses: they run the new stable revision. The
// classes it failed on stay where they are.
func (d *decider) keepClassesOf(canary string) {
	var kept []slmopsv1alpha1.ExcludedClass
	for _, e := range d.st.ExcludedClasses {
		if e.CanaryRevision == canary {
			kept = append(kept, e)
		}
	}
	d.st.ExcludedClasses = kept
}

// partiallyRolledBack sets the PartiallyRolledBack condition while some
// classes stay on an older revision, and removes it when none does (a
// rollout that never excluded a class does not carry it).
func (d *decider) partiallyRolledBack() {
	st := d.st
	if len(st.ExcludedClasses) == 0 {
		meta.RemoveStatusCondition(&st.Conditions, slmopsv1alpha1.ConditionPartiallyRolledBack)
		return
	}
	parts := make([]string, 0, len(st.ExcludedClasses))
	for _, e := range st.ExcludedClasses {
		parts = append(parts, fmt.Sprintf("%s stays on %s (%s)", e.Name, orNone(e.Revision), e.Reason))
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: slmopsv1alpha1.ConditionPartiallyRolledBack, Status: metav1.ConditionTrue, ObservedGeneration: d.in.Generation,
		Reason: slmopsv1alpha1.ReasonClassesRolledBack, LastTransitionTime: d.now,
		Message: truncate(fmt.Sprintf("%d hardware classes stay on an older revision: %s", len(parts), strings.Join(parts, "; ")), 1024),
	})
}

func orNone(rev string) string {
	if rev == "" {
		return "no revision"
	}
	return "revision " + rev
}
