// Package edgerollout reconciles EdgeRollouts into one DaemonSet per revision
// and a per-rollout cohort label on the target nodes, and promotes the canary
// revision step by step while its inferd pods are Ready, or rolls it back.
//
// Reconcile (controller.go) reads as get, finalizer, observe, decide,
// record, act, report:
//   - observe.go reads the rollout, its model, the nodes, its DaemonSets and
//     their Pods from the cache, defaults both specs once (api/v1alpha1's
//     defaulting functions) and builds the plan's Input;
//   - the plan package decides, purely (plan.Compute);
//   - record writes the decided status and its Events, first, so that a
//     reconcile on a stale cache fails on a conflict before acting;
//   - apply.go runs the act step as named phases from a list (PinCache,
//     EnsureDaemonSets, ReconcileStagers, ReconcilePeers, PatchLabels,
//     PruneDaemonSets); the first that fails stops the rest, and the outcome
//     is the rollout's Applied condition;
//   - daemonset.go, stagers.go, cache.go and names.go build the objects the
//     phases write: the serving and stager DaemonSets from their own inferd
//     configs (checked with config.Validate first), the peer directory, the
//     cache pins, and their names.
//
// All state lives in the cluster (status, node labels, DaemonSets), so a
// restarted operator resumes where the last one stopped.
//
// What it owns: the status of EdgeRollouts and their finalizer; the
// DaemonSets (serving and stager) and ConfigMaps (peer directory, cache pins)
// it creates, each owned by its rollout; and on Nodes only the labels under
// cohort.slmops.dev/ and stage.slmops.dev/ of its rollouts. The names of all
// of these are api/v1alpha1's (labels.go), and the defaults of the specs too
// (defaults.go): this package declares none of its own.
//
// What it may not touch: the spec or metadata (beyond its finalizer) of
// EdgeRollouts and SLMModels, which Git owns; any other label or field of a
// Node; the status of SLMModels (controllers/slmmodel writes it); and any
// other controller package: what two controllers share lives in
// controllers/index or api/v1alpha1. Decisions belong in the plan package,
// which may not import this one.
package edgerollout
