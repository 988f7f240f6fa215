#!/usr/bin/env bash
# build-flux.sh builds Flux's source-controller and kustomize-controller from
# their Go modules (hack/flux) and caches them in bin/flux/<version>-<key>,
# where the key hashes everything that goes into the build; cached binaries
# are reused. bin/flux-current is a symlink to the folder in use. The GitOps
# e2e (test/e2e/flux_test.go) runs them as processes against the local
# control plane, so that config/gitops/flux's kind of Kustomization is
# reconciled for real from a Git repository, health checks (kstatus) and all.
#
# No prebuilt binary can be downloaded where this project is developed and
# tested, so they come from the module proxy like the control plane and helm.
# helm-controller is not built: the module proxy here does not serve it.
#
# The controllers' CRDs are not copied into the repository: they are read at
# build time from the modules' config/crd/bases in the Go module cache (the
# exact versions pinned in hack/flux/go.mod) and cached beside the binaries,
# in crds/.
#
# Prints the folder of the binaries on stdout; progress goes to stderr.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=$root/hack/flux
bins=(source-controller kustomize-controller)
version=$(awk '$1 == "github.com/fluxcd/source-controller" { print $2; exit }' "$src/go.mod")
# Bump layout when this script changes how it builds.
layout=1
key=$(cat "$src/go.mod" "$src/go.sum" "$src/tools.go" <(go env GOVERSION GOOS GOARCH; echo "$layout") | sha256sum | cut -c1-12)
out=$root/bin/flux/$version-$key

have_all() {
	for b in "${bins[@]}"; do [ -x "$out/$b" ] || return 1; done
	[ -s "$out/crds/kustomize.toolkit.fluxcd.io_kustomizations.yaml" ]
}

if have_all; then
	echo "flux $version: reusing $out" >&2
else
	echo "flux $version: building ${bins[*]} into $out" >&2
	echo "  (about 14 CPU-minutes with a cold Go build cache: 16 minutes on 2 cores shared with other builds; half a minute when warm)" >&2
	tmp=$out.tmp.$$
	rm -rf "$tmp"
	mkdir -p "$tmp/crds"
	trap 'rm -rf "$tmp"' EXIT
	TIMEFORMAT="flux $version: built in %0R s wall, %0U s user + %0S s system CPU"
	time (
		cd "$src"
		# As their Dockerfiles do: no cgo, -trimpath. -s -w as for the
		# other tools here: the tests need no debug symbols.
		CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w" -o "$tmp/" \
			github.com/fluxcd/source-controller \
			github.com/fluxcd/kustomize-controller
		for m in github.com/fluxcd/source-controller github.com/fluxcd/kustomize-controller; do
			dir=$(go list -mod=mod -m -f '{{.Dir}}' "$m")
			cp "$dir"/config/crd/bases/*.yaml "$tmp/crds/"
		done
		chmod 0644 "$tmp"/crds/*.yaml
	)
	rm -rf "$out"
	mv "$tmp" "$out"
	trap - EXIT
fi
ln -sfn "flux/$version-$key" "$root/bin/flux-current"
echo "$out"
