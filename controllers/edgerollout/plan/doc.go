// Package plan decides what an EdgeRollout controller should do, as a pure
// function of what it observed: Compute takes an Input (the defaulted spec,
// the status, the revision, the model's artifacts and the state of every
// node the rollout targets) and returns a Plan (the next status, the node
// label changes, the DaemonSets to keep, the stagers, the Events and when to
// look again).
//
// What it owns: every decision of a rollout. The phase and its conditions
// (status.go), the canary's cohort and steps (cohort.go), the judgement of a
// step and the chain of checks that fails, holds, pauses or promotes it
// (progress.go), the staging and exclusion of nodes (staging.go, fit.go),
// the model's artifacts per hardware variant (artifacts.go), the cache pins
// (pins.go), and how a pod's state reads (pod.go).
//
// What it may not touch: the API server, the clock and the controller
// runtime. It imports no client, no controller-runtime and no client-go
// (TestThePlanIsPure checks the import graph), and reads the time only from
// Input.Now, so that every decision is a table test away. The names it uses
// are api/v1alpha1's, and the operator-to-inferd contract (termination
// reasons) is inferd/config's.
package plan
