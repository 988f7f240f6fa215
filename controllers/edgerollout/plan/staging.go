package plan

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/inferd/config"
)

// Stage, then activate. With spec.distribution.staging, a node joins the
// canary cohort only once a stager pod on it (inferd in stage mode, from a
// DaemonSet per revision and artifact that runs on the nodes carrying the
// rollout's stage label) holds the verified model in the node cache; the
// node's stable pod serves meanwhile. The plan decides which nodes carry the
// stage label: the nodes of the next lookaheadSteps steps, at most
// maxConcurrentNodes downloading at once, inside the staging windows, and,
// with peer sharing, one seed per site until a node of the site holds the
// file. A stager that cannot stage exits with a reason (InsufficientDisk,
// FetchFailed) that the plan reads from its termination message: the node is
// excluded from the rollout, listed with that reason, and keeps its revision.

// siteKey is one site's copy of one artifact: what peers share, and what a
// seed learns about the origin for the rest of its site.
type siteKey struct{ site, variant string }

// maxExcludedNodes bounds status.distribution.excludedNodes.
const maxExcludedNodes = 50

// moveTo is the revision that nodes are moving to: the canary while it is
// rolled out, the stable revision otherwise.
func (d *decider) moveTo() string {
	if d.st.CanaryRevision != "" && Active(d.st.Phase) {
		return d.st.CanaryRevision
	}
	return d.st.StableRevision
}

// staging reports whether nodes stage rev before they switch to it: staging
// is on and rev is the revision the current spec describes (the only one
// whose stager the operator can build).
func (d *decider) staging(rev string) bool {
	return d.in.Spec.Distribution.Staging != nil && rev != "" && rev == d.in.Revision
}

// staged reports whether node n holds rev's model: it runs rev, or its
// stager of rev is ready.
func staged(n *Node, rev string) bool {
	return n.Revision == rev || (n.StageRevision == rev && n.Stage.Ready)
}

// stageFailed reports whether n's stager of rev cannot stage: it crash-loops
// or failed (it exits with a reason when it cannot).
func stageFailed(n *Node, rev string) bool {
	s := n.Stage
	return n.StageRevision == rev && n.Revision != rev && s.Exists && !s.Ready && (s.Failure != "" || s.Restarts > 0)
}

// stageFailure is the reason and message of a failed stager, from inferd's
// termination message.
func stageFailure(s Pod) (reason, message string) {
	msg := strings.TrimSpace(s.Terminated)
	if reason, message, ok := config.ParseTermination(msg); ok {
		return reason, truncate(message, 1024)
	}
	if msg == "" {
		msg = strings.TrimSpace(s.Failure + ": " + s.Message)
	}
	return slmopsv1alpha1.ReasonStagingFailed, truncate(msg, 1024)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// eligible drops the target nodes that cannot take part: unfit for the
// model, or failed to stage it. A node that already runs the revision nodes
// move to is never dropped.
func (d *decider) eligible(targets []*Node) []*Node {
	d.excluded = map[string]slmopsv1alpha1.ExcludedNode{}
	rev := d.moveTo()
	d.learnOriginFailures(targets, rev)
	out := make([]*Node, 0, len(targets))
	for _, n := range targets {
		switch {
		case n.Revision == rev && rev != "":
		case d.unfit[n.Name].Reason != "":
			d.excluded[n.Name] = d.unfit[n.Name]
			continue
		case d.staging(rev) && stageFailed(n, rev):
			reason, message := stageFailure(n.Stage)
			d.excluded[n.Name] = slmopsv1alpha1.ExcludedNode{Node: n.Name, Reason: reason, Message: message}
			continue
		case d.staging(rev) && !staged(n, rev):
			if f, ok := d.originFailed[d.originKey(n)]; ok {
				d.excluded[n.Name] = slmopsv1alpha1.ExcludedNode{Node: n.Name, Reason: f.Reason,
					Message: truncate(fmt.Sprintf("not fetched: the origin failed for the stager on %s: %s", f.Node, f.Message), 1024)}
				continue
			}
		}
		out = append(out, n)
	}
	if len(d.excluded) > 0 {
		d.reportExclusions()
	}
	return out
}

// learnOriginFailures records, per site and artifact, the first stager (in
// name order) that the origin itself failed: it answered 404 or denied the
// request, or sent bytes that do not hash to the digest. That answer is the
// same for every node, so the rest of the site does not ask again: its
// nodes are excluded with the seed's reason, and only that stager keeps
// retrying (paced by the kubelet's back-off) until the origin recovers.
// Without peer sharing the whole fleet is one site.
func (d *decider) learnOriginFailures(targets []*Node, rev string) {
	d.originFailed = map[siteKey]slmopsv1alpha1.ExcludedNode{}
	if !d.staging(rev) {
		return
	}
	holds := map[siteKey]bool{}
	for _, n := range targets {
		if staged(n, rev) {
			holds[d.originKey(n)] = true
		}
	}
	for _, n := range targets { // in.Nodes is sorted by name
		k := d.originKey(n)
		if holds[k] || !stageFailed(n, rev) {
			continue
		}
		if _, ok := d.originFailed[k]; ok {
			continue
		}
		if reason, message := stageFailure(n.Stage); config.OriginFailure(reason) {
			d.originFailed[k] = slmopsv1alpha1.ExcludedNode{Node: n.Name, Reason: reason, Message: message}
		}
	}
}

// originKey is the group of nodes that share what one of them learns of
// the origin: its site and artifact with peer sharing, its artifact without.
func (d *decider) originKey(n *Node) siteKey {
	if d.in.Spec.Distribution.PeerSharing == nil {
		return siteKey{variant: n.Variant}
	}
	return siteKey{n.PeerSite, n.Variant}
}

// tooManyExcluded reports whether more target nodes are excluded than
// distribution.maxExcludedNodes allows, with a summary of the top reasons:
// a model that most nodes cannot take fails the rollout instead of
// completing on the few that can.
func (d *decider) tooManyExcluded() (summary string, failed bool) {
	limit := scaled(d.in.Spec.Distribution.MaxExcludedNodes, len(d.all), false, 0)
	if len(d.excluded) <= limit {
		return "", false
	}
	reasons, byReason := d.exclusionsByReason()
	parts := make([]string, 0, 3)
	for _, r := range reasons[:min(3, len(reasons))] {
		first := d.excluded[byReason[r][0]]
		parts = append(parts, fmt.Sprintf("%s on %d (%s: %s)", r, len(byReason[r]), first.Node, truncate(first.Message, 200)))
	}
	return fmt.Sprintf("%d of %d target nodes excluded, more than maxExcludedNodes %d: %s",
		len(d.excluded), len(d.all), limit, strings.Join(parts, "; ")), true
}

// exclusionsByReason groups the excluded nodes by reason, most common
// reason first, names sorted.
func (d *decider) exclusionsByReason() (reasons []string, byReason map[string][]string) {
	byReason = map[string][]string{}
	for name, e := range d.excluded {
		byReason[e.Reason] = append(byReason[e.Reason], name)
	}
	reasons = make([]string, 0, len(byReason))
	for r := range byReason {
		reasons = append(reasons, r)
		slices.Sort(byReason[r])
	}
	sort.Slice(reasons, func(i, j int) bool {
		if a, b := len(byReason[reasons[i]]), len(byReason[reasons[j]]); a != b {
			return a > b
		}
		return reasons[i] < reasons[j]
	})
	return reasons, byReason
}

// excludedAsFailing lists the excluded nodes as failing nodes, most common
// reason first.
func (d *decider) excludedAsFailing() []slmopsv1alpha1.FailingNode {
	reasons, byReason := d.exclusionsByReason()
	var failing []slmopsv1alpha1.FailingNode
	for _, r := range reasons {
		for _, name := range byReason[r] {
			e := d.excluded[name]
			failing = append(failing, slmopsv1alpha1.FailingNode{Node: name, Reason: e.Reason, Message: e.Message})
		}
	}
	return failing
}

// reportExclusions sends one event when nodes are newly excluded.
func (d *decider) reportExclusions() {
	before := map[string]bool{}
	if ds := d.in.Status.Distribution; ds != nil {
		for _, e := range ds.ExcludedNodes {
			before[e.Node] = true
		}
	}
	var fresh []string
	for name, e := range d.excluded {
		if !before[name] {
			fresh = append(fresh, name+" ("+e.Reason+")")
		}
	}
	if len(fresh) == 0 || len(before) >= maxExcludedNodes {
		return // nothing new, or the list was full and cannot tell
	}
	sort.Strings(fresh)
	shown := fresh
	if len(shown) > 3 {
		shown = append(shown[:3:3], fmt.Sprintf("and %d more", len(fresh)-3))
	}
	d.event(corev1.EventTypeWarning, slmopsv1alpha1.EventReasonNodesExcluded, "%d target nodes cannot take the model and keep their revision: %s",
		len(fresh), strings.Join(shown, ", "))
}

// canJoin reports whether a node may join the canary cohort: with staging,
// only once it holds the canary's model.
func (d *decider) canJoin(n *Node) bool {
	rev := d.st.CanaryRevision
	return !d.staging(rev) || staged(n, rev)
}

// unstagedSlots is how many nodes a cohort of size still lacks because they
// have not staged yet; nodes that cannot stage now (unreachable) do not hold
// the step.
func (d *decider) unstagedSlots(size int) int {
	if !d.staging(d.st.CanaryRevision) || len(d.cohort) >= size {
		return 0
	}
	possible := 0
	for _, n := range d.targets {
		if d.cohort[n.Name] || n.Reachable {
			possible++
		}
	}
	return min(size, possible) - len(d.cohort)
}

// mayActivate reports whether node n may switch to want now. Stage, then
// activate applies to a node that serves another revision and moves to the
// one being staged; a node with nothing to serve switches at once (staging
// first would gain nothing), and a canary node going back to stable does
// (its previous model is still in its cache).
func (d *decider) mayActivate(n *Node, want string) bool {
	if want == "" || n.Revision == "" || !d.staging(want) || want != d.moveTo() {
		return true
	}
	if n.Revision == d.st.CanaryRevision && want == d.st.StableRevision {
		return true
	}
	return staged(n, want)
}

// stage decides the stage labels and status.distribution, after the plan
// moved the rollout.
func (d *decider) stage() {
	st, p := d.st, d.p
	p.StageLabels = map[string]string{}
	rev := d.moveTo()
	on := d.staging(rev)
	want := map[string]string{}
	var nextWindow *metav1.Time
	if on {
		nextWindow = d.chooseStagers(rev, want)
		p.StageRevision = ""
		for _, r := range want {
			if r != "" {
				p.StageRevision = rev
				break
			}
		}
	}
	for i := range d.in.Nodes {
		n := &d.in.Nodes[i]
		if n.StageRevision != want[n.Name] {
			p.StageLabels[n.Name] = want[n.Name]
		}
	}

	if !on && len(d.excluded) == 0 {
		st.Distribution = nil
		return
	}
	ds := &slmopsv1alpha1.DistributionStatus{Revision: rev, NextWindow: nextWindow}
	for _, n := range d.all {
		if e, ok := d.excluded[n.Name]; ok {
			if d.unfit[n.Name].Reason != "" {
				ds.UnfitNodes++
			} else {
				ds.FailedNodes++
			}
			if len(ds.ExcludedNodes) < maxExcludedNodes {
				e.Message = truncate(e.Message, maxListedMessage)
				ds.ExcludedNodes = append(ds.ExcludedNodes, e)
			}
			continue
		}
		if !on {
			continue
		}
		switch {
		case staged(n, rev):
			ds.StagedNodes++
		case want[n.Name] == rev:
			ds.StagingNodes++
		default:
			ds.WaitingNodes++
		}
	}
	sort.Slice(ds.ExcludedNodes, func(i, j int) bool { return ds.ExcludedNodes[i].Node < ds.ExcludedNodes[j].Node })
	st.Distribution = ds
}

// chooseStagers fills want with the stage label each node should carry and
// returns the next staging window's start while outside the windows.
func (d *decider) chooseStagers(rev string, want map[string]string) *metav1.Time {
	st := d.st
	staging := d.in.Spec.Distribution.Staging
	canaryActive := st.CanaryRevision == rev && Active(st.Phase)
	sharing := d.in.Spec.Distribution.PeerSharing != nil

	// Who holds the file, and who is fetching it, per site and artifact.
	holders, fetching := map[siteKey]int{}, map[siteKey]int{}
	inProgress := 0
	for i := range d.in.Nodes {
		n := &d.in.Nodes[i]
		if !n.Target || d.unfit[n.Name].Reason != "" {
			continue
		}
		k := siteKey{n.PeerSite, n.Variant}
		if (n.StageRevision == rev && n.Stage.Ready) || (n.Revision == rev && n.Pod.Ready) {
			holders[k]++
		}
		if n.StageRevision != rev {
			continue
		}
		// A node keeps its stager while the canary is rolled out (it serves
		// the site's peers); once nodes stopped moving, only the nodes yet
		// to switch keep theirs.
		if n.Revision == rev && !canaryActive {
			continue
		}
		// Once the origin failed a site's stager, that stager alone asks
		// it again; the others of the site stop.
		if f, ok := d.originFailed[d.originKey(n)]; ok && f.Node != n.Name && !staged(n, rev) {
			continue
		}
		want[n.Name] = rev
		if n.Revision != rev && !n.Stage.Ready && !stageFailed(n, rev) {
			inProgress++
			fetching[k]++
		}
	}

	// Who should stage next, in cohort order.
	var next []*Node
	if canaryActive {
		steps := canarySteps(d.canary)
		ahead := int(st.CurrentStep) + int(ptr.Deref(staging.LookaheadSteps, 0))
		size := stepSize(steps, min(ahead, len(steps)-1), len(d.targets))
		for _, n := range d.ordered() {
			if len(next) == size {
				break
			}
			next = append(next, n)
		}
	} else {
		for _, n := range d.ordered() {
			if n.Revision != "" && n.Revision != rev && n.Revision != st.CanaryRevision {
				next = append(next, n)
			}
		}
	}

	var nextWindow *metav1.Time
	open, start := inWindows(staging, d.in.Now)
	if !open {
		nextWindow = &metav1.Time{Time: start}
		d.wake(start)
	}
	limit := int(staging.MaxConcurrentNodes)
	for _, n := range next {
		if want[n.Name] == rev || n.Revision == rev {
			continue
		}
		if !open || d.in.Spec.Paused || inProgress >= limit || !n.Reachable {
			continue
		}
		k := siteKey{n.PeerSite, n.Variant}
		if _, failed := d.originFailed[d.originKey(n)]; failed {
			continue
		}
		if sharing && holders[k] == 0 && fetching[k] > 0 {
			// One seed per site fetches from the origin; the others wait
			// for it and then fetch from it.
			continue
		}
		want[n.Name] = rev
		inProgress++
		fetching[k]++
	}
	return nextWindow
}

// inWindows reports whether now is inside a staging window; when it is not,
// start is when the next window opens.
func inWindows(s *slmopsv1alpha1.Staging, now time.Time) (open bool, start time.Time) {
	if len(s.Windows) == 0 {
		return true, time.Time{}
	}
	loc := time.UTC
	if s.TimeZone != "" {
		if l, err := time.LoadLocation(s.TimeZone); err == nil {
			loc = l
		}
	}
	local := now.In(loc)
	minute := func(hhmm string) int {
		var h, m int
		_, _ = fmt.Sscanf(hhmm, "%d:%d", &h, &m)
		return h*60 + m
	}
	nowMin := local.Hour()*60 + local.Minute()
	var best time.Time
	for _, w := range s.Windows {
		from, to := minute(w.Start), minute(w.End)
		inside := (from < to && nowMin >= from && nowMin < to) || (from > to && (nowMin >= from || nowMin < to))
		if inside {
			return true, time.Time{}
		}
		day := time.Date(local.Year(), local.Month(), local.Day(), from/60, from%60, 0, 0, loc)
		if !day.After(local) {
			day = day.AddDate(0, 0, 1)
		}
		if best.IsZero() || day.Before(best) {
			best = day
		}
	}
	return false, best
}
