package edgerollout

import (
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
		Help: "Nodes of an EdgeRollout by state. state: target, canary, ready, updated, unavailable, unreachable.",
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
	nodeWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "slmops_node_label_writes_total",
		Help: "Node label patches the operator made to move nodes between revisions.",
	})
)

func init() {
	metrics.Registry.MustRegister(phaseGauge, stepGauge, nodesGauge, promotions, rollbacks, reconcileSeconds, nodeWrites)
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
	for state, v := range map[string]int32{
		"target": st.TargetNodes, "canary": st.CanaryNodes, "ready": st.ReadyNodes,
		"updated": st.UpdatedNodes, "unavailable": st.UnavailableNodes, "unreachable": st.UnreachableNodes,
	} {
		nodesGauge.WithLabelValues(m.Namespace, m.Name, state).Set(float64(v))
	}
}

func countEvent(namespace, name, reason string) {
	switch reason {
	case "StepPromoted":
		promotions.WithLabelValues(namespace, name).Inc()
	case "RolledBack", "Aborted":
		rollbacks.WithLabelValues(namespace, name).Inc()
	}
}

// forgetMetrics drops the series of a deleted rollout, so they do not linger.
func forgetMetrics(namespace, name string) {
	labels := map[string]string{"namespace": namespace, "rollout": name}
	phaseGauge.DeletePartialMatch(labels)
	stepGauge.DeletePartialMatch(labels)
	nodesGauge.DeletePartialMatch(labels)
	promotions.DeletePartialMatch(labels)
	rollbacks.DeletePartialMatch(labels)
}
