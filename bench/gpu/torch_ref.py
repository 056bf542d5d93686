#!/usr/bin/env python3
"""PyTorch's own forward pass of a Llama-shaped model: the baseline of
make bench-gpu (bench/gpu/README.md).

Reads the same model directory dw-cuda-bench reads (config.json and
model.safetensors or shards), puts the weights on the GPU in BF16 and times,
with CUDA events after a warm-up, the same grid: one prefill of --prompt
tokens and --steps decode steps at each --batches size over a context of
--ctx positions. Decode uses a preallocated KV cache; each step writes the
new token's K/V at position ctx and attends to positions 0..ctx, so every
step has the same shapes (one CUDA graph under torch.compile) and the bytes
and FLOPs of a real step at that context. Attention is
torch.nn.functional.scaled_dot_product_attention (causal for the prefill),
linear layers are BF16 torch.matmul (cuBLAS, F32 accumulation).

    torch_ref.py --model DIR [--batches 1,64,256] [--ctx 1024]
        [--prompt 4096] [--steps 32] [--compile] [--out FILE]

Writes JSON in dw-cuda-bench's shape ({"device", "runs": [{"kind":
"prefill", "tokens", "s", "tflops"}, {"kind": "decode", "batch", "ctx",
"s_per_step", "tokens_s"}]}); bench/gpu/compare.py puts both side by side.
Exits 1 with the reason when PyTorch or a GPU is missing.
"""
import argparse
import json
import math
import mmap
import os
import sys

from st_header import read_header, tensor_files


def fail(msg):
    print("torch_ref: " + msg, file=sys.stderr)
    sys.exit(1)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--batches", default="1,64,256")
    p.add_argument("--ctx", type=int, default=1024)
    p.add_argument("--prompt", type=int, default=4096)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the decode step and the prefill")
    p.add_argument("--out")
    p.add_argument("--check", metavar="IDS",
                   help="instead of timing: print the greedy continuation "
                   "of these prompt ids (space-separated), --check-steps "
                   "tokens, to check the forward pass against a model's "
                   "known output")
    p.add_argument("--check-steps", type=int, default=25)
    p.add_argument("--device", default="cuda",
                   help="cuda (default) or cpu (--check only)")
    p.add_argument("--dtype", default="bf16", choices=("bf16", "f32"),
                   help="weights, activations and KV cache (f32: --check)")
    a = p.parse_args(argv)
    try:
        a.batches = [int(x) for x in a.batches.split(",") if x]
    except ValueError:
        fail("--batches: a comma-separated list of integers")
    if not a.batches or min(a.batches) < 1 or a.ctx < 1 or a.prompt < 1 \
            or a.steps < 1:
        fail("--batches, --ctx, --prompt and --steps must be positive")
    return a


def load_weights(torch, model_dir, dev, dt):
    """name -> tensor of dtype dt on dev, one tensor at a time from the mmapped
    files (no host copy of the whole model)."""
    dtypes = {"BF16": torch.bfloat16, "F16": torch.float16,
              "F32": torch.float32}
    out = {}
    for path in tensor_files(model_dir):
        hdr, base = read_header(path)
        with open(path, "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        for name, t in hdr.items():
            if t["dtype"] not in dtypes:
                fail("%s: dtype %s not supported" % (name, t["dtype"]))
            b0, b1 = t["data_offsets"]
            x = torch.frombuffer(mm, dtype=dtypes[t["dtype"]],
                                 count=math.prod(t["shape"]),
                                 offset=base + b0)
            out[name] = x.view(t["shape"]).to(dev, dt)
    return out


class Llama:
    """The forward pass, functional, on a dict of weights."""

    def __init__(self, torch, cfg, w, dev, dt):
        self.t = torch
        self.dt = dt
        self.cfg = cfg
        self.h = cfg["hidden_size"]
        self.nh = cfg["num_attention_heads"]
        self.nkv = cfg.get("num_key_value_heads", self.nh)
        self.hd = cfg.get("head_dim") or self.h // self.nh
        self.nl = cfg["num_hidden_layers"]
        self.eps = cfg.get("rms_norm_eps", 1e-5)
        self.vocab = cfg["vocab_size"]
        self.inv_freq = self.rope_freqs(cfg).to(dev)
        L = []
        for i in range(self.nl):
            p = "model.layers.%d." % i
            L.append({
                "qkv": torch.cat([w[p + "self_attn.q_proj.weight"],
                                  w[p + "self_attn.k_proj.weight"],
                                  w[p + "self_attn.v_proj.weight"]]),
                "o": w[p + "self_attn.o_proj.weight"],
                "gu": torch.cat([w[p + "mlp.gate_proj.weight"],
                                 w[p + "mlp.up_proj.weight"]]),
                "down": w[p + "mlp.down_proj.weight"],
                "n1": w[p + "input_layernorm.weight"].float(),
                "n2": w[p + "post_attention_layernorm.weight"].float(),
            })
            for k in ("q", "k", "v", "gate", "up"):
                w.pop(p + ("self_attn." if k in "qkv" else "mlp.")
                      + k + "_proj.weight", None)
        self.layers = L
        self.embed = w["model.embed_tokens.weight"]
        self.lm_head = w.get("lm_head.weight", self.embed)
        self.norm = w["model.norm.weight"].float()

    def rope_freqs(self, cfg):
        """inv_freq with llama3 scaling, as HF's _compute_llama3_parameters
        and the worker's dw_kern_rope_freqs."""
        t = self.t
        theta = cfg.get("rope_theta", 10000.0)
        inv = 1.0 / (theta ** (t.arange(0, self.hd, 2, dtype=t.float64)
                               / self.hd))
        rs = cfg.get("rope_scaling") or {}
        if rs.get("rope_type", rs.get("type")) == "llama3":
            f = rs["factor"]
            lo, hi = rs.get("low_freq_factor", 1.0), \
                rs.get("high_freq_factor", 4.0)
            old = rs.get("original_max_position_embeddings", 8192)
            wl = 2 * math.pi / inv
            smooth = (old / wl - lo) / (hi - lo)
            scaled = t.where(wl > old / lo, inv / f, inv)
            mid = (1 - smooth) * inv / f + smooth * inv
            is_mid = (wl <= old / lo) & (wl >= old / hi)
            inv = t.where(is_mid, mid, scaled)
        return inv.float()

    def rmsnorm(self, x, g):
        xf = x.float()
        xf = xf * self.t.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * g).to(self.dt)

    def rope(self, x, pos):
        # x: [B, heads, T, hd]; pos: [T] or [B, 1]
        ang = pos.float()[..., None] * self.inv_freq
        cos, sin = ang.cos(), ang.sin()
        if cos.dim() == 2 and x.shape[2] == cos.shape[0]:
            cos, sin = cos[None, None], sin[None, None]
        else:
            cos, sin = cos[:, None], sin[:, None]
        cos = self.t.cat([cos, cos], -1)
        sin = self.t.cat([sin, sin], -1)
        xf = x.float()
        half = self.hd // 2
        rot = self.t.cat([-xf[..., half:], xf[..., :half]], -1)
        return (xf * cos + rot * sin).to(self.dt)

    def layer(self, l, x, pos, cache, start, causal):
        """x: [B, T, h] F32 residual; cache: (K, V) [B, nkv, S, hd]; new
        K/V written at positions start..start+T-1; attends to 0..start+T-1
        """
        t, F = self.t, self.t.nn.functional
        B, T, _ = x.shape
        qd, kvd = self.nh * self.hd, self.nkv * self.hd
        y = self.rmsnorm(x, l["n1"]) @ l["qkv"].t()
        q = y[..., :qd].view(B, T, self.nh, self.hd).transpose(1, 2)
        k = y[..., qd:qd + kvd].view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = y[..., qd + kvd:].view(B, T, self.nkv, self.hd).transpose(1, 2)
        q, k = self.rope(q, pos), self.rope(k, pos)
        K, V = cache
        K[:, :, start:start + T] = k
        V[:, :, start:start + T] = v
        a = self.attention(q, K[:, :, :start + T], V[:, :, :start + T],
                           causal)
        a = a.transpose(1, 2).reshape(B, T, qd)
        x = x + (a @ l["o"].t()).float()
        gu = self.rmsnorm(x, l["n2"]) @ l["gu"].t()
        im = gu.shape[-1] // 2
        x = x + ((F.silu(gu[..., :im]) * gu[..., im:]) @ l["down"].t()).float()
        return x

    def attention(self, q, k, v, causal):
        """SDPA; for PyTorch without SDPA's GQA (< 2.5) the KV heads are
        repeated, without SDPA (< 2.0, e.g. a distribution's CPU build
        used for --check) it is written out"""
        t, F = self.t, self.t.nn.functional
        g = self.nh // self.nkv
        sdpa = getattr(F, "scaled_dot_product_attention", None)
        if sdpa is not None and g > 1:
            try:
                return sdpa(q, k, v, is_causal=causal, enable_gqa=True)
            except TypeError:
                pass
        if g > 1:
            k = k.repeat_interleave(g, 1)
            v = v.repeat_interleave(g, 1)
        if sdpa is not None:
            return sdpa(q, k, v, is_causal=causal)
        s = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(self.hd)
        if causal:
            T, S = s.shape[-2], s.shape[-1]
            keep = t.ones(T, S, dtype=t.bool, device=s.device).tril(S - T)
            s = s.masked_fill(~keep, float("-inf"))
        return (s.softmax(-1) @ v.float()).to(self.dt)

    def forward(self, ids, pos, caches, start, causal):
        x = self.embed[ids].float()
        for l, c in zip(self.layers, caches):
            x = self.layer(l, x, pos, c, start, causal)
        return self.rmsnorm(x[:, -1], self.norm) @ self.lm_head.t()

    def caches(self, B, S, dev):
        t = self.t
        return [(t.zeros(B, self.nkv, S, self.hd, dtype=self.dt,
                         device=dev),
                 t.zeros(B, self.nkv, S, self.hd, dtype=self.dt,
                         device=dev)) for _ in range(self.nl)]


def check(torch, m, ids, steps, dev):
    """greedy continuation of ids, one token at a time through the cache"""
    n = len(ids)
    cache = m.caches(1, n + steps, dev)
    x = torch.tensor([ids], device=dev)
    logits = m.forward(x, torch.arange(n, device=dev), cache, 0, True)
    out = []
    for i in range(steps):
        tok = int(logits[0].float().argmax())
        out.append(tok)
        if i + 1 == steps:
            break
        logits = m.forward(torch.tensor([[tok]], device=dev),
                           torch.tensor([[n + i]], device=dev), cache, n + i,
                           False)
    return out


def timed(torch, fn, reps, warm=2):
    """seconds per call: CUDA events around reps calls after warm ones"""
    for _ in range(warm):
        fn()
    e0 = torch.cuda.Event(enable_timing=True)
    e1 = torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    e0.record()
    for _ in range(reps):
        fn()
    e1.record()
    e1.synchronize()
    return e0.elapsed_time(e1) / 1e3 / reps


def main(argv):
    a = parse_args(argv)
    try:
        import torch
    except ImportError:
        fail("PyTorch is not installed (python3 -c 'import torch')")
    dt = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    with open(os.path.join(a.model, "config.json")) as f:
        cfg = json.load(f)
    if a.check is not None:
        dev = torch.device(a.device)
        try:
            ids = [int(x) for x in a.check.split()]
        except ValueError:
            fail("--check: space-separated token ids")
        if not ids or a.check_steps < 1:
            fail("--check: at least one id and one step")
        m = Llama(torch, cfg, load_weights(torch, a.model, dev, dt), dev, dt)
        with torch.inference_mode():
            print(" ".join(str(t) for t in check(torch, m, ids,
                                                 a.check_steps, dev)))
        return 0
    if a.device != "cuda" or not torch.cuda.is_available():
        fail("no CUDA device visible to PyTorch")
    dev = torch.device("cuda:0")
    name = torch.cuda.get_device_name(dev)
    print("torch_ref: %s, torch %s%s, loading %s" % (
        name, torch.__version__, ", torch.compile" if a.compile else "",
        a.model), file=sys.stderr)
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    m = Llama(torch, cfg, load_weights(torch, a.model, dev, dt), dev, dt)
    fwd = m.forward
    if a.compile:
        fwd = torch.compile(m.forward, mode="reduce-overhead",
                            dynamic=False)
    runs = []
    gen = torch.Generator(device=dev).manual_seed(1)

    with torch.inference_mode():
        P = a.prompt
        ids = torch.randint(0, m.vocab, (1, P), device=dev, generator=gen)
        pos = torch.arange(P, device=dev)
        cache = m.caches(1, P, dev)
        s = timed(torch, lambda: fwd(ids, pos, cache, 0, True), 3)
        nparam = sum(x.numel() for l in m.layers
                     for x in (l["qkv"], l["o"], l["gu"], l["down"]))
        nparam += m.lm_head.numel() / P       # lm_head runs for one row
        flops = 2.0 * nparam * P + 2.0 * m.nl * m.nh * m.hd * P * P
        runs.append({"kind": "prefill", "tokens": P, "s": s,
                     "tflops": flops / s / 1e12})
        print("prefill %d tokens: %.1f ms, %.1f TFLOP/s" % (
            P, s * 1e3, flops / s / 1e12))
        del cache

        for B in a.batches:
            cache = m.caches(B, a.ctx + 1, dev)
            tok = torch.randint(0, m.vocab, (B, 1), device=dev,
                                generator=gen)
            p = torch.full((B, 1), a.ctx, device=dev)
            s = timed(torch, lambda: fwd(tok, p, cache, a.ctx, False),
                      a.steps)
            runs.append({"kind": "decode", "batch": B, "ctx": a.ctx,
                         "s_per_step": s, "tokens_s": B / s})
            print("decode batch %d, context %d: %.2f ms/step, %.0f "
                  "tokens/s" % (B, a.ctx, s * 1e3, B / s))
            del cache
            torch.cuda.empty_cache()

    res = {"device": name, "impl": "torch%s %s" % (
        ".compile" if a.compile else "", torch.__version__), "runs": runs}
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
