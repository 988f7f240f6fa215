package edgerollout

import (
	"regexp"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

var phases = []slmopsv1alpha1.RolloutPhase{
	slmopsv1alpha1.PhasePending, slmopsv1alpha1.PhaseProgressing, slmopsv1alpha1.PhasePaused, slmopsv1alpha1.PhaseCompleted,
	slmopsv1alpha1.PhaseDegraded, slmopsv1alpha1.PhaseRolledBack, slmopsv1alpha1.PhaseAborted,
}

var (
	phaseGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "slmops_rollout_phase",
		Help: "1 for the phase an EdgeRollout is in, 0 for the others. phase: Pending, Progressing, Paused, Completed, Degraded, RolledBack, Aborted.",
	}, []string{"namespace", "rollout", "phase"})
	stepGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "slmops_rollout_step",
		Help: "The canary step (1-based) an EdgeRollout is at; 0 when no canary runs.",
	}, []string{"namespace", "rollout"})
	nodesGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "slmops_rollout_nodes",
		Help: "Nodes of an EdgeRollout by state. state: target, canary, ready, updated, unavailable, unreachable; with spec.distribution: staged (hold the model of the revision nodes move to), staging (downloading it), excluded (left out: unfit, or could not stage).",
	}, []string{"namespace", "rollout", "state"})
	promotions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "slmops_rollout_promotions_total",
		Help: "Canary steps promoted, including the completing one.",
	}, []string{"namespace", "rollout"})
	rollbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "slmops_rollout_rollbacks_total",
		Help: "Canaries rolled back automatically or aborted.",
	}, []string{"namespace", "rollout"})
	reconcileSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "slmops_rollout_reconcile_duration_seconds",
		Help:    "Time of one EdgeRollout reconcile: observe, plan and act.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	})
	// stageSeconds splits a reconcile into its stages, to see where the
	// time between two decisions goes (the API writes, mostly).
	stageSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "slmops_rollout_reconcile_stage_duration_seconds",
		Help:    "Time of one stage of an EdgeRollout reconcile. stage: observe, decide, record (the decided status and its Events), each phase of the act step (PinCache, EnsureDaemonSets, ReconcileStagers, ReconcilePeers, PatchLabels, PruneDaemonSets), report (the Applied condition).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"stage"})
	siteNodesGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "slmops_rollout_site_nodes",
		Help: "Target nodes of an EdgeRollout per site (the value of spec.strategy.canary.topologyKey; \"(none)\" without one) by state, as status.sites counts them, for every site. state: target, ready (a Ready inferd pod of the node's revision on a reachable node), canary (in the canary cohort), failing (listed as failing).",
	}, []string{"namespace", "rollout", "site", "state"})
	classNodesGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "slmops_rollout_class_nodes",
		Help: "Target nodes of an EdgeRollout per hardware class (the values of analysis.hardwareClassLabels; at most 16 and \"(other)\") and revision (the canary's and the stable one's), by state. state: nodes (run the revision), ready, failed, reported (their inferd reported a self-test).",
	}, []string{"namespace", "rollout", "revision", "class", "state"})
	classDecodeGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "slmops_rollout_class_decode_tokens_per_second",
		Help: "Decode rate that the self-tests of an EdgeRollout's inferd pods measured, per hardware class and revision. quantile: 0.5, 0.9.",
	}, []string{"namespace", "rollout", "revision", "class", "quantile"})
	classTTFTGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "slmops_rollout_class_time_to_first_token_seconds",
		Help: "Time to the first token that the self-tests of an EdgeRollout's inferd pods measured, per hardware class and revision. quantile: 0.5, 0.9.",
	}, []string{"namespace", "rollout", "revision", "class", "quantile"})
	nodeWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "slmops_node_label_writes_total",
		Help: "Node label patches the operator made to move nodes between revisions.",
	})
)

// collectors are every metric of the rollout controller.
var collectors = []prometheus.Collector{phaseGauge, stepGauge, nodesGauge, siteNodesGauge, classNodesGauge, classDecodeGauge, classTTFTGauge,
	promotions, rollbacks, reconcileSeconds, stageSeconds, nodeWrites}

func init() {
	metrics.Registry.MustRegister(collectors...)
}

func observeRollout(m *metav1.ObjectMeta, st *slmopsv1alpha1.EdgeRolloutStatus) {
	for _, p := range phases {
		v := 0.0
		if st.Phase == p {
			v = 1
		}
		phaseGauge.WithLabelValues(m.Namespace, m.Name, string(p)).Set(v)
	}
	step := 0.0
	if st.CanaryRevision != "" {
		step = float64(st.CurrentStep + 1)
	}
	stepGauge.WithLabelValues(m.Namespace, m.Name).Set(step)
	// The counters exist at 0 from a rollout's first reconcile: increase()
	// (the dashboard's, an alert's) sees no rise in a series that appears
	// at 1, so the first rollback would go unseen.
	promotions.WithLabelValues(m.Namespace, m.Name)
	rollbacks.WithLabelValues(m.Namespace, m.Name)
	var staged, staging, excluded int32
	if d := st.Distribution; d != nil {
		staged, staging, excluded = d.StagedNodes, d.StagingNodes, d.FailedNodes+d.UnfitNodes
	}
	for state, v := range map[string]int32{
		"target": st.TargetNodes, "canary": st.CanaryNodes, "ready": st.ReadyNodes,
		"updated": st.UpdatedNodes, "unavailable": st.UnavailableNodes, "unreachable": st.UnreachableNodes,
		"staged": staged, "staging": staging, "excluded": excluded,
	} {
		nodesGauge.WithLabelValues(m.Namespace, m.Name, state).Set(float64(v))
	}
}

// observeSites sets the per-site node counts of a rollout from the plan's
// count of every site (the status lists at most 100); sites that no longer
// have target nodes go.
func observeSites(m *metav1.ObjectMeta, sites []slmopsv1alpha1.SiteStatus) {
	siteNodesGauge.DeletePartialMatch(prometheus.Labels{"namespace": m.Namespace, "rollout": m.Name})
	for _, s := range sites {
		siteNodesGauge.WithLabelValues(m.Namespace, m.Name, s.Name, "target").Set(float64(s.TargetNodes))
		siteNodesGauge.WithLabelValues(m.Namespace, m.Name, s.Name, "ready").Set(float64(s.ReadyNodes))
		siteNodesGauge.WithLabelValues(m.Namespace, m.Name, s.Name, "canary").Set(float64(s.CanaryNodes))
		siteNodesGauge.WithLabelValues(m.Namespace, m.Name, s.Name, "failing").Set(float64(s.FailingNodes))
	}
}

// observeClasses sets the per-class gauges of a rollout from its status;
// classes and revisions that are gone lose their series.
func observeClasses(m *metav1.ObjectMeta, st *slmopsv1alpha1.EdgeRolloutStatus) {
	labels := prometheus.Labels{"namespace": m.Namespace, "rollout": m.Name}
	classNodesGauge.DeletePartialMatch(labels)
	classDecodeGauge.DeletePartialMatch(labels)
	classTTFTGauge.DeletePartialMatch(labels)
	for _, c := range st.HardwareClasses {
		for _, f := range []*slmopsv1alpha1.ClassFigures{c.Canary, c.Stable} {
			if f == nil {
				continue
			}
			for state, v := range map[string]int32{"nodes": f.Nodes, "ready": f.Ready, "failed": f.Failed, "reported": f.Reports} {
				classNodesGauge.WithLabelValues(m.Namespace, m.Name, f.Revision, c.Name, state).Set(float64(v))
			}
			for q, v := range map[string]string{"0.5": f.DecodeTokensPerSecondP50, "0.9": f.DecodeTokensPerSecondP90} {
				if x, err := strconv.ParseFloat(v, 64); err == nil {
					classDecodeGauge.WithLabelValues(m.Namespace, m.Name, f.Revision, c.Name, q).Set(x)
				}
			}
			for q, v := range map[string]string{"0.5": f.TimeToFirstTokenSecondsP50, "0.9": f.TimeToFirstTokenSecondsP90} {
				if x, err := strconv.ParseFloat(v, 64); err == nil {
					classTTFTGauge.WithLabelValues(m.Namespace, m.Name, f.Revision, c.Name, q).Set(x)
				}
			}
		}
	}
}

func countEvent(namespace, name, reason string) {
	switch reason {
	case slmopsv1alpha1.EventReasonStepPromoted:
		promotions.WithLabelValues(namespace, name).Inc()
	case slmopsv1alpha1.EventReasonRolledBack, slmopsv1alpha1.EventReasonAborted:
		rollbacks.WithLabelValues(namespace, name).Inc()
	}
}

// forgetMetrics drops the series of a deleted rollout, so they do not linger.
func forgetMetrics(namespace, name string) {
	labels := map[string]string{"namespace": namespace, "rollout": name}
	phaseGauge.DeletePartialMatch(labels)
	stepGauge.DeletePartialMatch(labels)
	nodesGauge.DeletePartialMatch(labels)
	siteNodesGauge.DeletePartialMatch(labels)
	classNodesGauge.DeletePartialMatch(labels)
	classDecodeGauge.DeletePartialMatch(labels)
	classTTFTGauge.DeletePartialMatch(labels)
	promotions.DeletePartialMatch(labels)
	rollbacks.DeletePartialMatch(labels)
}

// MetricNames lists the names of the operator's own rollout metrics, so that
// dashboards and alert rules can be checked against what it really serves.
func MetricNames() []string {
	var names []string
	for _, c := range collectors {
		ch := make(chan *prometheus.Desc)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if m := fqName.FindStringSubmatch(d.String()); m != nil {
				names = append(names, m[1])
			}
		}
	}
	return names
}

var fqName = regexp.MustCompile(`fqName: "(slmops_[a-z0-9_]+)"`)

// ReconcileStages are the stage label values of
// slmops_rollout_reconcile_stage_duration_seconds, in the order a reconcile
// runs them: observe, decide, record, the act step's phases, report.
func ReconcileStages() []string {
	stages := []string{"observe", "decide", "record"}
	for _, ph := range (&Reconciler{}).phases() {
		stages = append(stages, ph.name)
	}
	return append(stages, "report")
}

// timeStage observes the time since *began under stage, and moves *began to
// now for the next stage.
func timeStage(stage string, began *time.Time) {
	now := time.Now()
	stageSeconds.WithLabelValues(stage).Observe(now.Sub(*began).Seconds())
	*began = now
}
