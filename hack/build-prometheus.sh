#!/usr/bin/env bash
# build-prometheus.sh builds Prometheus's server (prometheus) and promtool from
# their Go module (hack/prometheus) and caches them in
# bin/prometheus/<version>-<key>, where the key hashes everything that goes into
# the build; cached binaries are reused. bin/prometheus-current is a symlink to
# the folder in use. promtool checks and unit-tests the chart's alert rules
# (`promtool check rules`, `promtool test rules`) and the dashboard's queries;
# the server evaluates them against the real processes in the e2e.
#
# No prebuilt binary can be downloaded where this project is developed and
# tested, so they come from the module proxy like the control plane and helm.
# The web UI is left out (its assets need an npm build, the builtinassets tag);
# the HTTP API, which the tests use, is all there.
#
# Prints the folder of the binaries on stdout; progress goes to stderr.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=$root/hack/prometheus
bins=(prometheus promtool)
version=$(awk '$1 == "require" && $2 == "github.com/prometheus/prometheus" { print $3; exit }' "$src/go.mod")
# Bump layout when this script changes how it builds.
layout=1
key=$(cat "$src/go.mod" "$src/go.sum" "$src/tools.go" <(go env GOVERSION GOOS GOARCH; echo "$layout") | sha256sum | cut -c1-12)
out=$root/bin/prometheus/$version-$key

have_all() {
	for b in "${bins[@]}"; do [ -x "$out/$b" ] || return 1; done
}

if have_all; then
	echo "prometheus $version: reusing $out" >&2
else
	echo "prometheus $version: building ${bins[*]} into $out" >&2
	echo "  (about 17 CPU-minutes with a cold Go build cache: 10 minutes on 2 idle cores; half a minute when warm)" >&2
	start=$(date +%s)
	tmp=$out.tmp.$$
	rm -rf "$tmp"
	mkdir -p "$tmp"
	trap 'rm -rf "$tmp"' EXIT
	# As Prometheus's .promu.yml does: netgo, and the version stamps that
	# `promtool --version` and the server's build_info report.
	ldflags="-s -w"
	ldflags+=" -X github.com/prometheus/common/version.Version=${version#v}"
	ldflags+=" -X github.com/prometheus/common/version.Revision=$version"
	ldflags+=" -X github.com/prometheus/common/version.Branch=HEAD"
	ldflags+=" -X github.com/prometheus/common/version.BuildUser=slmops"
	ldflags+=" -X github.com/prometheus/common/version.BuildDate=19700101-00:00:00"
	(
		cd "$src"
		go build -mod=mod -tags netgo -ldflags "$ldflags" -o "$tmp/" \
			github.com/prometheus/prometheus/cmd/prometheus \
			github.com/prometheus/prometheus/cmd/promtool
	)
	rm -rf "$out"
	mv "$tmp" "$out"
	trap - EXIT
	echo "prometheus $version: built in $(($(date +%s) - start)) s" >&2
fi
ln -sfn "prometheus/$version-$key" "$root/bin/prometheus-current"
echo "$out"
