#!/usr/bin/env bash
# go-test.sh [go test flags]: make test's `go test ./...`, with the e2e
# package (the longest by far: its tests run one after the other on one
# cluster) split in two go test processes that run at the same time, each
# with a cluster of its own. Most of an e2e test is waiting (for kwok's
# heartbeats, minReadySeconds, a Lease, Prometheus's rule intervals), so the
# two halves overlap well even on 2 cores.
#
# The second process runs the tests named in E2E_SECOND (below); the first
# runs every package with those tests skipped, so that a new e2e test runs
# in the first unless it is added here. A name here that the package does
# not have fails the run: a renamed test is never dropped silently.
# The second process's lines are prefixed "[e2e 2/2]".
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# Flux's and Prometheus's tests (about 320 of the package's 760 s, measured
# with go test -v on 2 cores): mostly waiting on their controllers' and
# rules' intervals, and light on CPU, so they overlap the first process's
# tests with real inferd pods (whose CPU bounds the feedback tests compare)
# without starving them.
E2E_SECOND=(
	TestFluxGitOps
	TestPrometheusAlerts
)

e2e=./test/e2e
# The package's tests, from its source (go test -list would start its
# cluster, in TestMain).
have=$(sed -n 's/^func \(Test[A-Za-z0-9_]*\)(t \*testing\.T) {$/\1/p' "$e2e"/*_test.go)
for name in "${E2E_SECOND[@]}"; do
	if ! grep -qx "$name" <<<"$have"; then
		echo "hack/go-test.sh: $e2e has no test $name (E2E_SECOND names it); fix the list" >&2
		exit 2
	fi
done
second=$(
	IFS='|'
	echo "^(${E2E_SECOND[*]})\$"
)

rc1=0 rc2=0
(
	set -o pipefail
	go test "$@" "$e2e" -run "$second" 2>&1 | sed -u 's/^/[e2e 2\/2] /'
) &
pid=$!
go test "$@" -skip "$second" ./... || rc1=$?
wait "$pid" || rc2=$?
if [ "$rc1" -ne 0 ] || [ "$rc2" -ne 0 ]; then
	echo "hack/go-test.sh: go test failed (all packages but the second half of e2e: exit $rc1; the second half of e2e: exit $rc2)" >&2
	exit 1
fi
