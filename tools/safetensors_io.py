"""A small, independent safetensors writer/reader in plain Python + numpy.

Used by the oracle tests to hand ufo files that ufo did not write itself
(written from the format's description: u64 LE header length, JSON header,
raw little-endian data), and to read back what ufo wrote.
"""
import json
import struct

import numpy as np

_DT = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("float64"): "F64",
       np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("uint8"): "U8"}
_NP = {v: k for k, v in _DT.items()}


def write(path, tensors, metadata=None, bf16=()):
    """tensors: dict name -> np.ndarray. Names in `bf16` are stored as BF16 (rounded to nearest even)."""
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        if name in bf16:
            u = arr.astype(np.float32).view(np.uint32).astype(np.uint64)
            u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
            raw, dt = u.tobytes(), "BF16"
        else:
            raw, dt = arr.astype(arr.dtype.newbyteorder("<")).tobytes(), _DT[arr.dtype]
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read(path):
    """Returns (dict name -> np.ndarray float32/etc, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        raw = data[base + a: base + b]
        if e["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=_NP[e["dtype"]].newbyteorder("<"))
        out[name] = arr.reshape(e["shape"])
    return out, meta
