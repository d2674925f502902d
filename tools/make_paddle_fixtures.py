#!/usr/bin/env python3
"""Fixtures for ufo's safe pickle / paddle.save reader.

  make_paddle_fixtures.py paddle DIR    real-Paddle files (needs paddlepaddle):
      tiny.pdmodel     tools/vit_paddle.py model, dim 16, depth 2, heads 2, patch 4,
                       img 8, seed 1, paddle.save default protocol (4)  [committed
                       as tests/data/paddle/tiny.pdmodel, ~35 KB]
      tiny_p2.pdmodel  the same with depth 1, saved with protocol=2 (_codecs.encode bytes)
      mixed.pdparams   paddle.save of a dict mixing tensors (float32, float16,
                       int64), a numpy array and plain numbers: not a "state
                       dict" for Paddle, so tensors become builtins.tuple((name, ndarray))
  make_paddle_fixtures.py hostile DIR   hostile pickles written opcode by opcode
      (no Paddle needed); HOSTILE maps each file name to the substring its
      one-line error must contain.
  make_paddle_fixtures.py corpus DIR    small seed inputs for tests/fuzz/fuzz_pickle.

Importable (tests/py/test_paddle_pickle.py uses hostile_pickles()).
"""
import os
import pickle
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# ------------------------------------------------------------------ opcode helpers


def u8(x): return struct.pack("<B", x)
def u16(x): return struct.pack("<H", x)
def u32(x): return struct.pack("<I", x)
def i32(x): return struct.pack("<i", x)
def u64(x): return struct.pack("<Q", x)


def sbu(s):
    """SHORT_BINUNICODE"""
    b = s.encode()
    return b"\x8c" + u8(len(b)) + b


def sbb(b):
    """SHORT_BINBYTES / BINBYTES"""
    return (b"C" + u8(len(b)) if len(b) < 256 else b"B" + u32(len(b))) + b


def stack_global(mod, name):
    return sbu(mod) + sbu(name) + b"\x93"


def dtype_op(typestr, order="<", mod="numpy"):
    return (stack_global(mod, "dtype") + sbu(typestr) + b"\x89\x88\x87R" +
            b"(K\x03" + sbu(order) + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")


def shape_op(shape):
    out = b"("
    for d in shape:
        out += b"J" + i32(d)
    return out + b"t"


def array_op(typestr, shape, data, order="<", fortran=False, core="numpy._core.multiarray"):
    """numpy's protocol-3/4 array: _reconstruct(ndarray, (0,), b'b') + BUILD state."""
    return (stack_global(core, "_reconstruct") + stack_global("numpy", "ndarray") + b"K\x00\x85" +
            sbb(b"b") + b"\x87R" + b"(K\x01" + shape_op(shape) + dtype_op(typestr, order) +
            (b"\x88" if fortran else b"\x89") + sbb(data) + b"tb")


def state_dict(items, proto=4):
    """{name: array_op bytes} as a protocol-4 dict pickle."""
    out = b"\x80" + u8(proto) + b"}("
    for k, v in items:
        out += sbu(k) + v
    return out + b"u."


# ------------------------------------------------------------------ hostile inputs


def hostile_pickles():
    """name -> (bytes, substring of the expected error)."""
    f4_6 = struct.pack("<6f", *range(6))
    h = {}
    h["global_os_system.pkl"] = (b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.", "refusing global 'os.system'")
    h["global_posix_system_p0.pkl"] = (b"cposix\nsystem\n(S'ls'\ntR.", "refusing global 'posix.system'")
    h["stack_global_eval.pkl"] = (b"\x80\x04" + stack_global("builtins", "eval") + sbu("1+1") + b"\x85R.",
                                  "refusing global 'builtins.eval'")
    h["stack_global_subprocess.pkl"] = (b"\x80\x04" + stack_global("subprocess", "Popen") + b").",
                                        "refusing global 'subprocess.Popen'")
    h["global_getattr_in_dict.pkl"] = (state_dict([("w", b"c__builtin__\ngetattr\n")]),
                                       "refusing global '__builtin__.getattr'")
    h["reduce_ndarray.pkl"] = (b"\x80\x04" + stack_global("numpy", "ndarray") + b"K\x02\x85\x85R.",
                               "refusing to call numpy.ndarray")
    h["reduce_on_str.pkl"] = (b"\x80\x04" + sbu("os.system") + sbu("ls") + b"\x85R.", "is not callable")
    h["newobj_ndarray.pkl"] = (b"\x80\x04" + stack_global("numpy", "ndarray") + b")\x81.", "NEWOBJ")
    h["memo_out_of_range.pkl"] = (b"\x80\x04}\x94h\x05.", "memo index 5 not defined")
    h["memo_long_get.pkl"] = (b"\x80\x04}\x94j\xff\xff\xff\x7f.", "not defined")
    h["memo_put_huge.pkl"] = (b"\x80\x04}r\xff\xff\xff\xff.", "memo index 4294967295 too large")
    h["binbytes_past_end.pkl"] = (b"\x80\x04B\x00\x00\x00\x40abc.", "truncated")
    h["binunicode8_past_end.pkl"] = (b"\x80\x04\x8d" + u64(1 << 62) + b"x.", "truncated")
    h["binstring_negative.pkl"] = (b"\x80\x02T\xff\xff\xff\xffx.", "negative length")
    h["frame_past_end.pkl"] = (b"\x80\x04\x95" + u64(1000) + b"}.", "truncated")
    h["deep_marks.pkl"] = (b"\x80\x04" + b"(" * 10000 + b"]" * 10000 + b"e" * 10000 + b".",
                           "too deeply nested")
    h["deep_lists.pkl"] = (b"\x80\x04" + b"]" * 10000 + b"a" * 9999 + b".", "nesting deeper than 100")
    h["deep_tuples.pkl"] = (b"\x80\x04N" + b"\x85" * 10000 + b".", "nesting deeper than 100")
    h["recursive_list.pkl"] = (b"\x80\x04]\x94h\x00a.", "recursive")
    h["dtype_object.pkl"] = (state_dict([("w", array_op("O8", (2,), b"\0" * 16))]), "unsupported dtype 'O8'")
    h["dtype_unicode.pkl"] = (state_dict([("w", array_op("U4", (2,), b"\0" * 32))]), "unsupported dtype 'U4'")
    h["dtype_f3.pkl"] = (state_dict([("w", array_op("f3", (2,), b"\0" * 6))]), "unsupported dtype 'f3'")
    h["dtype_not_str.pkl"] = (b"\x80\x04" + stack_global("numpy", "dtype") + b"K\x04\x85R.", "type string")
    h["shape_bytes_mismatch.pkl"] = (state_dict([("w", array_op("f4", (2, 3), f4_6[:20]))]),
                                     "shape/bytes mismatch")
    h["shape_overflow.pkl"] = (state_dict([("w", array_op("f4", (0x7fffffff,) * 4, b""))]),
                               "shape too large")
    h["big_endian.pkl"] = (state_dict([("w", array_op("f4", (6,), struct.pack(">6f", *range(6)), order=">"))]),
                           "big-endian")
    h["ndarray_without_state.pkl"] = (b"\x80\x04" + stack_global("numpy.core.multiarray", "_reconstruct") +
                                      stack_global("numpy", "ndarray") + b"K\x00\x85" + sbb(b"b") + b"\x87R.",
                                      "without its BUILD state")
    h["persid.pkl"] = (b"\x80\x02Pabc\n.", "unsupported opcode PERSID")
    h["binpersid.pkl"] = (b"\x80\x02X\x01\x00\x00\x00aQ.", "unsupported opcode BINPERSID")
    h["ext1.pkl"] = (b"\x80\x02\x82\x01.", "unsupported opcode EXT1")
    h["inst.pkl"] = (b"(ios\nsystem\nS'ls'\n.", "unsupported opcode INST")
    h["obj.pkl"] = (b"\x80\x02(K\x01o.", "unsupported opcode OBJ")
    h["next_buffer.pkl"] = (b"\x80\x05\x97.", "unsupported opcode NEXT_BUFFER")
    h["unknown_opcode.pkl"] = (b"\x80\x04\xff.", "unknown opcode 0xff")
    h["proto_6.pkl"] = (b"\x80\x06N.", "unsupported pickle protocol 6")
    h["no_stop.pkl"] = (b"\x80\x04}", "no STOP")
    h["empty.pkl"] = (b"", "no STOP")
    h["long1_too_big.pkl"] = (b"\x80\x02\x8a\x09" + b"\x01" * 9 + b".", "too large")
    h["not_a_dict.pkl"] = (b"\x80\x04]\x94.", "not a paddle.save state dict")
    h["duplicate_name.pkl"] = (state_dict([("w", array_op("f4", (1,), b"\0" * 4)),
                                           ("w", array_op("f4", (1,), b"\0" * 4))]), "appears twice")
    return h


# ------------------------------------------------------------------ fuzz seeds


def corpus_pickles():
    """Small valid inputs for the fuzzer (and unit tests): name -> bytes."""
    f4 = struct.pack("<4f", 0.5, -1.0, 2.0, 3.25)
    c = {}
    c["state_dict_p4.pkl"] = state_dict([("a.weight", array_op("f4", (2, 2), f4)),
                                         ("a.bias", array_op("i8", (1,), struct.pack("<q", -7))),
                                         ("f", array_op("f8", (2, 1), struct.pack("<2d", 1.5, -2.0), fortran=True))])
    c["state_dict_numpy1.pkl"] = state_dict([("w", array_op("f2", (2,), b"\x00\x3c\x00\xc0",
                                                            core="numpy.core.multiarray")),
                                             ("StructuredToParameterName@@", b"}(" + sbu("w") + sbu("linear_0.w_0") + b"u")])
    # insightface .bin: a py2 pickle of (list of JPEG byte strings, list of bools)
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\xff\xd9"
    c["insightface_py2.pkl"] = (b"\x80\x02]q\x00(U" + u8(len(jpeg)) + jpeg + b"q\x01T" + u32(len(jpeg)) + jpeg +
                                b"e]q\x02(\x88\x89e\x86q\x03.")
    c["py2_protocol0.pkl"] = b"(lp0\nS'ab\\x00\\'c'\np1\naI01\naL12345678901L\naF1.5\naV\\u20ac\\u0041\np2\na(I1\nI2\ntp3\na."
    c["ordered_dict.pkl"] = (b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00b"
                             b"G?\xf8\x00\x00\x00\x00\x00\x00u.")
    c["ordered_dict_reduce_items.pkl"] = (b"ccollections\nOrderedDict\n((lp0\n(lp1\nS'k'\naI7\naatR.")
    c["misc_p4.pkl"] = (b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00(N1(\x8c\x01a\x94K\x01M\x00\x01J\xff\xff\xff\xff"
                        b"\x8a\x02\x00\x80\x8b\x01\x00\x00\x00\xff\x88\x89N)\x8e\x02\x00\x00\x00\x00\x00\x00\x00hi"
                        b"\x96\x01\x00\x00\x00\x00\x00\x00\x00z\x8d\x02\x00\x00\x00\x00\x00\x00\x00ok" + b"h\x00\x94" +
                        b"20l.")
    return c


def numpy_corpus():
    """Real numpy pickles at protocols 0, 2, 4 and 5 (this interpreter's numpy)."""
    import numpy as np
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = {}
    for proto in (0, 2, 4, 5):
        d = {"w": a, "b": np.array([1, 0], dtype=np.bool_), "h": np.asfortranarray(a.astype(np.float16)),
             "i": np.array([3], dtype=np.int32), "e": np.zeros((0, 2), dtype=np.float32), "n": 3}
        out[f"numpy_p{proto}.pkl"] = pickle.dumps(d, protocol=proto)
    return out


# ------------------------------------------------------------------ real paddle


def paddle_fixtures(d, py=None):
    py = py or sys.executable
    vp = os.path.join(HERE, "vit_paddle.py")
    tiny = ["--dim", "16", "--depth", "2", "--heads", "2", "--patch", "4", "--img", "8", "--seed", "1"]
    subprocess.check_call([py, vp, "save", *tiny, "--out", os.path.join(d, "tiny.pdmodel")])
    tiny1 = [x if x != "2" or i != 3 else "1" for i, x in enumerate(tiny)]  # depth 1: keeps the file small
    subprocess.check_call([py, vp, "save", *tiny1, "--protocol", "2", "--out", os.path.join(d, "tiny_p2.pdmodel")])
    code = r"""
import sys, warnings
warnings.filterwarnings("ignore")
import numpy as np, paddle
paddle.set_device("cpu")
d = {"w": paddle.to_tensor(np.arange(6, dtype=np.float32).reshape(2, 3)),
     "h": paddle.to_tensor(np.array([0.5, -2.0, 65504.0], dtype=np.float16)),
     "i": paddle.to_tensor(np.array([1, -2, 1 << 40], dtype=np.int64)),
     "n": np.array([[1.5], [2.5]], dtype=np.float64),
     "step": 7, "lr": 0.5, "name": "mixed"}
paddle.save(d, sys.argv[1])
"""
    subprocess.check_call([py, "-c", code, os.path.join(d, "mixed.pdparams")])


def write_all(d, files):
    os.makedirs(d, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data[0] if isinstance(data, tuple) else data)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("paddle", "hostile", "corpus"):
        sys.exit(__doc__)
    what, d = sys.argv[1], sys.argv[2]
    os.makedirs(d, exist_ok=True)
    if what == "paddle":
        paddle_fixtures(d)
    elif what == "hostile":
        write_all(d, hostile_pickles())
    else:
        files = corpus_pickles()
        try:
            files.update(numpy_corpus())
        except ImportError:
            print("make_paddle_fixtures: numpy not importable; numpy_p*.pkl skipped")
        write_all(d, files)


if __name__ == "__main__":
    main()
