"""Safetensors headers without dependencies (bench/gpu/torch_ref.py).

A file is an 8-byte little-endian header length, a JSON header mapping
tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
from the end of the header) and an optional "__metadata__", then the
data. read_header checks what the loader relies on: offsets inside the
file, sizes matching shape x dtype, no overlap.
"""
import json
import os
import struct

SIZES = {"BF16": 2, "F16": 2, "F32": 4, "F64": 8, "I64": 8, "I32": 4,
         "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


class Bad(ValueError):
    pass


def read_header(path):
    """(tensors, data_base): tensors maps name -> entry; data_base is the
    file offset the data_offsets count from. Raises Bad."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise Bad("%s: shorter than a safetensors header" % path)
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > 100 << 20:
            raise Bad("%s: header length %d past the end of the file"
                      % (path, n))
        try:
            hdr = json.loads(f.read(n))
        except ValueError as e:
            raise Bad("%s: header is not JSON: %s" % (path, e))
    if not isinstance(hdr, dict):
        raise Bad("%s: header is not a JSON object" % path)
    hdr.pop("__metadata__", None)
    base = 8 + n
    spans = []
    for name, t in hdr.items():
        try:
            dt, shape, (b0, b1) = t["dtype"], t["shape"], t["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise Bad("%s: tensor %s: needs dtype, shape, data_offsets"
                      % (path, name))
        if dt not in SIZES:
            raise Bad("%s: tensor %s: unknown dtype %r" % (path, name, dt))
        if not all(isinstance(d, int) and d >= 0 for d in shape):
            raise Bad("%s: tensor %s: bad shape %r" % (path, name, shape))
        count = 1
        for d in shape:
            count *= d
        if not (isinstance(b0, int) and isinstance(b1, int)
                and 0 <= b0 <= b1 and base + b1 <= size):
            raise Bad("%s: tensor %s: data_offsets %r outside the file"
                      % (path, name, [b0, b1]))
        if b1 - b0 != count * SIZES[dt]:
            raise Bad("%s: tensor %s: %d bytes for shape %r of %s"
                      % (path, name, b1 - b0, shape, dt))
        spans.append((b0, b1, name))
    spans.sort()
    for (a0, a1, an), (c0, c1, cn) in zip(spans, spans[1:]):
        if c0 < a1:
            raise Bad("%s: tensors %s and %s overlap" % (path, an, cn))
    return hdr, base


def tensor_files(model_dir):
    """The model's safetensors files: the shards an index names, or
    model.safetensors."""
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            wm = json.load(f).get("weight_map", {})
        return [os.path.join(model_dir, s) for s in sorted(set(wm.values()))]
    one = os.path.join(model_dir, "model.safetensors")
    if not os.path.exists(one):
        raise Bad("%s: no model.safetensors or index" % model_dir)
    return [one]
