#!/usr/bin/env bash
# skipped.sh LOG: the summary block at the end of `make test`: every test
# that skipped (test/skip.Because writes one line each to LOG), what it did
# not check, and the one command that makes it run; or that none skipped.
set -euo pipefail
log=${1:?usage: skipped.sh LOG}
n=0
[ -s "$log" ] && n=$(sort -u "$log" | wc -l)
echo
if [ "$n" -eq 0 ]; then
	echo "== make test: no test skipped; everything above ran."
	exit 0
fi
echo "== make test: $n tests skipped; what they did not check, and how to run them:"
sort -u "$log" | sed 's/^/  - /'
