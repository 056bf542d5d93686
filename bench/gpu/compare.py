#!/usr/bin/env python3
"""Side by side: dw-cuda-bench's JSON against PyTorch's (torch_ref.py),
one row per measurement, with the ratio (> 1: the worker is faster).

    compare.py OURS.json [TORCH.json ...] [--out FILE]

Rows: prefill (ms and TFLOP/s), decode at each batch (ms/step and
tokens/s). A measurement missing on one side is shown as "-". Exits 1
with the reason on unreadable input.
"""
import json
import sys


def load(path):
    try:
        with open(path) as f:
            d = json.load(f)
        runs = d["runs"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        print("compare: %s: %s" % (path, e), file=sys.stderr)
        sys.exit(1)
    keyed = {}
    for r in runs:
        if r.get("kind") == "prefill":
            keyed[("prefill", r["tokens"])] = r["s"]
        elif r.get("kind") == "decode":
            keyed[("decode", r["batch"], r["ctx"])] = r["s_per_step"]
    return d, keyed


def label(k):
    if k[0] == "prefill":
        return "prefill %d tokens" % k[1]
    return "decode batch %d, ctx %d" % (k[1], k[2])


def main(argv):
    out = None
    if "--out" in argv:
        i = argv.index("--out")
        out = argv[i + 1] if i + 1 < len(argv) else None
        argv = argv[:i] + argv[i + 2:]
        if out is None:
            print("compare: --out needs a file", file=sys.stderr)
            return 1
    if len(argv) < 1:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 1
    ours, ok = load(argv[0])
    others = [load(p) for p in argv[1:]]
    names = ["dynamo-worker"] + [d.get("impl", p) for (d, _), p in
                                 zip(others, argv[1:])]
    keys = list(ok) + [k for _, o in others for k in o if k not in ok]
    keys = list(dict.fromkeys(keys))
    print("device: %s" % ours.get("device", "?"))
    head = ["measurement (ms)"] + names + ["ratio vs " + n
                                           for n in names[1:]]
    rows, table = [head], []
    for k in keys:
        a = ok.get(k)
        cells = [label(k), "%.2f" % (a * 1e3) if a else "-"]
        rec = {"what": label(k), names[0]: a}
        for n, (_, o) in zip(names[1:], others):
            b = o.get(k)
            cells.append("%.2f" % (b * 1e3) if b else "-")
            rec[n] = b
        for n, (_, o) in zip(names[1:], others):
            b = o.get(k)
            cells.append("%.2fx" % (b / a) if a and b else "-")
            rec["ratio " + n] = b / a if a and b else None
        rows.append(cells)
        table.append(rec)
    w = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for j, r in enumerate(rows):
        print("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i])
                        for i, c in enumerate(r)))
        if j == 0:
            print("  ".join("-" * x for x in w))
    if out:
        with open(out, "w") as f:
            json.dump({"device": ours.get("device"), "rows": table}, f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
