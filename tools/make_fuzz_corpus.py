#!/usr/bin/python3
"""Writes the seed corpora for the format fuzzers:
tests/fuzz/corpus/safetensors/ and tests/fuzz/corpus/npy/ (small valid files,
each under 4 KB, plus a few near-misses that reach deep into the validators).

Run with Debian's interpreter (needs numpy):  /usr/bin/python3 tools/make_fuzz_corpus.py
The output is deterministic; the files are committed.
"""
import io
import json
import os
import struct

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ST_DIR = os.path.join(ROOT, "tests", "fuzz", "corpus", "safetensors")
NPY_DIR = os.path.join(ROOT, "tests", "fuzz", "corpus", "npy")


def st_bytes(tensors, metadata=None, align=8):
    """tensors: [(name, dtype, shape, raw bytes)], data laid out in list order."""
    header, pos = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [pos, pos + len(data)]}
        pos += len(data)
    hb = json.dumps(header, separators=(",", ":")).encode()
    if align:
        hb += b" " * ((-len(hb)) % align)
    return struct.pack("<Q", len(hb)) + hb + b"".join(t[3] for t in tensors)


def npy_bytes(arr, version):
    f = io.BytesIO()
    np.lib.format.write_array(f, arr, version=version, allow_pickle=False)
    return f.getvalue()


def write(dirname, name, data):
    assert len(data) < 4096, (name, len(data))
    os.makedirs(dirname, exist_ok=True)
    with open(os.path.join(dirname, name), "wb") as f:
        f.write(data)


def main():
    f32 = np.arange(6, dtype="<f4").tobytes()
    st = {
        "empty": st_bytes([]),
        "meta_only": st_bytes([], {"format": "pt"}),
        "one_f32": st_bytes([("w", "F32", (2, 3), f32)]),
        "all_dtypes": st_bytes([
            ("f32", "F32", (2,), np.array([1, -2], "<f4").tobytes()),
            ("f16", "F16", (2,), np.array([1, -2], "<f2").tobytes()),
            ("bf16", "BF16", (2,), b"\x80\x3f\x00\xc0"),
            ("f64", "F64", (1,), np.array([3.5], "<f8").tobytes()),
            ("i64", "I64", (), np.array(7, "<i8").tobytes()),
            ("i32", "I32", (1, 1), np.array([[9]], "<i4").tobytes()),
            ("i16", "I16", (2,), np.array([1, 2], "<i2").tobytes()),
            ("i8", "I8", (3,), np.array([1, 2, 3], "<i1").tobytes()),
            ("u8", "U8", (0, 4), b""),
            ("bool", "BOOL", (2,), b"\x01\x00"),
        ], {"format": "pt", "k": "v"}),
        "unpadded": st_bytes([("a", "I8", (3,), b"\x01\x02\x03"), ("b", "F32", (0,), b"")], None, align=0),
        "escapes": st_bytes([("a\"\\\u00e9\t", "U8", (1,), b"\x05")], {"n\u00e9": "line\nbreak"}),
        "eight_dims": st_bytes([("x", "F32", (1, 1, 1, 1, 1, 1, 1, 2), np.zeros(2, "<f4").tobytes())]),
    }
    # Near-misses: valid framing, one rule broken.
    hole = json.dumps({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                       "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}).encode()
    st["hole"] = struct.pack("<Q", len(hole)) + hole + bytes(12)
    bad_dt = json.dumps({"a": {"dtype": "F8_E5M2", "shape": [1], "data_offsets": [0, 1]}}).encode()
    st["bad_dtype"] = struct.pack("<Q", len(bad_dt)) + bad_dt + b"\x00"
    for name, data in st.items():
        write(ST_DIR, name + ".safetensors", data)

    npy = {
        "f4_v1": npy_bytes(np.arange(12, dtype="<f4").reshape(3, 4) * 0.5, (1, 0)),
        "f8_scalar_v1": npy_bytes(np.array(2.5, dtype="<f8"), (1, 0)),
        "i8_v2": npy_bytes(np.arange(3, dtype="<i8"), (2, 0)),
        "f2_v3": npy_bytes(np.ones((2, 2), dtype="<f2"), (3, 0)),
        "u1_empty": npy_bytes(np.zeros((0, 3), dtype="u1"), (1, 0)),
        "b1": npy_bytes(np.array([True, False]), (1, 0)),
        "i2": npy_bytes(np.arange(4, dtype="<i2"), (1, 0)),
        "i4": npy_bytes(np.arange(4, dtype="<i4"), (1, 0)),
        "i1": npy_bytes(np.arange(-2, 2, dtype="i1"), (1, 0)),
        "fortran": npy_bytes(np.asfortranarray(np.ones((2, 3), dtype="<f4")), (1, 0)),
        "bigendian": npy_bytes(np.arange(3, dtype=">f4"), (1, 0)),
    }
    for name, data in npy.items():
        write(NPY_DIR, name + ".npy", data)
    print("wrote %d safetensors and %d npy seeds" % (len(st), len(npy)))


if __name__ == "__main__":
    main()
