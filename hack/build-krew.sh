#!/usr/bin/env bash
# build-krew.sh builds krew, the kubectl plugin manager, from its Go module
# (hack/krew) and caches it in bin/krew/<version>-<key>, where the key hashes
# everything that goes into the build; a cached binary is reused.
# bin/krew-current is a symlink to the folder in use. The release test
# installs kubectl-slm with it from the krew manifest and archive that make
# release writes (krew install --manifest --archive needs no index and no
# network). Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=$root/hack/krew
version=$(awk '$1 == "require" && $2 == "sigs.k8s.io/krew" { print $3; exit }' "$src/go.mod")
# Bump layout when this script changes how it builds.
layout=1
key=$(cat "$src/go.mod" "$src/go.sum" "$src/tools.go" <(go env GOVERSION GOOS GOARCH; echo "$layout") | sha256sum | cut -c1-12)
out=$root/bin/krew/$version-$key

if [ -x "$out/krew" ]; then
	echo "krew $version: reusing $out" >&2
else
	echo "krew $version: building into $out (about a minute with a cold Go build cache)" >&2
	tmp=$out.tmp.$$
	rm -rf "$tmp"
	mkdir -p "$tmp"
	trap 'rm -rf "$tmp"' EXIT
	(
		cd "$src"
		# As krew's hack/make-binaries.sh does: the version that krew
		# version reports.
		go build -mod=mod -ldflags "-s -w -X sigs.k8s.io/krew/internal/version.gitTag=$version" \
			-o "$tmp/krew" sigs.k8s.io/krew/cmd/krew
	)
	rm -rf "$out"
	mv "$tmp" "$out"
	trap - EXIT
fi
ln -sfn "krew/$version-$key" "$root/bin/krew-current"
echo "$out/krew"
