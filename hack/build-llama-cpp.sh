#!/usr/bin/env bash
# build-llama-cpp.sh builds llama.cpp from the source snapshot beside the clone
# ($SLMOPS_SHARED/llama.cpp, default ../shared/llama.cpp): the llama library,
# llama-bench, llama-quantize and llama-tokenize, plus the project's parity
# program (hack/parity/logits.cpp) linked against that library. llama.cpp is the
# reference the engine is compared with (make parity) and raced against (make
# bench-engine); it is never vendored into the repo.
#
# The build is cached outside the clone, in
# ${XDG_CACHE_HOME:-$HOME/.cache}/slmops/llama.cpp/<key>, where the key hashes the
# archive (its sha256) and this script's layout, so CI runs and later clones on
# the same machine reuse it; a cold build takes about 2 minutes on 2 cores. The
# parity program is rebuilt whenever its source changes.
#
# Installs cmake (and g++) with apt-get when missing and apt-get is available.
# Prints the folder on stdout (its build/bin holds the binaries, and the parity
# program as parity-logits-<first 12 hex digits of the sha256 of logits.cpp>, so
# that clones with different versions of it never race; parity-logits links to
# the newest); progress goes to stderr. Exits 3 when the snapshot is absent and 4
# when the build cannot run (no cmake or no C++ compiler), so callers can skip
# and say what was not checked. With --if-built it builds nothing but the
# parity program, and exits 5 when llama.cpp is not built yet (go test's
# parity test, which runs whenever the build is there).
set -euo pipefail
# The body is one compound command, which bash reads whole before it runs
# it: a build takes minutes, and a checkout that changes this file meanwhile
# must not make bash read the rest of it at the wrong offset.
{
if_built=false
[ "${1:-}" = "--if-built" ] && if_built=true
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${SLMOPS_SHARED:-$root/../shared}
targets=(llama llama-bench llama-quantize llama-tokenize)

shopt -s nullglob
archives=("$shared"/llama.cpp/llama.cpp-*-src.tar.xz)
shopt -u nullglob
if [ "${#archives[@]}" -eq 0 ]; then
	echo "llama.cpp: no snapshot at $shared/llama.cpp/llama.cpp-*-src.tar.xz (set SLMOPS_SHARED to the folder that holds llama.cpp/)" >&2
	exit 3
fi
archive=${archives[-1]}

# Bump layout when this script changes how it builds or what it puts into the folder.
layout=2
key=$( (sha256sum "$archive" | cut -c1-64; echo "$layout") | sha256sum | cut -c1-12)
cache=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/slmops/llama.cpp
out=$cache/$(sha256sum "$archive" | cut -c1-12)-$key

have_all() {
	for t in llama-bench llama-quantize llama-tokenize; do [ -x "$out/build/bin/$t" ] || return 1; done
	[ -f "$out/build/bin/libllama.so" ]
}

need_tools() {
	local missing=()
	for tool in cmake g++; do command -v "$tool" >/dev/null || missing+=("$tool"); done
	if [ "${#missing[@]}" -gt 0 ] && command -v apt-get >/dev/null; then
		echo "llama.cpp: installing ${missing[*]} with apt-get" >&2
		apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 ||
			(apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${missing[@]}" >/dev/null 2>&1) ||
			echo "llama.cpp: apt-get could not install ${missing[*]}" >&2
	fi
	for tool in cmake g++; do
		if ! command -v "$tool" >/dev/null; then
			echo "llama.cpp: $tool is missing (Debian: apt-get install cmake g++), cannot build $archive" >&2
			exit 4
		fi
	done
}

if have_all; then
	echo "llama.cpp: reusing $out" >&2
elif $if_built; then
	echo "llama.cpp: not built at $out" >&2
	exit 5
else
	need_tools
	echo "llama.cpp: building ${targets[*]} from $(basename "$archive") into $out" >&2
	echo "  (about 2 minutes on 2 cores; reused afterwards)" >&2
	start=$(date +%s)
	tmp=$out.tmp.$$
	rm -rf "$tmp"
	mkdir -p "$tmp"
	trap 'rm -rf "$tmp"' EXIT
	tar -xJf "$archive" -C "$tmp"
	# The archive may hold the tree at its top or in one folder.
	src=$tmp
	if [ ! -f "$src/CMakeLists.txt" ]; then
		src=$(dirname "$(find "$tmp" -maxdepth 2 -name CMakeLists.txt | head -n 1)")
	fi
	# The build folder's paths are baked into the binaries' rpath, so the
	# tree is configured at its final place: move it there first.
	rm -rf "$out"
	if [ "$src" = "$tmp" ]; then mv "$tmp" "$out"; else mv "$src" "$out" && rm -rf "$tmp"; fi
	trap 'rm -rf "$out"' EXIT
	jobs=$(nproc 2>/dev/null || echo 2)
	# The build is native (-march=native), and a VM can list AMX among the
	# CPU's flags without letting a process use it: llama-bench then dies of
	# an invalid opcode (tilezero) on its first product. The engine has no
	# AMX kernels either, so llama.cpp is built without them (GCC keeps an
	# explicit -mno-* over what -march=native implies).
	amx=(-DCMAKE_C_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" -DCMAKE_CXX_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16")
	nice -n 10 cmake -S "$out" -B "$out/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
		-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
		-DGGML_CCACHE=OFF "${amx[@]}" >"$out/cmake-configure.log" 2>&1 ||
		{ tail -n 30 "$out/cmake-configure.log" >&2; exit 1; }
	nice -n 10 cmake --build "$out/build" -j"$jobs" --target "${targets[@]}" >"$out/cmake-build.log" 2>&1 ||
		{ tail -n 30 "$out/cmake-build.log" >&2; exit 1; }
	trap - EXIT
	echo "llama.cpp: built in $(($(date +%s) - start)) s" >&2
	# Older builds are dead weight (about 150 MB each).
	for old in "$cache"/*; do
		[ "$old" = "$out" ] || rm -rf "$old"
	done
fi

# The parity program: rebuilt when its source changes (a second, not minutes).
parity_src=$root/hack/parity/logits.cpp
if [ -f "$parity_src" ]; then
	parity_key=$(cat "$parity_src" | sha256sum | cut -c1-12)
	parity_bin=$out/build/bin/parity-logits-$parity_key
	if [ ! -x "$parity_bin" ]; then
		command -v g++ >/dev/null || { echo "llama.cpp: g++ is missing, cannot build $parity_src" >&2; exit 4; }
		echo "llama.cpp: building $parity_src" >&2
		g++ -O2 -std=c++17 -o "$parity_bin.tmp.$$" "$parity_src" \
			-I"$out/include" -I"$out/ggml/include" \
			-L"$out/build/bin" -lllama -lggml -lggml-base -Wl,-rpath,"$out/build/bin"
		mv "$parity_bin.tmp.$$" "$parity_bin"
	fi
	ln -sfn "$(basename "$parity_bin")" "$out/build/bin/parity-logits"
fi
echo "$out"
exit
}
