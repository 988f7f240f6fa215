#!/usr/bin/env bash
# failed.sh LOG: the last block of a failing `make test`: every test that
# failed, with the start of what it printed (where the failure is), and every package that failed to
# build or panicked; so that whoever reads only the tail of the output (a CI
# log) still sees what failed and why. LOG is make test's own output (go
# test's and test-arm64.sh's), which make test tees into it.
set -euo pipefail
log=${1:?usage: failed.sh LOG}
[ -s "$log" ] || exit 0
# The e2e package's second process prefixes its lines (hack/go-test.sh).
strip() { sed -E 's/^\[e2e 2\/2\] //' "$log"; }
tests=$(strip | grep -E '^ *--- FAIL: ' | sed -E 's/^ *--- FAIL: ([^ ]+).*/\1/' | sort -u || true)
packages=$(strip | grep -E '^(FAIL|FAIL  )[[:space:]]+[^ ]' | grep -v -E '^FAIL$' | awk '{print $2}' | sort -u || true)
panics=$(strip | grep -c -E '^panic: ' || true)
echo
echo "== make test: FAILED"
if [ -n "$packages" ]; then
	echo "packages that failed:"
	echo "$packages" | sed 's/^/  - /'
fi
if [ -n "$tests" ]; then
	echo "tests that failed:"
	echo "$tests" | sed 's/^/  - /'
	# Each failing test's block: go test prints a failed test's log under
	# its "--- FAIL" line, indented, in the order it was written: what
	# failed first, then what cleanups dumped (logs of the processes it
	# ran). The first 30 lines of each, lines cut at 300 characters.
	for t in $tests; do
		block=$(strip | awk -v t="$t" '
			index($0, "--- FAIL: " t " ") { on = 1; print; next }
			on && /^ *--- (FAIL|PASS|SKIP): / { on = 0 }
			on && /^(FAIL|ok|PASS)([[:space:]]|$)/ { on = 0 }
			on { print }
		')
		n=$(printf '%s\n' "$block" | wc -l)
		echo
		echo "-- $t:"
		printf '%s\n' "$block" | head -30 | cut -c1-300
		if [ "$n" -gt 30 ]; then
			echo "   ... $((n - 30)) more lines of $t in $log"
		fi
	done
fi
if [ "$panics" -gt 0 ]; then
	echo
	echo "-- $panics panic(s); the first, and what followed it:"
	strip | grep -m1 -A30 -E '^panic: '
fi
if [ -z "$tests$packages" ] && [ "$panics" -eq 0 ]; then
	echo "no failing test in the output: the failure was before or around the tests (build, vet, lint, a timeout); see above"
fi
