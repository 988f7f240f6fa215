#!/usr/bin/env bash
# test-arm64.sh: cross-compiles inferd's package tests for linux/arm64 and
# runs them under qemu-user, so the code paths that K3s ARM nodes run (the
# pure-Go kernels, where amd64 has assembly) are tested on every change.
# The engine's packages run twice: on qemu's default CPU, which has the
# dot-product extension (the NEON kernels), and as a Cortex-A72 (Raspberry
# Pi 4), which lacks it (the pure-Go kernels). Needs qemu-aarch64-static
# (Debian: qemu-user-static), which it installs with apt-get when it is
# missing and apt-get can run (as root); otherwise it says so, writes the
# skip for make test's summary, and runs nothing.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
find_qemu() { command -v qemu-aarch64-static || command -v qemu-aarch64 || true; }
qemu=$(find_qemu)
if [ -z "$qemu" ] && command -v apt-get >/dev/null && [ "$(id -u)" -eq 0 ]; then
	echo "test-arm64: installing qemu-user-static with apt-get" >&2
	apt-get install -y -q qemu-user-static >/dev/null 2>&1 ||
		(apt-get update -q >/dev/null 2>&1 && apt-get install -y -q qemu-user-static >/dev/null 2>&1) ||
		echo "test-arm64: apt-get could not install qemu-user-static" >&2
	qemu=$(find_qemu)
fi
if [ -z "$qemu" ]; then
	echo "test-arm64: qemu-aarch64-static not found (apt-get install qemu-user-static); the arm64 tests did not run" >&2
	if [ -n "${SLMOPS_SKIP_LOG:-}" ]; then
		echo "hack/test-arm64.sh: inferd's tests on linux/arm64 (the pure-Go and NEON kernels of ARM nodes): qemu-aarch64-static is not installed; to run it: sudo apt-get install qemu-user-static" >>"$SLMOPS_SKIP_LOG"
	fi
	exit 0
fi
out=$root/bin/arm64-tests
mkdir -p "$out"
# The parity test runs on the host only: it compares the engine with the
# llama.cpp built for this machine, and under emulation it would take minutes.
packages=$(go list ./inferd/... | grep -v -e /cmd/ -e /bigramtest -e /engine/parity)
failed=0
for pkg in $packages; do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	name=$(echo "${pkg#github.com/slmops/slmops/}" | tr / _)
	if [ -z "$(go list -f '{{.TestGoFiles}}{{.XTestGoFiles}}' "$pkg" | tr -d '[]')" ]; then
		continue
	fi
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go test -c -o "$out/$name.test" "$pkg"
	start=$(date +%s)
	cpus="max"
	case "$pkg" in */engine/kernels | */engine/llama) cpus="max cortex-a72" ;; esac
	for cpu in $cpus; do
		if (cd "$dir" && QEMU_CPU=$cpu "$qemu" "$out/$name.test" -test.count=1 >"$out/$name.$cpu.log" 2>&1); then
			echo "ok    $pkg (arm64 $cpu, $(($(date +%s) - start)) s)"
		else
			echo "FAIL  $pkg (arm64 $cpu): see $out/$name.$cpu.log"
			tail -20 "$out/$name.$cpu.log"
			failed=1
		fi
	done
done
exit $failed
