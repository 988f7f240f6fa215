#!/usr/bin/env bash
# build-controlplane.sh builds the local control plane from Go modules: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kwok.
#
# Nothing can be downloaded as a prebuilt binary on the machines this project is
# developed and tested on, so the binaries come from hack/controlplane/go.mod. They
# are cached in bin/controlplane/<kubernetes version>-<key>, where the key hashes
# everything that goes into the build, and reused when present. bin/k8s is a symlink
# to the current set; it is also the KUBEBUILDER_ASSETS folder for envtest.
#
# Prints the folder of the binaries on stdout; progress goes to stderr.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=$root/hack/controlplane
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

k8s_version=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$src/go.mod")
minor=$(echo "$k8s_version" | cut -d. -f2)
# Bump layout when this script changes what it puts into the folder.
layout=2
key=$(cat "$src/go.mod" "$src/go.sum" "$src/tools.go" "$src/etcd/main.go" \
	<(go env GOVERSION GOOS GOARCH; echo "$layout") | sha256sum | cut -c1-12)
out=$root/bin/controlplane/$k8s_version-$key

have_all() {
	for b in "${bins[@]}"; do [ -x "$out/$b" ] || return 1; done
	[ -f "$out/kwok-stages-crd.yaml" ]
}

if have_all; then
	echo "control plane $k8s_version: reusing $out" >&2
else
	echo "control plane $k8s_version: building ${bins[*]} into $out" >&2
	echo "  (about 5 minutes on 2 cores with a cold Go build cache, seconds when warm)" >&2
	start=$(date +%s)
	tmp=$out.tmp.$$
	rm -rf "$tmp"
	mkdir -p "$tmp"
	trap 'rm -rf "$tmp"' EXIT
	# kubectl version and the API server's /version need these stamps, or clients
	# fail to parse the server version.
	ldflags="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
		ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
	done
	(
		cd "$src"
		go build -mod=mod -ldflags "$ldflags" -o "$tmp/" \
			k8s.io/kubernetes/cmd/kube-apiserver \
			k8s.io/kubernetes/cmd/kube-controller-manager \
			k8s.io/kubernetes/cmd/kube-scheduler \
			k8s.io/kubernetes/cmd/kubectl \
			sigs.k8s.io/kwok/cmd/kwok \
			./etcd
	)
	# kwok reads its Stages from the API server (so tests can inject faults at run
	# time); its Stage CRD ships in the kwok module.
	kwok_dir=$(cd "$src" && go list -mod=mod -m -f '{{.Dir}}' sigs.k8s.io/kwok)
	cp "$kwok_dir/kustomize/crd/bases/kwok.x-k8s.io_stages.yaml" "$tmp/kwok-stages-crd.yaml"
	chmod 0644 "$tmp/kwok-stages-crd.yaml"
	rm -rf "$out"
	mv "$tmp" "$out"
	trap - EXIT
	echo "control plane $k8s_version: built in $(($(date +%s) - start)) s" >&2
	# Older builds are dead weight (about 450 MB each).
	for old in "$root"/bin/controlplane/*; do
		[ "$old" = "$out" ] || rm -rf "$old"
	done
fi

# Relative, as the other tools' links: bin/ stays valid wherever the clone
# (or a worktree that links its bin/) is.
ln -sfn "controlplane/$(basename "$out")" "$root/bin/k8s"
echo "$out"
