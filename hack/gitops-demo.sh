#!/usr/bin/env bash
# gitops-demo.sh: slmops driven from Git by Flux, on a local control plane
# with simulated K3s edge nodes. It brings the cluster up, runs the operator,
# a local model store, a Git server (git's http-backend, hack/git-server) and
# Flux's source-controller and kustomize-controller (make flux) as
# processes, commits the sample model and rollout to the repository, and
# shows what a commit does: Flux applies it, the canary rolls out, and the
# Kustomization (config/gitops/flux/stores.yaml's, with wait: true) is Ready
# only once the rollout is Completed. A second commit with a new model file
# does it again. Everything is torn down on exit or Ctrl-C. `make
# gitops-demo` runs it; DEMO_NODES and DEMO_SITES size the fleet.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
nodes=${DEMO_NODES:-20}
sites=${DEMO_SITES:-4}
dir=${CLUSTER_DIR:-$root/.cluster}
bin=$root/bin/k8s
export KUBECONFIG=$dir/kubeconfig
kubectl() { "$bin/kubectl" "$@"; }
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

pids=()
cleanup() {
	trap - EXIT INT TERM
	say "Tearing down"
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	go run ./hack/cluster down --dir "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

flux=$(hack/build-flux.sh)
mkdir -p "$root/bin"
go build -o "$root/bin/manager" ./cmd/manager
go build -o "$root/bin/model-server" ./hack/model-server
go build -o "$root/bin/git-server" ./hack/git-server

say "Starting a local control plane with $nodes simulated K3s edge nodes in $sites sites"
go run ./hack/cluster up --dir "$dir" --bin "$bin" --nodes "$nodes" --sites "$sites" >/dev/null
kubectl get nodes --no-headers | awk '{ print $2 }' | sort | uniq -c | sed 's/^/  nodes /'

say "Installing the slmops and Flux CRDs (Flux's from the modules hack/build-flux.sh built, in $flux/crds)"
kubectl apply --server-side -f config/crd/bases -f "$flux/crds" >/dev/null
kubectl wait --for condition=Established --timeout=60s crd --all >/dev/null
kubectl get crd -o name | sed 's/^/  /'
for ns in slmops-system flux-system stores; do
	kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
done

say "Running the operator and Flux's source-controller and kustomize-controller (logs in $dir/logs)"
"$root/bin/manager" --leader-election-namespace=slmops-system --metrics-bind-address=127.0.0.1:0 \
	--health-probe-bind-address=127.0.0.1:0 >"$dir/logs/manager.log" 2>&1 &
pids+=($!)
# source-controller serves the artifacts (tarballs of the commits) that
# kustomize-controller downloads, at the address it advertises.
storage=127.0.0.1:$(free_port)
mkdir -p "$dir/flux-storage"
# start_flux runs controller $1 with flags $2..., and waits until it is ready.
start_flux() {
	local name=$1 health
	shift
	health=127.0.0.1:$(free_port)
	RUNTIME_NAMESPACE=flux-system "$flux/$name" --enable-leader-election=false --watch-all-namespaces \
		--metrics-addr=127.0.0.1:0 --health-addr="$health" "$@" >"$dir/logs/$name.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 1 120); do
		curl -sf "http://$health/readyz" >/dev/null && { echo "  $name ready"; return 0; }
		kill -0 "${pids[-1]}" 2>/dev/null || break
		sleep 0.5
	done
	echo "$name did not get ready; the end of $dir/logs/$name.log:" >&2
	tail -n 5 "$dir/logs/$name.log" >&2
	exit 1
}
start_flux source-controller --storage-path="$dir/flux-storage" --storage-addr="$storage" --storage-adv-addr="$storage"
start_flux kustomize-controller

say "A local model store (two revisions of a random-weight llama model) and a Git server"
patches=$dir/gitops-demo
rm -rf "$patches"
mkdir -p "$patches"
"$root/bin/model-server" -patch-dir "$patches" >"$dir/logs/model-server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$patches/revision-2.yaml" ] && break; sleep 0.2; done
[ -s "$patches/revision-2.yaml" ] || { echo "the model store did not start; see $dir/logs/model-server.log" >&2; exit 1; }
sed 's/^serving /  /' "$dir/logs/model-server.log"
repos=$dir/git
rm -rf "$repos"
mkdir -p "$repos"
"$root/bin/git-server" -root "$repos" -url-file "$repos/url" >"$dir/logs/git-server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do [ -s "$repos/url" ] && break; sleep 0.2; done
git_url=$(cat "$repos/url")/fleet.git
echo "  $git_url"

# git runs with no user or system configuration, as the demo's author.
git() {
	GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=slmops-demo GIT_AUTHOR_EMAIL=demo@slmops.invalid \
		GIT_COMMITTER_NAME=slmops-demo GIT_COMMITTER_EMAIL=demo@slmops.invalid command git "$@"
}
git init --quiet --bare --initial-branch=main "$repos/fleet.git"
work=$repos/work
git init --quiet --initial-branch=main "$work"
git -C "$work" remote add origin "$repos/fleet.git"
mkdir -p "$work/stores"
# The fleet's folder: config/samples's model and rollout, the model pointed
# at the local store (the store's merge patch of a revision), and the
# rollout's steps without the sample's 1-minute pause.
cp config/samples/slmops_v1alpha1_slmmodel.yaml "$work/stores/slmmodel.yaml"
cp config/samples/slmops_v1alpha1_edgerollout.yaml "$work/stores/edgerollout.yaml"
cat >"$work/stores/kustomization.yaml" <<'YAML'
resources:
- slmmodel.yaml
- edgerollout.yaml
patches:
- path: model-revision.yaml
- path: demo-steps.yaml
YAML
cat >"$work/stores/demo-steps.yaml" <<'YAML'
apiVersion: slmops.dev/v1alpha1
kind: EdgeRollout
metadata:
  name: tinyllama-stores
spec:
  strategy:
    canary:
      steps:
      - nodes: "5%"
      - nodes: "25%"
      - nodes: "100%"
      minReadySeconds: 1
YAML

# commit commits the fleet folder with the store's revision $1 and pushes it.
commit() {
	cp "$patches/revision-$1.yaml" "$work/stores/model-revision.yaml"
	git -C "$work" add --all
	git -C "$work" commit --quiet -m "$2"
	git -C "$work" push --quiet origin main
	git -C "$work" log --oneline -1 | sed 's/^/  commit /'
}

# watch_kustomization prints the Kustomization's Ready condition and the
# rollout's phase whenever either changes, until the Kustomization is Ready
# at commit $1.
watch_kustomization() {
	local want=$1 last= line ready applied rollout
	for _ in $(seq 1 1200); do
		ready=$(kubectl -n flux-system get kustomization stores-models -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
		applied=$(kubectl -n flux-system get kustomization stores-models -o jsonpath='{.status.lastAppliedRevision}' 2>/dev/null || true)
		applied=${applied##*:}
		rollout=$(kubectl -n stores get er tinyllama-stores --no-headers \
			-o custom-columns='PHASE:.status.phase,STEP:.status.currentStep,READY:.status.readyNodes,TARGET:.status.targetNodes' 2>/dev/null |
			awk '{ printf "%s, step %s, %s of %s nodes ready", $1, $2, $3, $4 }' || true)
		line="Kustomization Ready=${ready:-?} at ${applied:0:7} | rollout ${rollout:-not there yet}"
		if [ "$line" != "$last" ]; then
			printf '%s  %s\n' "$(date +%H:%M:%S)" "$line"
			last=$line
		fi
		if [ "$ready" = True ] && [ "$applied" = "$want" ]; then
			return 0
		fi
		sleep 0.5
	done
	echo "the Kustomization was not Ready at $want in 10 minutes" >&2
	kubectl -n flux-system get kustomization stores-models -o yaml | sed -n '/^status:/,$p' >&2
	return 1
}

# reconcile asks source-controller to fetch the repository now, as `flux
# reconcile source git` does, instead of at its next interval.
reconcile() {
	kubectl -n flux-system annotate --overwrite gitrepository slmops reconcile.fluxcd.io/requestedAt="$(date +%s.%N)" >/dev/null
}

say "Commit 1: the sample model (revision 1 of the store) and rollout"
commit 1 "Roll out tinyllama-chat (store revision 1) to the stores"
say "Pointing Flux at the repository: config/gitops/flux's source.yaml and stores.yaml, for this Git server"
# stores.yaml's Kustomization without dependsOn: the operator runs as a
# process here, not from operator.yaml's HelmRelease (no helm-controller).
kubectl apply -f - <<YAML
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: slmops
  namespace: flux-system
spec:
  interval: 1m
  url: $git_url
  ref:
    branch: main
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: stores-models
  namespace: flux-system
spec:
  interval: 10m
  retryInterval: 10s
  timeout: 10m
  sourceRef:
    kind: GitRepository
    name: slmops
  path: ./stores
  targetNamespace: stores
  prune: true
  wait: true
YAML
say "Flux applies the commit; the Kustomization is Ready once the rollout is Completed"
watch_kustomization "$(git -C "$work" rev-parse HEAD)"
kubectl -n stores get slm,er

say "Commit 2: a new model file (revision 2 of the store: new digests) starts a canary"
commit 2 "tinyllama-chat: store revision 2"
reconcile
watch_kustomization "$(git -C "$work" rev-parse HEAD)"
kubectl -n stores get er tinyllama-stores -o jsonpath='{range .status.history[*]}  {.revision} {.phase} {.digest}{"\n"}{end}'
say "Events of the Kustomization and the rollout"
kubectl get events -A --field-selector involvedObject.kind=Kustomization -o custom-columns=REASON:.reason,MESSAGE:.message \
	--sort-by=.metadata.creationTimestamp 2>/dev/null | cut -c1-160 | tail -n 6
kubectl -n stores get events --field-selector involvedObject.kind=EdgeRollout -o custom-columns=REASON:.reason,MESSAGE:.message \
	--sort-by=.metadata.creationTimestamp 2>/dev/null | cut -c1-160 | tail -n 8

if [ -t 0 ] && [ -z "${CI:-}" ]; then
	say "The cluster stays up until you press Ctrl-C (KUBECONFIG=$KUBECONFIG; commit in $work, then git push)"
	while kill -0 "${pids[0]}" 2>/dev/null; do sleep 1; done
	echo "the operator exited; see $dir/logs/manager.log"
fi
