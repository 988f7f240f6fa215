// Package edgerollout reconciles EdgeRollouts into one DaemonSet per revision
// and a per-rollout cohort label on the target nodes, and promotes the canary
// revision step by step while its inferd pods are Ready, or rolls it back.
//
// The controller follows observe, decide, act: Reconcile reads the rollout,
// its model, the nodes, its DaemonSets and their Pods from the cache, and
// defaults both specs once (observe, with api/v1alpha1's defaulting
// functions); computePlan (plan.go, with distribution.go's decisions) decides,
// purely; Reconcile then writes what the plan says. All state lives in the
// cluster (status, node labels, DaemonSets), so a restarted operator resumes
// where the last one stopped.
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
// controllers/index or api/v1alpha1.
package edgerollout
