#!/usr/bin/env bash
# demo.sh: the whole of slmops on a local control plane with simulated K3s edge
# nodes. It brings the cluster up, installs the CRDs, runs the operator, applies
# the sample model and rollout, shows what happens, and tears everything down on
# exit or Ctrl-C. `make demo` runs it; DEMO_NODES and DEMO_SITES size the fleet.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
nodes=${DEMO_NODES:-200}
sites=${DEMO_SITES:-4}
dir=${CLUSTER_DIR:-$root/.cluster}
bin=$root/bin/k8s
export KUBECONFIG=$dir/kubeconfig
kubectl() { "$bin/kubectl" "$@"; }
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

manager_pid=
inferd_pid=
model_server_pid=
cleanup() {
	trap - EXIT INT TERM
	say "Tearing down"
	for pid in $inferd_pid $model_server_pid; do
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [ -n "$manager_pid" ]; then
		kill -TERM "$manager_pid" 2>/dev/null || true
		wait "$manager_pid" 2>/dev/null || true
	fi
	go run ./hack/cluster down --dir "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "Starting a local control plane with $nodes simulated K3s edge nodes in $sites sites"
go run ./hack/cluster up --dir "$dir" --bin "$bin" --nodes "$nodes" --sites "$sites" >/dev/null
listing=$(kubectl get nodes -L topology.kubernetes.io/zone,kubernetes.io/arch)
sed -n 1,6p <<<"$listing"
echo "... $(($(wc -l <<<"$listing") - 1)) nodes, $(awk '$2 == "Ready"' <<<"$listing" | wc -l) of them Ready"
echo "per site and architecture:"
kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.labels.topology\.kubernetes\.io/zone} {.metadata.labels.kubernetes\.io/arch}{"\n"}{end}' |
	sort | uniq -c | sed 's/^/  /'

say "Installing the slmops CRDs"
kubectl apply --server-side -f config/crd/bases
kubectl wait --for condition=Established --timeout=60s crd/slmmodels.slmops.dev crd/edgerollouts.slmops.dev

say "Running the operator (logs in $dir/logs/manager.log)"
kubectl create namespace slmops-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
mkdir -p "$root/bin"
go build -o "$root/bin/manager" ./cmd/manager
"$root/bin/manager" --leader-election-namespace=slmops-system --metrics-bind-address=127.0.0.1:0 \
	--health-probe-bind-address=127.0.0.1:0 >"$dir/logs/manager.log" 2>&1 &
manager_pid=$!
for _ in $(seq 1 60); do
	holder=$(kubectl -n slmops-system get lease slmops-manager.slmops.dev -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)
	[ -n "$holder" ] && break
	sleep 0.5
done
echo "leader: ${holder:-none yet}"

say "The serving side: inferd on this machine, as on one edge node"
go build -o "$root/bin/inferd" ./cmd/inferd
# The kubectl plugin: kubectl finds kubectl-slm on the PATH.
go build -o "$root/bin/kubectl-slm" ./cmd/kubectl-slm
export PATH="$root/bin:$PATH"
go build -o "$root/bin/model-server" ./hack/model-server
rm -rf "$dir/inferd-cache" "$dir/inferd-config.json"
"$root/bin/model-server" -config "$dir/inferd-config.json" -cache-dir "$dir/inferd-cache" >"$dir/logs/model-server.log" 2>&1 &
model_server_pid=$!
for _ in $(seq 1 50); do [ -s "$dir/inferd-config.json" ] && break; sleep 0.2; done
echo "a generated GGUF model (the bigram test architecture) $(sed -n 's/^serving //p' "$dir/logs/model-server.log")"
INFERD_CONFIG=$(cat "$dir/inferd-config.json") "$root/bin/inferd" --listen 127.0.0.1:0 --termination-log "" \
	>"$dir/logs/inferd.log" 2>&1 &
inferd_pid=$!
inferd_url=
for _ in $(seq 1 100); do
	inferd_url=$(grep -o '"msg":"Serving probes".*"address":"[^"]*"' "$dir/logs/inferd.log" 2>/dev/null | sed 's/.*"address":"\([^"]*\)"/http:\/\/\1/' || true)
	[ -n "$inferd_url" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "$inferd_url/readyz")" = 200 ] && break
	sleep 0.2
done
echo "inferd at $inferd_url: fetched and verified the model, loaded it, passed its self-test:"
curl -s "$inferd_url/status" | python3 -c '
import json, sys
s = json.load(sys.stdin); m = s["model"]; t = s["selfTest"]
print("  phase %s: %s %s, %d bytes, loaded in %.1f ms" % (s["phase"], m["quantization"], m["architecture"], m["sizeBytes"], m["loadSeconds"] * 1000))
print("  self-test: " + t["message"])'
echo "POST /v1/chat/completions {\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}:"
curl -s "$inferd_url/v1/chat/completions" -H 'Content-Type: application/json' \
	-d '{"model":"tinyllama-chat","messages":[{"role":"user","content":"hello"}],"max_tokens":24,"temperature":0}' |
	python3 -c 'import json,sys; r=json.load(sys.stdin); print("  assistant:" + r["choices"][0]["message"]["content"]); print("  usage:", r["usage"])'

say "Applying the sample model and rollout"
kubectl apply -k config/samples
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

columns='PHASE:.status.phase,STEP:.status.currentStep,CANARY:.status.canaryNodes,READY:.status.readyNodes,UPDATED:.status.updatedNodes,TARGET:.status.targetNodes,WHAT:.status.conditions[?(@.type=="Reconciling")].message'
say "Rolling out: 5% of the nodes, spread over the sites, a 1-minute pause, then 25%, then all"
echo "          PHASE / STEP / CANARY / READY / UPDATED / TARGET / what happens"
watch_rollout Completed
kubectl get ds -l app.kubernetes.io/managed-by=slmops

say "A new model file (a new digest) starts a canary beside the stable revision"
kubectl patch slm tinyllama-chat --type merge -p \
	'{"spec":{"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222"}}'
watch_rollout Paused
say "Step 1 is healthy and paused: kubectl slm status shows it, kubectl slm promote promotes it now"
kubectl slm status tinyllama-stores
kubectl slm promote tinyllama-stores
watch_rollout Completed
kubectl get ds -l app.kubernetes.io/managed-by=slmops
say "History and Events"
kubectl slm history tinyllama-stores
kubectl get events --field-selector involvedObject.kind=EdgeRollout -o custom-columns=REASON:.reason,MESSAGE:.message --sort-by=.metadata.creationTimestamp 2>/dev/null |
	tail -n 12

if [ -t 0 ] && [ -z "${CI:-}" ]; then
	say "The cluster stays up until you press Ctrl-C (KUBECONFIG=$KUBECONFIG)"
	while kill -0 "$manager_pid" 2>/dev/null; do sleep 1; done
	echo "the operator exited; see $dir/logs/manager.log"
fi
