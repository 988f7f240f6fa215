#!/usr/bin/env bash
# build-helm.sh builds the helm command from its Go module (hack/helm) and
# caches it in bin/helm/<version>-<key>, where the key hashes everything that
# goes into the build; a cached binary is reused. bin/helm-current is a
# symlink to the folder in use. Prints the binary's path on stdout; progress
# goes to stderr.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=$root/hack/helm
version=$(awk '$1 == "require" && $2 == "helm.sh/helm/v3" { print $3; exit }' "$src/go.mod")
# Bump layout when this script changes how it builds.
layout=2
key=$(cat "$src/go.mod" "$src/go.sum" "$src/tools.go" <(go env GOVERSION GOOS GOARCH; echo "$layout") | sha256sum | cut -c1-12)
out=$root/bin/helm/$version-$key

if [ -x "$out/helm" ]; then
	echo "helm $version: reusing $out" >&2
else
	echo "helm $version: building into $out (a few minutes with a cold Go build cache)" >&2
	tmp=$out.tmp.$$
	rm -rf "$tmp"
	mkdir -p "$tmp"
	trap 'rm -rf "$tmp"' EXIT
	(
		cd "$src"
		# As helm's Makefile does: the Kubernetes version that `helm
		# template` and `helm lint` assume is the one of its client-go.
		minor=$(go list -mod=mod -m -f '{{.Version}}' k8s.io/client-go | cut -d. -f2)
		ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
		for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
			ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
		done
		go build -mod=mod -ldflags "$ldflags" -o "$tmp/helm" helm.sh/helm/v3/cmd/helm
	)
	rm -rf "$out"
	mv "$tmp" "$out"
	trap - EXIT
fi
ln -sfn "helm/$version-$key" "$root/bin/helm-current"
echo "$out/helm"
