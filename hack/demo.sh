#!/usr/bin/env bash
# demo.sh: the whole of slmops on a local control plane with simulated K3s edge
# nodes, a few of which run their serving inferd pods as real processes. It
# brings the cluster up, installs the CRDs, runs the operator and a local model
# store, applies the sample model (pointed at that store) and rollout, shows
# what happens, and tears everything down on exit or Ctrl-C. `make demo` runs
# it; DEMO_NODES and DEMO_SITES size the fleet, DEMO_REAL_NODES (default 4, 0
# for none) says how many of its nodes run real inferd pods.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
nodes=${DEMO_NODES:-200}
sites=${DEMO_SITES:-4}
real_nodes=${DEMO_REAL_NODES:-4}
dir=${CLUSTER_DIR:-$root/.cluster}
bin=$root/bin/k8s
export KUBECONFIG=$dir/kubeconfig
kubectl() { "$bin/kubectl" "$@"; }
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

manager_pid=
model_server_pid=
cleanup() {
	trap - EXIT INT TERM
	say "Tearing down"
	for pid in $manager_pid $model_server_pid; do
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	go run ./hack/cluster down --dir "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$root/bin"
go build -o "$root/bin/manager" ./cmd/manager
go build -o "$root/bin/inferd" ./cmd/inferd
# The kubectl plugin: kubectl finds kubectl-slm on the PATH.
go build -o "$root/bin/kubectl-slm" ./cmd/kubectl-slm
go build -o "$root/bin/model-server" ./hack/model-server
export PATH="$root/bin:$PATH"

say "Starting a local control plane with $nodes simulated K3s edge nodes in $sites sites"
# The serving inferd pods of $real_nodes of them run as local processes of
# bin/inferd, each bounded to its architecture's CPU (an ARM board half a
# core, an x86 mini PC two); every other pod is kwok's.
go run ./hack/cluster up --dir "$dir" --bin "$bin" --nodes "$nodes" --sites "$sites" \
	--real-nodes "$real_nodes" --inferd "$root/bin/inferd" >/dev/null
listing=$(kubectl get nodes -L topology.kubernetes.io/zone,kubernetes.io/arch)
sed -n 1,6p <<<"$listing"
echo "... $(($(wc -l <<<"$listing") - 1)) nodes, $(awk '$2 == "Ready"' <<<"$listing" | wc -l) of them Ready"
echo "per site and architecture:"
kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.labels.topology\.kubernetes\.io/zone} {.metadata.labels.kubernetes\.io/arch}{"\n"}{end}' |
	sort | uniq -c | sed 's/^/  /'
if [ "$real_nodes" -gt 0 ]; then
	echo "the nodes whose serving pods are real inferd processes (process kubelet log: $dir/logs/process-kubelet.log):"
	kubectl get nodes -l slmops.dev/process-node=true -L topology.kubernetes.io/zone,kubernetes.io/arch,slmops.dev/process-cpu |
		sed 's/^/  /'
fi

say "Installing the slmops CRDs, and what lets inferd pods of the default namespace report"
kubectl apply --server-side -f config/crd/bases
kubectl wait --for condition=Established --timeout=60s crd/slmmodels.slmops.dev crd/edgerollouts.slmops.dev
# Each serving inferd writes its self-test report into its own pod, and
# nowhere else: the ClusterRole, the admission policy that narrows it to the
# pod itself, and the namespace's ServiceAccount and RoleBinding (what the
# chart's inferd.report.namespaces installs).
kubectl apply -f config/rbac/inferd_report_role.yaml -f config/policy/inferd_policy.yaml
kubectl apply -f config/samples/inferd_report_access.yaml

say "Running the operator (logs in $dir/logs/manager.log)"
kubectl create namespace slmops-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
"$root/bin/manager" --leader-election-namespace=slmops-system --metrics-bind-address=127.0.0.1:0 \
	--health-probe-bind-address=127.0.0.1:0 --inferd-reports >"$dir/logs/manager.log" 2>&1 &
manager_pid=$!
for _ in $(seq 1 60); do
	holder=$(kubectl -n slmops-system get lease slmops-manager.slmops.dev -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)
	[ -n "$holder" ] && break
	sleep 0.5
done
echo "leader: ${holder:-none yet}"

say "A local model store: two revisions of a random-weight llama model, each in Q4_0 (ARM) and Q8_0 (x86)"
patches=$dir/demo
rm -rf "$patches"
"$root/bin/model-server" -patch-dir "$patches" >"$dir/logs/model-server.log" 2>&1 &
model_server_pid=$!
for _ in $(seq 1 100); do [ -s "$patches/revision-2.yaml" ] && break; sleep 0.2; done
[ -s "$patches/revision-2.yaml" ] || { echo "the model store did not start; see $dir/logs/model-server.log" >&2; exit 1; }
sed 's/^serving /  /' "$dir/logs/model-server.log"

say "Applying the sample model and rollout, the model pointed at the local store"
# An overlay of config/samples: the sample SLMModel's sources, digests and
# self-test replaced by revision 1 of the store. Its URLs are real, so the
# real inferd pods fetch, verify, load and self-test the files.
samples=$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$root/config/samples" "$patches")
printf 'resources:\n- %s\npatches:\n- path: revision-1.yaml\n' "$samples" >"$patches/kustomization.yaml"
kubectl apply -k "$patches"
kubectl get slm -o wide

# watch_rollout prints the rollout's status whenever it changes, until it is
# in one of the phases given.
watch_rollout() {
	local want=$1 last= line phase
	for _ in $(seq 1 1200); do
		line=$(kubectl get er tinyllama-stores --no-headers -o custom-columns="$columns" 2>/dev/null || true)
		if [ "$line" != "$last" ]; then
			printf '%s  %s\n' "$(date +%H:%M:%S)" "$line"
			last=$line
		fi
		phase=$(kubectl get er tinyllama-stores -o jsonpath='{.status.phase}')
		case " $want " in *" $phase "*) return 0 ;; esac
		sleep 0.5
	done
	echo "the rollout did not reach $want in 10 minutes" >&2
	return 1
}

# real_pods shows the serving pods of the real nodes: the report each inferd
# wrote into its own pod (the slmops.dev/self-test annotation) and a chat
# completion from each through its OpenAI-compatible API.
real_pods() {
	[ "$real_nodes" -gt 0 ] || return 0
	say "The real inferd pods: what each measured on its node, and a chat completion from each"
	local node line pod ip port rev
	# The stable revision's pod: a switched node's old pod may still be going.
	rev=$(kubectl get er tinyllama-stores -o jsonpath='{.status.stableRevision}')
	for node in $(kubectl get nodes -l slmops.dev/process-node=true -o jsonpath='{.items[*].metadata.name}'); do
		line=$(kubectl get pods --field-selector spec.nodeName="$node" -l "app.kubernetes.io/component=model-server,slmops.dev/revision=$rev" \
			-o jsonpath='{.items[0].metadata.name} {.items[0].status.podIP} {.items[0].spec.containers[0].ports[0].containerPort}')
		read -r pod ip port <<<"$line"
		echo "$node ($(kubectl get node "$node" -o jsonpath='{.metadata.labels.kubernetes\.io/arch}, CPU {.metadata.labels.slmops\.dev/process-cpu}')): $pod at $ip:$port"
		kubectl get pod "$pod" -o jsonpath='{.metadata.annotations.slmops\.dev/self-test}' | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("  self-test report: %s, %.0f tokens/s decode, %.0f prompt tokens/s, first token in %.1f ms, peak RSS %.0f MiB, loaded in %.1f ms" % (
    r["reason"], r["decodeTokensPerSecond"], r["promptTokensPerSecond"], r["timeToFirstTokenSeconds"] * 1000,
    r["peakRSSBytes"] / 2**20, r["loadSeconds"] * 1000))' 2>/dev/null || echo "  (no self-test report on the pod)"
		curl -s --max-time 30 "http://$ip:$port/v1/chat/completions" -H 'Content-Type: application/json' \
			-d '{"model":"tinyllama-chat","messages":[{"role":"user","content":"hello"}],"max_tokens":8,"temperature":0}' |
			python3 -c 'import json, sys; u = json.load(sys.stdin)["usage"]; print("  chat completion: %d prompt and %d completion tokens (random weights: the text is noise)" % (u["prompt_tokens"], u["completion_tokens"]))' ||
			echo "  (no chat completion)"
	done
}

columns='PHASE:.status.phase,STEP:.status.currentStep,CANARY:.status.canaryNodes,READY:.status.readyNodes,UPDATED:.status.updatedNodes,TARGET:.status.targetNodes,WHAT:.status.conditions[?(@.type=="Reconciling")].message'
say "Rolling out: 5% of the nodes, spread over the sites, a 1-minute pause, then 25%, then all"
echo "          PHASE / STEP / CANARY / READY / UPDATED / TARGET / what happens"
watch_rollout Completed
kubectl get ds -l app.kubernetes.io/managed-by=slmops
real_pods

say "A new model file (revision 2: new digests) starts a canary beside the stable revision"
kubectl patch slm tinyllama-chat --type merge --patch-file "$patches/revision-2.yaml"
watch_rollout Paused
say "Step 1 is healthy and paused: kubectl slm status shows it, with what the real pods measured per hardware class; kubectl slm promote promotes it now"
kubectl slm status tinyllama-stores
kubectl slm promote tinyllama-stores
watch_rollout Completed
kubectl get ds -l app.kubernetes.io/managed-by=slmops
kubectl slm status tinyllama-stores
real_pods
say "History and Events"
kubectl slm history tinyllama-stores
kubectl get events --field-selector involvedObject.kind=EdgeRollout -o custom-columns=REASON:.reason,MESSAGE:.message --sort-by=.metadata.creationTimestamp 2>/dev/null |
	tail -n 12

if [ -t 0 ] && [ -z "${CI:-}" ]; then
	say "The cluster stays up until you press Ctrl-C (KUBECONFIG=$KUBECONFIG)"
	while kill -0 "$manager_pid" 2>/dev/null; do sleep 1; done
	echo "the operator exited; see $dir/logs/manager.log"
fi
