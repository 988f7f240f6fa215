package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// defaultTopologyKey groups nodes into sites when the rollout names no key.
const defaultTopologyKey = "topology.kubernetes.io/zone"

func (c *cli) statusCommand() *cobra.Command {
	var watch, allSites bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show where a rollout is: step, cohort, per-site counts, failing nodes",
		Long: "Show where a rollout is: its phase and step, the canary cohort, ready nodes per\n" +
			"site, and the failing nodes with their reasons. With --watch, print the view\n" +
			"again whenever it changes, and exit when the rollout ends: 0 when Completed,\n" +
			"1 when RolledBack, Degraded or Aborted. The view is read from the rollout's\n" +
			"status (one object, however large the fleet), which lists up to 100 sites;\n" +
			"--all-sites counts every site from the nodes and pods instead.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if !watch {
				v, err := c.view(ctx, args[0], allSites)
				if err != nil {
					return err
				}
				v.render(c.out, time.Now())
				return nil
			}
			return c.watch(ctx, args[0], allSites, interval)
		},
	}
	cmd.Flags().BoolVar(&allSites, "all-sites", false, "count every site from the nodes and pods (two lists of the fleet) instead of reading the rollout's status")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "print the view again on every change until the rollout ends")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "how often --watch looks")
	return cmd
}

// watch prints the view whenever it changes, until the rollout ends.
func (c *cli) watch(ctx context.Context, name string, allSites bool, interval time.Duration) error {
	var last string
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		v, err := c.view(ctx, name, allSites)
		if err != nil {
			return err
		}
		var b strings.Builder
		v.render(&b, time.Time{}) // without ages, so only real changes print
		if s := b.String(); s != last {
			if last != "" {
				fmt.Fprintln(c.out)
			}
			fmt.Fprintf(c.out, "--- %s\n", time.Now().Format(time.TimeOnly))
			v.render(c.out, time.Now())
			last = s
		}
		if v.r.Status.ObservedGeneration == v.r.Generation {
			switch v.r.Status.Phase {
			case slmopsv1alpha1.PhaseCompleted:
				return nil
			case slmopsv1alpha1.PhaseRolledBack, slmopsv1alpha1.PhaseDegraded, slmopsv1alpha1.PhaseAborted:
				return exitError{code: 1, msg: fmt.Sprintf("edgerollout %s/%s ended %s", c.ns, name, v.r.Status.Phase)}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// statusView is what status prints.
type statusView struct {
	r     *slmopsv1alpha1.EdgeRollout
	model *slmopsv1alpha1.SLMModel
	key   string
	sites []slmopsv1alpha1.SiteStatus
	// moreSites is how many sites the status counts but does not list.
	moreSites int
}

// view reads what status prints: the sites from the rollout's status, or
// with allSites counted from the nodes and pods.
func (c *cli) view(ctx context.Context, name string, allSites bool) (*statusView, error) {
	r, err := c.get(ctx, name)
	if err != nil {
		return nil, err
	}
	v := &statusView{r: r, key: defaultTopologyKey}
	if k := r.Spec.Strategy.Canary.TopologyKey; k != "" {
		v.key = k
	}
	m := &slmopsv1alpha1.SLMModel{}
	if err := c.client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: r.Spec.ModelRef.Name}, m); err == nil {
		v.model = m
	}
	// The operator counts the sites into the status; an operator older
	// than that, or --all-sites, has them counted here.
	if st := r.Status; !allSites && (st.SiteCount > 0 || st.TargetNodes == 0) {
		v.sites = st.Sites
		v.moreSites = int(st.SiteCount) - len(st.Sites)
		return v, nil
	}

	selector, err := r.Spec.NodeSelector.Selector()
	if err != nil {
		return nil, fmt.Errorf("spec.nodeSelector: %w", err)
	}
	var nodes corev1.NodeList
	if err := c.client.List(ctx, &nodes, client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	var pods corev1.PodList
	if err := c.client.List(ctx, &pods, client.InNamespace(r.Namespace), client.MatchingLabels{slmopsv1alpha1.RolloutLabel: r.Name}); err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	ready := map[string]bool{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Spec.NodeName != "" && podReady(&p) {
			ready[p.Spec.NodeName] = true
		}
	}
	failing := map[string]bool{}
	for _, f := range r.Status.FailingNodes {
		failing[f.Node] = true
	}
	cohort := slmopsv1alpha1.CohortLabel(r.Namespace, r.Name)
	bySite := map[string]*slmopsv1alpha1.SiteStatus{}
	for _, n := range nodes.Items {
		name := n.Labels[v.key]
		if name == "" {
			name = "(none)"
		}
		s := bySite[name]
		if s == nil {
			s = &slmopsv1alpha1.SiteStatus{Name: name}
			bySite[name] = s
		}
		s.TargetNodes++
		if rev := r.Status.CanaryRevision; rev != "" && n.Labels[cohort] == rev {
			s.CanaryNodes++
		}
		if ready[n.Name] {
			s.ReadyNodes++
		}
		if failing[n.Name] {
			s.FailingNodes++
		}
	}
	for _, s := range bySite {
		v.sites = append(v.sites, *s)
	}
	slices.SortFunc(v.sites, func(a, b slmopsv1alpha1.SiteStatus) int { return strings.Compare(a.Name, b.Name) })
	return v, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// render writes the view; ages are relative to now, or left out when now is
// zero.
func (v *statusView) render(w io.Writer, now time.Time) {
	r, st := v.r, v.r.Status
	fmt.Fprintf(w, "EdgeRollout %s/%s", r.Namespace, r.Name)
	if v.model != nil {
		fmt.Fprintf(w, "  model %s %s (%s)", v.model.Name, v.model.Spec.Quantization, shortDigest(v.model.Spec.Digest))
	} else {
		fmt.Fprintf(w, "  model %s (not found)", r.Spec.ModelRef.Name)
	}
	fmt.Fprintln(w)

	phase := string(st.Phase)
	if phase == "" {
		phase = string(slmopsv1alpha1.PhasePending)
	}
	if r.Spec.Paused {
		phase += " (spec.paused)"
	}
	if st.ObservedGeneration != r.Generation {
		phase += " (the operator has not seen the latest spec yet)"
	}
	steps := r.Spec.Strategy.Canary.Steps
	fmt.Fprintf(w, "Phase:     %s", phase)
	if st.CanaryRevision != "" && len(steps) > 0 && int(st.CurrentStep) < len(steps) {
		fmt.Fprintf(w, ", step %d of %d (%s)", st.CurrentStep+1, len(steps), steps[st.CurrentStep].Nodes.String())
		if !now.IsZero() && st.StepStartedAt != nil {
			fmt.Fprintf(w, " for %s", age(now, st.StepStartedAt.Time))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Nodes:     %d target, %d canary, %d ready, %d updated, %d unavailable, %d unreachable\n",
		st.TargetNodes, st.CanaryNodes, st.ReadyNodes, st.UpdatedNodes, st.UnavailableNodes, st.UnreachableNodes)
	fmt.Fprintf(w, "Revisions: stable %s, canary %s\n", orNone(st.StableRevision), orNone(st.CanaryRevision))
	if len(st.Variants) > 0 {
		var parts []string
		for _, v := range st.Variants {
			parts = append(parts, fmt.Sprintf("%s %d/%d ready", v.Name, v.ReadyNodes, v.TargetNodes))
		}
		fmt.Fprintf(w, "Variants:  %s\n", strings.Join(parts, ", "))
	}
	if d := st.Distribution; d != nil {
		fmt.Fprintf(w, "Staging:   %s: %d staged, %d staging, %d waiting, %d failed, %d unfit",
			orNone(d.Revision), d.StagedNodes, d.StagingNodes, d.WaitingNodes, d.FailedNodes, d.UnfitNodes)
		if d.NextWindow != nil {
			fmt.Fprintf(w, "; next window %s", d.NextWindow.UTC().Format(time.RFC3339))
		}
		fmt.Fprintln(w)
	}
	if c := meta.FindStatusCondition(st.Conditions, conditionFor(st.Phase)); c != nil && c.Message != "" {
		fmt.Fprintf(w, "Message:   %s\n", c.Message)
	}
	if c := meta.FindStatusCondition(st.Conditions, slmopsv1alpha1.ConditionApplied); c != nil && c.Status == metav1.ConditionFalse {
		fmt.Fprintf(w, "Not applied: %s: %s\n", c.Reason, c.Message)
	}

	if len(v.sites) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "SITE (%s)\tNODES\tCANARY\tREADY\tFAILING\n", v.key)
		for _, s := range v.sites {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", s.Name, s.TargetNodes, s.CanaryNodes, s.ReadyNodes, s.FailingNodes)
		}
		tw.Flush()
		if v.moreSites > 0 {
			// Sites with nodes that are not ready come first: when the
			// last listed one is all ready, so are the rest.
			allReady := ""
			if last := v.sites[len(v.sites)-1]; last.ReadyNodes == last.TargetNodes {
				allReady = ", all ready"
			}
			fmt.Fprintf(w, "... and %d more sites%s (--all-sites lists every site)\n", v.moreSites, allReady)
		}
	}
	if len(st.HardwareClasses) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "HARDWARE CLASS\tNODES\tCANARY READY\tTOK/S P50/P90\tTTFT P50\tSTABLE READY\tTOK/S P50/P90\tTTFT P50")
		for _, c := range st.HardwareClasses {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", c.Name, c.Nodes, strings.Join(append(classColumns(c.Canary), classColumns(c.Stable)...), "\t"))
		}
		tw.Flush()
	}
	if len(st.ExcludedClasses) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "EXCLUDED CLASS\tSTAYS ON\tREASON\tMESSAGE")
		for _, e := range st.ExcludedClasses {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, orNone(e.Revision), e.Reason, oneLine(e.Message))
		}
		tw.Flush()
	}
	if d := st.Distribution; d != nil && len(d.ExcludedNodes) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "EXCLUDED NODE\tREASON\tMESSAGE")
		for _, e := range d.ExcludedNodes {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Node, e.Reason, oneLine(e.Message))
		}
		tw.Flush()
	}
	if len(st.FailingNodes) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FAILING NODE\tREASON\tSINCE\tMESSAGE")
		for _, f := range st.FailingNodes {
			since := "-"
			if !now.IsZero() && f.Since != nil {
				since = age(now, f.Since.Time)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Node, f.Reason, since, oneLine(f.Message))
		}
		tw.Flush()
	}
}

// classColumns are one revision's columns of the class table: ready of
// nodes, decode tokens/s p50/p90 and time to first token p50 ("-" for a
// figure no pod reported).
func classColumns(f *slmopsv1alpha1.ClassFigures) []string {
	if f == nil {
		return []string{"-", "-", "-"}
	}
	dash := func(v string) string {
		if v == "" {
			return "-"
		}
		return v
	}
	// Tokens/s to a tenth: the status keeps thousandths, which only widen
	// the table.
	tenth := func(v string) string {
		if x, err := strconv.ParseFloat(v, 64); err == nil {
			return strconv.FormatFloat(math.Round(x*10)/10, 'f', -1, 64)
		}
		return v
	}
	tps := "-"
	if f.DecodeTokensPerSecondP50 != "" {
		tps = tenth(f.DecodeTokensPerSecondP50) + "/" + dash(tenth(f.DecodeTokensPerSecondP90))
	}
	ttft := "-"
	if f.TimeToFirstTokenSecondsP50 != "" {
		ttft = f.TimeToFirstTokenSecondsP50 + "s"
	}
	return []string{fmt.Sprintf("%d/%d", f.Ready, f.Nodes), tps, ttft}
}

// conditionFor is the condition whose message explains a phase.
func conditionFor(p slmopsv1alpha1.RolloutPhase) string {
	switch p {
	case slmopsv1alpha1.PhaseCompleted:
		return slmopsv1alpha1.ConditionReady
	case slmopsv1alpha1.PhasePaused:
		return slmopsv1alpha1.ConditionPaused
	case slmopsv1alpha1.PhaseDegraded, slmopsv1alpha1.PhaseRolledBack, slmopsv1alpha1.PhaseAborted:
		return slmopsv1alpha1.ConditionStalled
	default:
		return slmopsv1alpha1.ConditionProgressing
	}
}

func (c *cli) historyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "history NAME",
		Short: "List the revisions the rollout ran, newest last",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := c.get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			now := time.Now()
			tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REVISION\tDIGEST\tPHASE\tSTARTED\tFINISHED")
			for _, h := range r.Status.History {
				started, finished := "-", "-"
				if h.StartedAt != nil {
					started = age(now, h.StartedAt.Time) + " ago"
				}
				if h.FinishedAt != nil {
					finished = age(now, h.FinishedAt.Time) + " ago"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Revision, shortDigest(h.Digest), h.Phase, started, finished)
			}
			return tw.Flush()
		},
	}
}

func age(now, t time.Time) string { return duration.HumanDuration(now.Sub(t)) }

func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	if d == "" {
		return "-"
	}
	return d
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}
