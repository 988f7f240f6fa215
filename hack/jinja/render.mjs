// render.mjs renders chat templates with @huggingface/jinja, the reference
// renderer of Hugging Face's chat templates, for the engine's comparison
// test (inferd/engine/llama TestJinjaRendersAsHuggingFace).
//
//   node render.mjs NPM_CACHE < cases.json > results.json
//
// NPM_CACHE is the folder hack/fetch-npm.sh prints. cases.json is a list of
// {template, variables}; results.json is a list of {ok, text} or
// {ok: false, error}, in the same order.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const cache = process.argv[2];
if (!cache) {
	console.error("usage: node render.mjs NPM_CACHE < cases.json");
	process.exit(2);
}
const { Template } = await import(
	pathToFileURL(join(cache, "jinja", "node_modules", "@huggingface", "jinja", "dist", "index.js")).href
);
const cases = JSON.parse(readFileSync(0, "utf8"));
const compiled = new Map();
const results = cases.map(({ template, variables }) => {
	try {
		if (!compiled.has(template)) compiled.set(template, new Template(template));
		return { ok: true, text: compiled.get(template).render(variables) };
	} catch (e) {
		return { ok: false, error: String(e && e.message ? e.message : e) };
	}
});
process.stdout.write(JSON.stringify(results));
