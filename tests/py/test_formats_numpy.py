#!/usr/bin/python3
"""Cross-checks of ufo's .npy and safetensors readers/writers against
independent Python peers: numpy writes .npy files (versions 1.0, 2.0, 3.0),
a small spec-following writer in this script writes safetensors files (and the
`safetensors` package too, when installed), and ufo's dumper
($UFO_BUILD/test_tensor_dump) must report exactly the dtypes, shapes and bytes
Python put there. In the other direction, files ufo writes must load in numpy
and in this script's own safetensors parser with exactly the expected values.
Needs no ufo CLI. Prints "formats: N passed, M failed"; exits non-zero on failure.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

BUILD = os.environ.get("UFO_BUILD", "build")
DUMP = os.path.join(BUILD, "test_tensor_dump")

passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAILED:", what, file=sys.stderr)


def fnv1a64(b):
    h = 0xCBF29CE484222325
    for c in b:
        h ^= c
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def esc(s):
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


def tensor_line(name, dtype, shape, data):
    return "\t".join(["tensor", esc(name), dtype, "[" + ",".join(str(d) for d in shape) + "]",
                      str(len(data)), fnv1a64(data)])


def run_dump(*args):
    return subprocess.run([DUMP, *args], capture_output=True, text=True, timeout=60)


NP_TO_ST = {
    np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("float64"): "F64",
    np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("int16"): "I16",
    np.dtype("int8"): "I8", np.dtype("uint8"): "U8", np.dtype("bool"): "BOOL",
}


# ------------------------------------------------------------------ npy: numpy -> ufo

def npy_cases(rng):
    yield "f4_3x4", np.arange(12, dtype=np.float32).reshape(3, 4) * 0.5
    yield "f8_scalar", np.array(3.141592653589793)
    yield "f2_2x3x4", rng.standard_normal((2, 3, 4)).astype(np.float16)
    yield "i8_5", np.array([-(2 ** 62), -1, 0, 1, 2 ** 62], dtype=np.int64)
    yield "i4_empty", np.zeros((0,), dtype=np.int32)
    yield "i2_2x0x3", np.zeros((2, 0, 3), dtype=np.int16)
    yield "i1_7", np.arange(-3, 4, dtype=np.int8)
    yield "u1_4x4", np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    yield "bool_5", np.array([True, False, True, True, False])
    yield "f4_noncontig", (np.arange(24, dtype=np.float32).reshape(4, 6) - 7)[:, ::2]
    yield "f4_8d", rng.standard_normal((1, 2, 1, 2, 1, 2, 1, 2)).astype(np.float32)


def test_npy_from_numpy(tmp):
    rng = np.random.default_rng(0)
    for label, arr in npy_cases(rng):
        for version in (None, (1, 0), (2, 0), (3, 0)):
            path = os.path.join(tmp, "%s_%s.npy" % (label, "save" if version is None else "%d%d" % version))
            if version is None:
                np.save(path, arr)
            else:
                with open(path, "wb") as f:
                    np.lib.format.write_array(f, arr, version=version)
            r = run_dump("npy", path)
            check(r.returncode == 0, "%s: ufo rejected a numpy file: %s" % (path, r.stderr.strip()))
            want = tensor_line("-", NP_TO_ST[arr.dtype], arr.shape, np.ascontiguousarray(arr).tobytes())
            check(r.stdout.strip() == want, "%s: ufo says %r, numpy wrote %r" % (path, r.stdout.strip(), want))

    # numpy files ufo must refuse with a one-line error.
    refuse = {
        "fortran.npy": (np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)), "fortran_order"),
        "bigendian.npy": (np.arange(4, dtype=">f4"), "big-endian"),
        "complex.npy": (np.arange(4, dtype=np.complex64), "descr"),
        "uint16.npy": (np.arange(4, dtype=np.uint16), "descr"),
        "strings.npy": (np.array(["ab", "c"]), "descr"),
        "structured.npy": (np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]), "structured"),
    }
    for name, (arr, want) in refuse.items():
        path = os.path.join(tmp, name)
        np.save(path, arr)
        r = run_dump("npy", path)
        err = r.stderr.strip()
        check(r.returncode == 1 and "\n" not in err and want in err and name in err,
              "%s: expected a one-line error mentioning %r, got rc=%d %r" % (name, want, r.returncode, err))

    # Truncated and padded variants of a valid file.
    path = os.path.join(tmp, "ok.npy")
    np.save(path, np.arange(10, dtype=np.float32))
    raw = open(path, "rb").read()
    for name, data, want in (("short.npy", raw[:-4], "truncated"), ("long.npy", raw + b"\0\0\0\0", "unexpected data"),
                             ("hdr.npy", raw[:40], "truncated")):
        p = os.path.join(tmp, name)
        open(p, "wb").write(data)
        r = run_dump("npy", p)
        check(r.returncode == 1 and want in r.stderr, "%s: rc=%d %r" % (name, r.returncode, r.stderr.strip()))


# ------------------------------------------------------------------ npy: ufo -> numpy

def test_npy_to_numpy(tmp):
    path = os.path.join(tmp, "ufo_written.npy")
    r = run_dump("write-npy", path)
    check(r.returncode == 0, "write-npy: %s" % r.stderr.strip())
    if r.returncode != 0:
        return
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        shape, fortran, dtype = np.lib.format._read_array_header(f, version)
        check(f.tell() % 64 == 0, "ufo's .npy data starts at %d, not 64-byte aligned" % f.tell())
    check(version == (1, 0) and shape == (3, 4) and not fortran and dtype == np.dtype("<f4"),
          "ufo's .npy header: version %s shape %s fortran %s dtype %s" % (version, shape, fortran, dtype))
    a = np.load(path)
    want = np.arange(12, dtype=np.float32).reshape(3, 4) * 0.5
    check(a.dtype == np.float32 and a.shape == (3, 4) and np.array_equal(a, want), "ufo's .npy values: %r" % a)
    check(not [f for f in os.listdir(tmp) if ".tmp." in f], "temp files left in %s" % tmp)


# ------------------------------------------------------------------ safetensors

def bf16_bytes(values):
    """Round-to-nearest-even float32 -> bf16, as torch does."""
    try:
        import torch
        return torch.tensor(values, dtype=torch.bfloat16).view(torch.int16).numpy().tobytes()
    except ImportError:
        u = np.array(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
        u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
        return u.astype("<u2").tobytes()


def st_write(path, tensors, metadata=None, align=8, data_order=None):
    """Independent safetensors writer: tensors = [(name, dtype, shape, bytes)].
    data_order permutes where each tensor's bytes go (default: as listed)."""
    order = data_order or list(range(len(tensors)))
    offsets, pos = {}, 0
    for i in order:
        name, _, _, data = tensors[i]
        offsets[name] = (pos, pos + len(data))
        pos += len(data)
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets[name])}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    if align:
        hb += b" " * ((-len(hb)) % align)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for i in order:
            f.write(tensors[i][3])
    return tensors


def st_read(path):
    """Independent safetensors parser (returns header dict, data bytes, data start)."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    return header, raw[8 + n:], 8 + n


def expected_dump(tensors, metadata):
    lines = [tensor_line(n, d, s, b) for n, d, s, b in tensors]
    for k, v in (metadata or {}).items():
        lines.append("meta\t%s\t%s" % (esc(k), esc(v)))
    return lines


def test_st_from_python(tmp):
    rng = np.random.default_rng(1)
    f32 = rng.standard_normal((4, 5)).astype(np.float32)
    base = [
        ("embed.weight", "F32", (4, 5), f32.tobytes()),
        ("norm.bias", "BF16", (3,), bf16_bytes([1.0, -0.3333, 3e38])),
        ("half", "F16", (2, 2), np.array([[0.5, -1], [65504, 6e-8]], dtype="<f2").tobytes()),
        ("pos_ids", "I64", (1, 3), np.array([[0, 1, 2]], dtype="<i8").tobytes()),
        ("scalar", "F64", (), np.array(2.5, dtype="<f8").tobytes()),
        ("empty", "F32", (0, 7), b""),
        ("mask", "BOOL", (4,), np.array([1, 0, 0, 1], dtype=np.uint8).tobytes()),
        ("i32", "I32", (2,), np.array([-5, 2 ** 31 - 1], dtype="<i4").tobytes()),
        ("i16", "I16", (2,), np.array([-5, 300], dtype="<i2").tobytes()),
        ("i8", "I8", (3,), np.array([-128, 0, 127], dtype="<i1").tobytes()),
        ("u8", "U8", (3,), np.array([0, 128, 255], dtype="<u1").tobytes()),
        ("name with spaces/é\t\"q\"", "U8", (1,), b"\x07"),
    ]
    meta = {"format": "pt", "source": "python spec writer", "odd": "tab\there, newline\nthere, ü"}
    cases = [
        ("st_basic", base, meta, 8, None),
        ("st_nometa", base[:3], None, 8, None),
        ("st_unpadded", base[:5], {"x": "y"}, 0, None),
        ("st_reversed_data", base[:6], None, 8, list(reversed(range(6)))),
        ("st_empty_file", [], None, 8, None),
        ("st_only_meta", [], {"k": ""}, 8, None),
    ]
    for label, tensors, metadata, align, order in cases:
        path = os.path.join(tmp, label + ".safetensors")
        st_write(path, tensors, metadata, align, order)
        r = run_dump("safetensors", path)
        check(r.returncode == 0, "%s: ufo rejected a valid file: %s" % (label, r.stderr.strip()))
        got = r.stdout.splitlines()
        want = expected_dump(tensors, metadata)
        # Tensors in header order, then metadata (any order).
        got_t = [l for l in got if l.startswith("tensor\t")]
        got_m = sorted(l for l in got if l.startswith("meta\t"))
        want_t = [l for l in want if l.startswith("tensor\t")]
        want_m = sorted(l for l in want if l.startswith("meta\t"))
        check(got_t == want_t, "%s: tensors differ:\n  ufo:    %s\n  python: %s" % (label, got_t, want_t))
        check(got_m == want_m, "%s: metadata differs:\n  ufo:    %s\n  python: %s" % (label, got_m, want_m))
        check(len(got) == len(want), "%s: %d lines, expected %d" % (label, len(got), len(want)))

    # Files that break the spec: ufo must refuse each with a one-line error.
    def raw_file(name, header_bytes, data=b"", hlen=None):
        p = os.path.join(tmp, name)
        with open(p, "wb") as f:
            f.write(struct.pack("<Q", len(header_bytes) if hlen is None else hlen))
            f.write(header_bytes)
            f.write(data)
        return p

    def t(dtype, shape, off):
        return {"dtype": dtype, "shape": shape, "data_offsets": off}

    bad = [
        ("hole", {"a": t("F32", [1], [0, 4]), "b": t("F32", [1], [8, 12])}, 12, "hole"),
        ("overlap", {"a": t("F32", [2], [0, 8]), "b": t("F32", [2], [4, 12])}, 12, "overlap"),
        ("trailing", {"a": t("F32", [1], [0, 4])}, 8, "after the last tensor"),
        ("oob", {"a": t("F32", [4], [0, 16])}, 8, "past the end"),
        ("mismatch", {"a": t("F32", [3], [0, 8])}, 8, "needs 12"),
        ("dtype", {"a": t("F8_E4M3", [1], [0, 1])}, 1, "unknown dtype 'F8_E4M3'"),
        ("meta", {"__metadata__": {"n": 3}}, 0, "not a string"),
        ("ndims", {"a": t("F32", [1] * 9, [0, 4])}, 4, "dimensions"),
        ("negdim", {"a": t("F32", [-1], [0, 4])}, 4, "negative"),
    ]
    for label, header, dlen, want in bad:
        p = raw_file("bad_%s.safetensors" % label, json.dumps(header).encode(), bytes(dlen))
        r = run_dump("safetensors", p)
        err = r.stderr.strip()
        check(r.returncode == 1 and "\n" not in err and want in err and "safetensors" in err,
              "bad %s: expected a one-line error with %r, got rc=%d %r" % (label, want, r.returncode, err))
    short_file = os.path.join(tmp, "bad_short.safetensors")
    with open(short_file, "wb") as f:
        f.write(b"\x02\x00")
    for label, p, want in (
            ("hlen_past_end", raw_file("bad_hlen.safetensors", b"{}", hlen=1000), "past the end"),
            ("hlen_huge", raw_file("bad_huge.safetensors", b"{}", hlen=2 ** 64 - 1), "limit"),
            ("not_json", raw_file("bad_json.safetensors", b"{nope}"), "not valid JSON"),
            ("not_object", raw_file("bad_array.safetensors", b"[1,2,3]"), "not a JSON object"),
            ("short", short_file, "too small")):
        r = run_dump("safetensors", p)
        check(r.returncode == 1 and want in r.stderr, "bad %s: rc=%d %r" % (label, r.returncode, r.stderr.strip()))

    # A file written by the reference `safetensors` package, when installed.
    try:
        import torch
        from safetensors.torch import save_file
    except ImportError:
        print("note: python package 'safetensors' not installed; skipping the reference-writer sub-case")
        return
    ts = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.tensor([1.5, -2.0], dtype=torch.bfloat16),
          "i": torch.tensor(7, dtype=torch.int64)}
    path = os.path.join(tmp, "reference.safetensors")
    save_file(ts, path, metadata={"format": "pt"})
    r = run_dump("safetensors", path)
    check(r.returncode == 0, "reference file rejected: %s" % r.stderr.strip())
    got = sorted(r.stdout.splitlines())
    want = sorted([tensor_line("w", "F32", (2, 3), ts["w"].numpy().tobytes()),
                   tensor_line("b", "BF16", (2,), ts["b"].view(torch.int16).numpy().tobytes()),
                   tensor_line("i", "I64", (), ts["i"].numpy().tobytes()), "meta\tformat\tpt"])
    check(got == want, "reference file: ufo %s, expected %s" % (got, want))


def test_st_to_python(tmp):
    path = os.path.join(tmp, "ufo_written.safetensors")
    r = run_dump("write-st", path)
    check(r.returncode == 0, "write-st: %s" % r.stderr.strip())
    if r.returncode != 0:
        return
    header, data, start = st_read(path)
    check(start % 8 == 0, "data section starts at %d, not 8-byte aligned" % start)
    raw = open(path, "rb").read()
    hb = raw[8:start]
    check(hb.startswith(b"{") and hb.rstrip(b" ").endswith(b"}"), "header framing: %r" % hb[-16:])
    check(header.get("__metadata__") == {"format": "pt", "note": "hello \"ufo\"\n\u00e9"},
          "metadata: %r" % header.get("__metadata__"))
    names = [k for k in header if k != "__metadata__"]
    check(names == ["a", "b", "c", "d", "e", "f", "g", 'h."x"'], "tensor order: %r" % names)
    # Offsets contiguous in header order and covering the data section exactly.
    pos = 0
    for n in names:
        b, e = header[n]["data_offsets"]
        check(b == pos and e >= b, "%s: offsets %r, expected to start at %d" % (n, (b, e), pos))
        pos = e
    check(pos == len(data), "data section is %d bytes, tensors cover %d" % (len(data), pos))

    def arr(name, np_dtype):
        info = header[name]
        b, e = info["data_offsets"]
        return np.frombuffer(data[b:e], dtype=np_dtype).reshape(info["shape"]), info["dtype"]

    a, dt = arr("a", "<f4")
    check(dt == "F32" and np.array_equal(a, np.arange(12, dtype=np.float32).reshape(3, 4) * 0.5), "a: %r" % a)
    b, dt = arr("b", "<u2")
    bf = (b.astype(np.uint32) << 16).view(np.float32)
    check(dt == "BF16" and bf.tolist() == [1.0, -2.5], "b: %r" % bf)
    c, dt = arr("c", "<i8")
    check(dt == "I64" and c.shape == () and int(c) == 42, "c: %r" % c)
    d, dt = arr("d", "u1")
    check(dt == "U8" and d.shape == (0,), "d: %r" % d)
    e, dt = arr("e", "<f2")
    check(dt == "F16" and e.tolist() == [[0.5, 1.0], [-1.0, 2.0]], "e: %r" % e)
    f, dt = arr("f", "u1")
    check(dt == "BOOL" and f.tolist() == [1, 0, 1], "f: %r" % f)
    g, dt = arr("g", "<i4")
    check(dt == "I32" and g.tolist() == [-1, 7], "g: %r" % g)
    h, dt = arr('h."x"', "<f8")
    check(dt == "F64" and h.tolist() == [0.1, -1e-300, 12345.678], "h: %r" % h)
    check(not [x for x in os.listdir(tmp) if ".tmp." in x], "temp files left in %s" % tmp)

    # ufo reads back what it wrote, and the dump matches Python's view of it.
    r = run_dump("safetensors", path)
    want = [tensor_line(n, header[n]["dtype"], header[n]["shape"],
                        data[header[n]["data_offsets"][0]:header[n]["data_offsets"][1]]) for n in names]
    got = [l for l in r.stdout.splitlines() if l.startswith("tensor\t")]
    check(r.returncode == 0 and got == want, "ufo re-read of its own file: %s vs %s" % (got, want))

    # The reference package reads it too, when installed.
    try:
        from safetensors.numpy import load_file
    except ImportError:
        return
    loaded = load_file(path)
    check(np.array_equal(loaded["a"], a), "reference package read of 'a'")


def main():
    if not os.access(DUMP, os.X_OK):
        print("formats: %s not built (set UFO_BUILD)" % DUMP, file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="ufo_formats_py.") as tmp:
        test_npy_from_numpy(tmp)
        test_npy_to_numpy(tmp)
        test_st_from_python(tmp)
        test_st_to_python(tmp)
    print("formats: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
