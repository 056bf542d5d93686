// Generates hashes.txt: golden block hashes for kvrouter/test/test_hash.c and
// kvrouter/test/cli_test.sh, computed independently of kvrouter's C code
// with the npm package hash-wasm (XXH3 compiled to WebAssembly). This script
// builds every hashed byte string itself.
//
//   mkdir -p .cache/npm && (cd .cache/npm && npm install hash-wasm)
//   node kvrouter/test/golden/gen.mjs
//
// HASH_WASM_DIR may name another directory whose node_modules holds
// hash-wasm. The algorithm (NVIDIA Dynamo's kv router):
//   seed     = 1337, or 1337 + XXH3_64(lora_name bytes) mod 2^64
//   local[i] = XXH3_64(tokens[iB..iB+B) as LE u32 bytes, seed)
//   seq[0]   = local[0]
//   seq[i]   = XXH3_64(LE64(seq[i-1]) || LE64(local[i]), 1337)
// Only full blocks are hashed.

import { createRequire } from "node:module";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join, dirname } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..", "..");
const modDir = process.env.HASH_WASM_DIR || join(root, ".cache", "npm");
const require = createRequire(join(modDir, "package.json"));
const { xxhash3 } = require("hash-wasm");
const hashWasmVersion = require("hash-wasm/package.json").version;

const MASK64 = (1n << 64n) - 1n;
const BASE_SEED = 1337n;

async function xxh3(bytes, seed) {
    const lo = Number(seed & 0xffffffffn);
    const hi = Number((seed >> 32n) & 0xffffffffn);
    return BigInt("0x" + (await xxhash3(bytes, lo, hi)));
}

async function seedFor(lora) {
    if (lora === null || lora === "") {
        return BASE_SEED;
    }
    const h = await xxh3(new TextEncoder().encode(lora), 0n);
    return (BASE_SEED + h) & MASK64;
}

function tokenBytes(tokens) {
    const b = new Uint8Array(tokens.length * 4);
    const dv = new DataView(b.buffer);
    tokens.forEach((t, i) => dv.setUint32(i * 4, t, true));
    return b;
}

function chainBytes(parent, local) {
    const b = new Uint8Array(16);
    const dv = new DataView(b.buffer);
    dv.setBigUint64(0, parent, true);
    dv.setBigUint64(8, local, true);
    return b;
}

async function hashBlocks(tokens, B, seed) {
    const out = [];
    let prev = 0n;
    for (let i = 0; (i + 1) * B <= tokens.length; i++) {
        const local = await xxh3(tokenBytes(tokens.slice(i * B, (i + 1) * B)), seed);
        const seq = i === 0 ? local : await xxh3(chainBytes(prev, local), BASE_SEED);
        out.push([local, seq]);
        prev = seq;
    }
    return out;
}

// Deterministic token streams (xorshift32), so regeneration is reproducible.
function rng(seed) {
    let x = seed >>> 0 || 1;
    return () => {
        x ^= x << 13; x >>>= 0;
        x ^= x >>> 17;
        x ^= x << 5; x >>>= 0;
        return x;
    };
}

const EDGE = [0, 1, 4294967295, 4294967294, 2147483647, 2147483648,
              65535, 65536, 255, 256, 4294967040, 16777216];

function makeTokens(kind, n, salt) {
    const r = rng(0x9e3779b9 ^ (n * 2654435761) ^ salt);
    const t = [];
    for (let i = 0; i < n; i++) {
        if (kind === "rand32") t.push(r());
        else if (kind === "vocab") t.push(r() % 128256);
        else if (kind === "edge") t.push(EDGE[(i + salt) % EDGE.length]);
        else t.push(4294967295 - (r() % 4));           // "high": near 2^32-1
    }
    return t;
}

const LORAS = [null, "alpha-7b", "sql-lora", "\u03bb-adapter/v2"];
const KINDS = ["vocab", "rand32", "edge", "high"];

const cases = [];

// Published vectors: tokens 1..8, B = 4, no LoRA. Obtained from Dynamo's
// native binding (dynamo._core.compute_block_hash_for_seq) by the self-check
// in components/src/dynamo/vllm/worker_evidence.py of a Dynamo fork
// (github.com/nvyutwu/dynamo); seq[1] is that file's chain() check value.
const DYNAMO_VECTOR = {
    local: [14643705804678351452n, 16777012769546811212n],
    seq1: 4945711292740353085n,
};
cases.push({ name: "dynamo-published", B: 4, lora: null,
             tokens: [1, 2, 3, 4, 5, 6, 7, 8] });
cases.push({ name: "dynamo-published-tail", B: 4, lora: null,
             tokens: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] });

// Block sizes cover every XXH3 input-length path: 4..16, 17..128,
// 129..240 and >240 bytes (B*4), and the 16-byte chain input.
const SIZES = [1, 2, 3, 7, 16, 48, 64, 300];
let salt = 0;
for (const B of SIZES) {
    const lens = [...new Set([0, B - 1, B, B + 1, 2 * B - 1, 2 * B, 5 * B + 3])]
        .filter((n) => n >= 0).sort((a, b) => a - b);
    for (const [ni, n] of lens.entries()) {
        for (const [li, lora] of LORAS.entries()) {
            const kind = KINDS[(ni + li) % KINDS.length];
            cases.push({ name: `b${B}-n${n}-${kind}`, B, lora,
                         tokens: makeTokens(kind, n, salt) });
            salt++;
        }
    }
}
cases.push({ name: "b16-n1000-vocab", B: 16, lora: null,
             tokens: makeTokens("vocab", 1000, 7) });
cases.push({ name: "b1-n300-high", B: 1, lora: "alpha-7b",
             tokens: makeTokens("high", 300, 11) });

const lines = [
    "# kvrouter block-hash golden vectors: generated by gen.mjs with",
    `# hash-wasm ${hashWasmVersion} (independent XXH3); do not edit by hand.`,
    "#   case <name> block_size <B> lora <name|-> seed <u64> ntokens <n> nblocks <k>",
    "#   tokens <t0> ... <t(n-1)>",
    "#   block <i> <local> <seq>        (k lines)",
    "#   end",
];

for (const c of cases) {
    const seed = await seedFor(c.lora);
    const blocks = await hashBlocks(c.tokens, c.B, seed);
    if (c.name === "dynamo-published") {
        if (blocks[0][0] !== DYNAMO_VECTOR.local[0]
            || blocks[1][0] !== DYNAMO_VECTOR.local[1]
            || blocks[0][1] !== DYNAMO_VECTOR.local[0]
            || blocks[1][1] !== DYNAMO_VECTOR.seq1) {
            throw new Error("hash-wasm disagrees with Dynamo's published vector");
        }
    }
    lines.push(`case ${c.name} block_size ${c.B} lora ${c.lora ?? "-"} seed ${seed} `
               + `ntokens ${c.tokens.length} nblocks ${blocks.length}`);
    lines.push(["tokens", ...c.tokens].join(" "));
    blocks.forEach(([l, s], i) => lines.push(`block ${i} ${l} ${s}`));
    lines.push("end");
}

const out = join(here, "hashes.txt");
writeFileSync(out, lines.join("\n") + "\n");
console.log(`wrote ${cases.length} cases to ${out}`);
