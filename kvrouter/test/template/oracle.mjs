// Renders every (template, conversation, add_generation_prompt) case of
// corpus.json with HF's reference JavaScript Jinja (@huggingface/jinja),
// called as HF's JS stack calls it: new Template(src).render({messages,
// add_generation_prompt, tools (when given), bos_token, eos_token (when the
// config sets them), ...other input keys}).
//
//   node oracle.mjs NPM_NODE_MODULES OUT_DIR
//
// Writes OUT_DIR/cases.tsv (one line per case: id, model dir, template file
// or "-", generation flag 0/1, input file, "ok" or "err") and per case
// OUT_DIR/<id>.in.json, and <id>.want (rendered text) or <id>.err (message).
// strftime_now() sees a fixed clock (corpus "now", UTC): run with TZ=UTC.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const [nodeModules, outDir] = process.argv.slice(2);
if (!nodeModules || !outDir) {
    console.error("usage: node oracle.mjs NPM_NODE_MODULES OUT_DIR");
    process.exit(2);
}
const here = path.dirname(new URL(import.meta.url).pathname);
const require = createRequire(path.join(path.resolve(nodeModules), "x.js"));
const { Template } = require("@huggingface/jinja");
const corpus = JSON.parse(fs.readFileSync(path.join(here, "corpus.json"), "utf8"));

// a fixed clock for strftime_now()
const RealDate = Date;
globalThis.Date = class extends RealDate {
    constructor(...a) {
        super(...(a.length ? a : [corpus.now * 1000]));
    }
};

function tokenOf(cfg, key) {
    let t = cfg[key];
    if (t && typeof t === "object") t = t.content;
    return typeof t === "string" ? t : undefined;
}

fs.mkdirSync(outDir, { recursive: true });
const lines = [];
let n = 0;
for (const tpl of corpus.templates) {
    const modelDir = path.join(nodeModules, tpl.model, "models");
    const cfg = JSON.parse(fs.readFileSync(path.join(modelDir, "tokenizer_config.json"), "utf8"));
    const file = tpl.file ? path.join(here, tpl.file) : null;
    const src = file ? fs.readFileSync(file, "utf8") : cfg.chat_template;
    if (typeof src !== "string") throw new Error(`${tpl.name}: no template`);
    let template = null, compileError = null;
    try {
        template = new Template(src);
    } catch (e) {
        compileError = String(e.message || e);
    }
    for (const conv of corpus.conversations) {
        if (conv.only && !conv.only.includes(tpl.name)) continue;
        for (const gen of [true, false]) {
            const id = `${tpl.name}.${conv.name}.${gen ? 1 : 0}`;
            const input = conv.input;
            const items = { messages: input.messages, add_generation_prompt: gen };
            if (input.tools !== undefined) items.tools = input.tools;
            const bos = tokenOf(cfg, "bos_token"), eos = tokenOf(cfg, "eos_token");
            if (bos !== undefined) items.bos_token = bos;
            if (eos !== undefined) items.eos_token = eos;
            for (const [k, v] of Object.entries(input)) {
                if (k !== "messages" && k !== "tools") items[k] = v;
            }
            fs.writeFileSync(path.join(outDir, `${id}.in.json`), JSON.stringify(input));
            let status;
            try {
                if (compileError) throw new Error(compileError);
                const out = template.render(JSON.parse(JSON.stringify(items)));
                fs.writeFileSync(path.join(outDir, `${id}.want`), out);
                status = "ok";
            } catch (e) {
                fs.writeFileSync(path.join(outDir, `${id}.err`), String(e.message || e) + "\n");
                status = "err";
            }
            lines.push([id, modelDir, file || "-", gen ? 1 : 0, `${id}.in.json`, status].join("\t"));
            n++;
        }
    }
}
fs.writeFileSync(path.join(outDir, "cases.tsv"), lines.join("\n") + "\n");
console.error(`oracle: ${n} cases`);
