#!/usr/bin/env bash
# verify-generated.sh fails when a generator would change a generated file:
# deepcopy code, CRDs and RBAC (and their copies in the Helm chart), and the engine's assembly kernels (when
# python3 is there to run their generators). It compares the files before and after `make
# generate manifests`, so it works on a clean clone (CI) and on a work tree with
# uncommitted edits alike; a stale file is left regenerated, ready to commit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

generated() {
	find api -name 'zz_generated.*.go' -print0
	find config/crd/bases config/rbac charts/slmops/files -name '*.yaml' -print0
	find inferd/engine/kernels -name '*.s' -print0
}
snapshot() { generated | sort -z | xargs -0 sha256sum; }

before=$(snapshot)
make --no-print-directory generate manifests >/dev/null
if command -v python3 >/dev/null; then
	make --no-print-directory kernels >/dev/null
else
	echo "verify: python3 not found; the assembly kernels were not regenerated" >&2
fi
after=$(snapshot)
if [ "$before" != "$after" ]; then
	echo "verify: generated files were stale and have been regenerated; review and commit them:" >&2
	diff <(echo "$before") <(echo "$after") | grep '^[<>]' | awk '{print "  " $3}' | sort -u >&2
	exit 1
fi

unformatted=$(gofmt -l $(git ls-files '*.go') $(git ls-files --others --exclude-standard '*.go'))
if [ -n "$unformatted" ]; then
	echo "verify: gofmt would change:" >&2
	echo "$unformatted" | sed 's/^/  /' >&2
	exit 1
fi
echo "verify: generated files are up to date and the code is gofmt-clean"
