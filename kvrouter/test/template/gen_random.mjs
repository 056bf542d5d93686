// Writes templates/random.jinja: statements generated at random from a
// grammar of the supported subset (typed, so most of them are valid),
// kept only where the reference (@huggingface/jinja) renders them without
// error. Deterministic for a seed.
//
//   node gen_random.mjs NPM_NODE_MODULES [SEED] [COUNT] > templates/random.jinja
import path from "node:path";
import { createRequire } from "node:module";

const [nodeModules, seedArg, countArg] = process.argv.slice(2);
if (!nodeModules) {
    console.error("usage: node gen_random.mjs NPM_NODE_MODULES [SEED] [COUNT]");
    process.exit(2);
}
const require = createRequire(path.join(path.resolve(nodeModules), "x.js"));
const { Template } = require("@huggingface/jinja");

let state = Number(seedArg || 1) >>> 0;
function rnd() {                       // mulberry32
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];
const upto = (a, b) => a + Math.floor(rnd() * (b - a + 1));

const S = ["'a'", "'abc'", "''", "' x y '", "'A b_c-d'", "'1'", "'2.5'", "'é'", "'日本'",
    "'a,b,,c'", "'\\n x\\n'", "s", "msgs[0].content", "msgs[1]['role']", "'Straße'", "'ΣΑΣ'",
    "' \\t'", "'𝕏y'"];
const NUM = ["0", "1", "-1", "2", "3", "0.5", "1.0", "2.5", "10", "n", "f", "-0.0", "100000", "0.1"];
const L = ["[]", "[1, 2, 3]", "['b', 'a', 'C']", "[1, 'a', none]", "lst", "msgs", "objs",
    "[[1, 2], [3]]", "range(4)", "[true, false]"];
const O = ["{}", "{'a': 1, 'b': [2]}", "{'k': 'v'}", "d", "msgs[0]", "objs[0]", "tools_[0]"];
const any = () => pick([s, n, l, o]);

function s(d = 0) {
    if (d > 2 || rnd() < 0.35) return pick(S);
    return pick([
        () => s(d + 1) + " ~ " + any()(d + 1),
        () => s(d + 1) + " + " + s(d + 1),
        () => "(" + s(d + 1) + ")" + pick([".upper()", ".lower()", ".strip()", ".lstrip()",
            ".rstrip()", ".title()", ".capitalize()", ".replace('a', 'Z')",
            ".replace('', '-', 2)", "[1:]", "[::-1]", "[-1]", "[:3]"]),
        () => "(" + s(d + 1) + ") | " + pick(["trim", "upper", "lower", "title", "capitalize",
            "indent", "indent(2, true)", "replace('b', 'Q')", "string", "safe",
            "default('D', true)", "join('-')"]),
        () => "(" + any()(d + 1) + ") | " + pick(["tojson", "tojson(indent=2)",
            "tojson(ensure_ascii=true)", "string"]),
        () => "(" + l(d + 1) + ") | join(" + pick(["", "','", "' | '"]) + ")",
        () => s(d + 1) + " if " + b(d + 1) + " else " + s(d + 1),
        () => "(" + s(d + 1) + ").split(" + pick(["", "','", "' '", "',', 1", "none, 1"]) + ")[0]",
    ])();
}
function n(d = 0) {
    if (d > 2 || rnd() < 0.4) return pick(NUM);
    return pick([
        () => n(d + 1) + " " + pick(["+", "-", "*", "/", "//", "%"]) + " " + n(d + 1),
        () => n(d + 1) + " ** " + pick(["2", "0.5", "-1", "3"]),
        () => "(" + pick([s, l, o])(d + 1) + ") | length",
        () => "(" + s(d + 1) + ") | " + pick(["int", "float", "int(7)", "float(1.5)"]),
        () => "(" + n(d + 1) + ") | " + pick(["abs", "int", "float"]),
        () => "-(" + n(d + 1) + ")",
        () => "(" + s(d + 1) + ").length",
    ])();
}
function b(d = 0) {
    if (d > 2 || rnd() < 0.2) return pick(["true", "false", "none", "undef"]);
    return pick([
        () => n(d + 1) + " " + pick(["<", ">", "<=", ">=", "==", "!="]) + " " + n(d + 1),
        () => any()(d + 1) + " " + pick(["==", "!="]) + " " + any()(d + 1),
        () => s(d + 1) + pick([" in ", " not in "]) + pick([s, l, o])(d + 1),
        () => n(d + 1) + pick([" in ", " not in "]) + l(d + 1),
        () => "(" + pick([s, n, l, o, b])(d + 1) + ") is " + pick(["", "not "]) + pick(["defined",
            "undefined", "none", "string", "number", "integer", "boolean", "mapping", "iterable",
            "sequence", "callable", "true", "false", "lower", "upper"]),
        () => "(" + pick(["n", "3", "-2", "0"]) + ") is " + pick(["odd", "even"]),
        () => b(d + 1) + pick([" and ", " or "]) + b(d + 1),
        () => "not " + b(d + 1),
        () => "(" + s(d + 1) + ").startswith(" + s(d + 1) + ")",
    ])();
}
function l(d = 0) {
    if (d > 2 || rnd() < 0.35) return pick(L);
    return pick([
        () => "(" + l(d + 1) + ") | " + pick(["reverse", "sort", "unique", "list",
            "sort(reverse=true)", "map(attribute='k', default=0)", "selectattr('k')",
            "rejectattr('role')", "selectattr('role', 'equalto', 'user')", "sort(attribute='k')",
            "sort(case_sensitive=true)"]),
        () => l(d + 1) + " + " + l(d + 1),
        () => "(" + l(d + 1) + ")[" + pick(["1:", ":2", "::-1", "::2", "-2:", "1:-1"]) + "]",
        () => "[" + Array.from({ length: upto(0, 3) }, () => pick([s, n, b, l, o])(d + 1)).join(", ") + "]",
        () => "(" + o(d + 1) + ")" + pick([".items()", ".keys()", ".values()", " | items",
            " | dictsort", " | dictsort(by='value')"]) + " | list",
        () => "(" + s(d + 1) + ").split(" + pick(["", "','", "'a'"]) + ")",
    ])();
}
function o(d = 0) {
    if (d > 2 || rnd() < 0.5) return pick(O);
    return "{" + Array.from({ length: upto(0, 3) }, () =>
        pick(["'k'", "'a'", "'z'", "'1'", "'0'"]) + ": " + pick([s, n, b, l])(d + 1)).join(", ") + "}";
}
function stmt(d = 0) {
    const r = rnd();
    if (d > 2 || r < 0.5) return "{{ " + pick([s, n, b, l, o])() + " }}";
    if (r < 0.62) return "{% if " + b() + " %}" + stmt(d + 1) + "{% elif " + b() + " %}E{% else %}"
        + stmt(d + 1) + "{% endif %}";
    if (r < 0.75) return "{% for x in " + pick([l, o])() + " %}[{{ x }},{{ loop.index0 }},"
        + "{{ loop.revindex }}" + stmt(d + 1) + "{% if loop.last %}L{% endif %}]{% else %}E{% endfor %}";
    if (r < 0.82) return "{% for x in " + l() + " if x %}{{ x }}{{ loop.length }}{% endfor %}";
    if (r < 0.9) return "{% set ns = namespace(a=" + pick([s, n, l])() + ") %}{% for i in range(2) %}"
        + "{% set ns.a = ns.a ~ i %}{% endfor %}{{ ns.a }}";
    return "{% macro m(a, b=" + pick([s, n])() + ") %}<{{ a }}|{{ b }}>{% endmacro %}{{ m("
        + pick([s, n, l])() + ") }}{{ m(1, b=" + pick([s, n, b])() + ") }}";
}

const prefix = `{#- Random statements generated by gen_random.mjs from a grammar of the
    supported subset, kept where the reference renders them; compared with
    the reference like the other templates. -#}
{%- set msgs = [{'role': 'user', 'content': 'Hi abc'}, {'role': 'assistant', 'content': 'Yo, a,b'}] -%}
{%- set tools_ = [{'type': 'function', 'function': {'name': 'f'}}] -%}
{%- set n = 3 %}{% set f = 2.5 %}{% set s = 'Str ing' %}{% set d = {'b': 1, 'a': 2} -%}
{%- set lst = [3, 1, 2] %}{% set objs = [{'k': 2, 'role': 'user'}, {'k': 1}, {'k': 3, 'role': 'x'}] -%}
`;
const want = Number(countArg || 400);
const kept = [];
for (let tries = 0; kept.length < want && tries < want * 10; tries++) {
    const st = Array.from({ length: upto(1, 3) }, () => stmt()).join("\n");
    try {
        const out = new Template(prefix + st).render({ messages: [] });
        if (/[\ud800-\udfff]/.test(out)) continue;    // lone surrogates
        kept.push(st);
    } catch {
        // the reference rejects it: not kept
    }
}
process.stdout.write(prefix + kept.map((st, i) => `#${i}: ${st}`).join("\n") + "\n");
