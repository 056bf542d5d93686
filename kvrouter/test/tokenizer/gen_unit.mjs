// Computes, with HF tokenizers, the expected values of the component cases
// in kvrouter/test/tokenizer/components.inc (tiny hand-made
// tokenizer.json documents). Writes that file; run from the repository root:
//   node kvrouter/test/tokenizer/gen_unit.mjs "$(sh scripts/fetch-testdata.sh)"
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const cache = process.argv[2];
const require = createRequire(path.resolve(cache, "package.json"));
const { Tokenizer } = require("@anush008/tokenizers");

// vocab: one token per char of the alphabet, ids in order; then extras
const alpha = [..." ▁abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-<>\t\néÉ\u0301"];
function vocab(extra = []) {
  const v = {};
  alpha.forEach((c, i) => { v[c] = i; });
  let n = alpha.length;
  for (const e of extra) v[e] = n++;
  v["<unk>"] = n++;
  return v;
}
function bpe(extraTokens, merges, opts = {}) {
  return { type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null,
           end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false,
           vocab: vocab(extraTokens), merges, ...opts };
}
function tok({ normalizer = null, pre_tokenizer = null, post_processor = null, decoder = null,
               added_tokens = [], model = bpe([], []) }) {
  return { version: "1.0", truncation: null, padding: null, added_tokens, normalizer,
           pre_tokenizer, post_processor, decoder, model };
}
const addedTok = (id, content, o = {}) => ({ id, content, single_word: false, lstrip: false,
  rstrip: false, normalized: false, special: false, ...o });
const V = alpha.length;   // first extra id

// byte-level: all 256 byte chars
function byteVocab() {
  const bs = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n++); }
  const v = {};
  bs.forEach((b, i) => { v[String.fromCodePoint(cs[i])] = b; });
  return v;
}
const split = (pattern, behavior, invert = false) => ({ type: "Split", pattern, behavior, invert });

const enc = [
  ["lowercase", { normalizer: { type: "Lowercase" } }, "HeLLo ÉCOLE"],
  ["strip", { normalizer: { type: "Strip", strip_left: true, strip_right: true } }, " \t hi there \n"],
  ["strip-left", { normalizer: { type: "Strip", strip_left: true, strip_right: false } }, "  hi  "],
  ["nfkc", { normalizer: { type: "NFKC" } }, "ﬁ Ａ é"],
  ["nfc", { normalizer: { type: "NFC" } }, "e\u0301 E\u0301"],
  ["nfd", { normalizer: { type: "NFD" } }, "é"],
  ["replace-regex", { normalizer: { type: "Replace", pattern: { Regex: "\\s+" }, content: "-" } }, "a  \t b\n\nc"],
  ["prepend-replace", { normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "▁" },
      { type: "Replace", pattern: { String: " " }, content: "▁" }] } }, "hi there"],
  ["split-isolated", { pre_tokenizer: split({ Regex: "\\d" }, "Isolated") }, "a1b22"],
  ["split-prev", { pre_tokenizer: split({ String: "-" }, "MergedWithPrevious") }, "a-b--c-"],
  ["split-next", { pre_tokenizer: split({ String: "-" }, "MergedWithNext") }, "-a-b--c"],
  ["split-contiguous", { pre_tokenizer: split({ String: "-" }, "Contiguous") }, "a-b--c-"],
  ["split-removed", { pre_tokenizer: split({ String: "-" }, "Removed") }, "a-b--c-"],
  ["split-removed-invert", { pre_tokenizer: split({ Regex: "[a-z]+" }, "Removed", true) }, "ab, cd!"],
  ["digits", { pre_tokenizer: { type: "Digits", individual_digits: false } }, "a123b4"],
  ["digits-individual", { pre_tokenizer: { type: "Digits", individual_digits: true } }, "a123b4"],
  ["punctuation", { pre_tokenizer: { type: "Punctuation", behavior: "Isolated" } }, "hi!? there."],
  ["whitespace", { pre_tokenizer: { type: "Whitespace" } }, "hi there!! x"],
  ["whitespace-split", { pre_tokenizer: { type: "WhitespaceSplit" } }, " a  b "],
  ["metaspace-always", { pre_tokenizer: { type: "Metaspace", replacement: "▁", prepend_scheme: "always", split: true } }, "hi there"],
  ["metaspace-never", { pre_tokenizer: { type: "Metaspace", replacement: "▁", prepend_scheme: "never", split: false } }, "hi there"],
  ["metaspace-first", { pre_tokenizer: { type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: true },
      added_tokens: [addedTok(V + 0, "<x>")], model: bpe(["<x>"], []) }, "hi<x>there <x> x"],
  ["metaspace-first-strip", { normalizer: { type: "Strip", strip_left: true, strip_right: false },
      pre_tokenizer: { type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: true } }, "  hi there"],
  ["metaspace-first-space", { pre_tokenizer: { type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: true } },
      " hi"],
  // ids of added tokens missing from the vocab: HF numbers them itself
  ["added-id-reassigned", { added_tokens: [addedTok(999, "<y>", { special: true }), addedTok(5, "<z>")] },
      "a<y>b<z>"],
  ["bpe-merges", { model: bpe(["ab", "abc", "bc"], ["a b", "ab c", "b c"]) }, "abcabc bcab"],
  ["bpe-unk-fuse", { model: bpe(["ab"], ["a b"], { fuse_unk: true }) }, "ab\u4e00\u4e01ab\u4e02"],
  ["bpe-unk-nofuse", { model: bpe(["ab"], ["a b"], { fuse_unk: false }) }, "ab\u4e00\u4e01ab"],
  ["bpe-ignore-merges", { model: bpe(["ab", "abc", "bc", "bca"], ["b c", "a b", "ab c"], { ignore_merges: true }),
      pre_tokenizer: { type: "WhitespaceSplit" } }, "abc bca"],
  ["added-lstrip-rstrip", { added_tokens: [addedTok(V + 0, "<x>", { lstrip: true, rstrip: true })],
      model: bpe(["<x>"], []) }, "a  <x>  b"],
  ["added-single-word", { added_tokens: [addedTok(V + 0, "ab", { single_word: true })],
      model: bpe(["ab"], []) }, "ab abc cab ab."],
  ["added-normalized", { normalizer: { type: "Lowercase" },
      added_tokens: [addedTok(V + 0, "<x>", { normalized: true }), addedTok(V + 1, "<Y>", { normalized: false })],
      model: bpe(["<x>", "<Y>"], []) }, "a<X>b<Y>c<y>"],
  ["added-longest", { added_tokens: [addedTok(V + 0, "<a>"), addedTok(V + 1, "<a><b>")],
      model: bpe(["<a>", "<a><b>"], []) }, "<a><b><a>"],
  ["template", { post_processor: { type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
               { SpecialToken: { id: "</s>", type_id: 0 } }],
      pair: [], special_tokens: { "<s>": { id: "<s>", ids: [V + 0], tokens: ["<s>"] },
                                  "</s>": { id: "</s>", ids: [V + 1], tokens: ["</s>"] } } },
      added_tokens: [addedTok(V + 0, "<s>", { special: true }), addedTok(V + 1, "</s>", { special: true })],
      model: bpe(["<s>", "</s>"], []) }, "ab"],
  ["bytelevel", { pre_tokenizer: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: { ...bpe([], []), unk_token: null, vocab: byteVocab() } }, "Hi  there é"],
  ["bytefallback", { model: bpe([...Array(256).keys()].map((b) => "<0x" + b.toString(16).toUpperCase().padStart(2, "0") + ">"),
      [], { byte_fallback: true }) }, "a\u4e00b"],
];

const dec = [
  ["dec-metaspace", { decoder: { type: "Metaspace", replacement: "▁", prepend_scheme: "always", split: true } }, "▁hi▁▁there", [1, 10, 11, 1]],
  ["dec-strip-replace", { decoder: { type: "Sequence", decoders: [
      { type: "Replace", pattern: { String: "▁" }, content: " " }, { type: "Fuse" },
      { type: "Strip", content: " ", start: 1, stop: 1 }] } }, "", [1, 1, 10, 11, 1, 1]],
  ["dec-bytefallback", { decoder: { type: "Sequence", decoders: [{ type: "ByteFallback" }, { type: "Fuse" }] },
      model: bpe([...Array(256).keys()].map((b) => "<0x" + b.toString(16).toUpperCase().padStart(2, "0") + ">"), [],
                 { byte_fallback: true }) }, "", [V + 0xE4, V + 0xB8, V + 0x80, 2, V + 0xE4, V + 0xB8, 3, V + 0xFF]],
  ["dec-none", {}, "", [2, 3, 0, 4]],
];

const cstr = (s) => '"' + [...Buffer.from(s, "utf8")].map((b) =>
  b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c && b !== 0x3f ? String.fromCharCode(b)
    : "\\" + b.toString(8).padStart(3, "0")).join("") + '"';

let out = "/* Generated by kvrouter/test/tokenizer/gen_unit.mjs: expected values from HF tokenizers. */\n";
out += "static const enc_case_t enc_cases[] = {\n";
for (const [name, spec, text] of enc) {
  const j = JSON.stringify(tok(spec));
  const t = Tokenizer.fromString(j);
  for (const special of [true, false]) {
    const ids = (await t.encode(text, null, { addSpecialTokens: special })).getIds();
    out += `    { ${cstr(name)}, ${special ? 1 : 0},\n      ${cstr(j)},\n      ${cstr(text)}, ${Buffer.byteLength(text)},\n      "${ids.join(" ")}" },\n`;
  }
}
out += "};\n\nstatic const dec_case_t dec_cases[] = {\n";
for (const [name, spec, , ids] of dec) {
  const j = JSON.stringify(tok(spec));
  const t = Tokenizer.fromString(j);
  const text = await t.decode(ids, false);
  out += `    { ${cstr(name)},\n      ${cstr(j)},\n      "${ids.join(" ")}", ${cstr(text)} },\n`;
}
out += "};\n";
fs.writeFileSync("kvrouter/test/tokenizer/components.inc", out);
console.log("wrote kvrouter/test/tokenizer/components.inc");
