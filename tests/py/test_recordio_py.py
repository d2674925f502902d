"""The C RecordIO reader against an independent Python writer of the format.

The writer below is written from MXNet's description of its formats, not from
our C code:
  * dmlc-core RecordIO: each record is uint32 magic 0xced7230a, uint32 lrecord =
    (cflag << 29) | length, the data, zero padding to a multiple of 4. When the
    magic word occurs at a 4-aligned position of the data, the writer cuts the
    data there, drops that word and writes the pieces with cflag 1 (first),
    2 (middle), 3 (last); cflag 0 is a whole record.
  * MXIndexedRecordIO's .idx: one line "key\\toffset" per record.
  * mx.recordio.pack: IRHeader struct 'IfQQ' (flag, label, id, id2); a label
    array makes flag = its length, label = 0, and the float32 array follows the
    header; then the image bytes.
  * insightface's train.rec: record 0 is a header whose label array is
    (num_images + 1, num_images + 1 + num_identities); images are keys
    1..num_images; then one record per identity (label = [first, end) keys).

It writes JPEGs made by Pillow (some with a 4-aligned magic word after the EOI
marker, so that the record is split; one with two magic words in a row; one
whose label is an array), then checks through tests/test_recordio_dump.c (from
$UFO_BUILD) that the C reader sees every record's key, flag, labels, id, image
size and FNV-1a-64 of the image bytes, with and without the index; that the
face training set built on it has the right images, labels and decoded sizes;
and that damaged files give one-line errors naming the file and record.

  /usr/bin/python3 tests/py/test_recordio_py.py            # the test
  /usr/bin/python3 tests/py/test_recordio_py.py --corpus D  # write fuzz seeds into D

Final line: "recordio: N passed, M failed".
"""
import io
import os
import random
import struct
import subprocess
import sys
import tempfile

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
PASSED = 0
FAILED = 0


def check(cond, what):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print("FAILED:", what)


# ---------------------------------------------------------------- the writer

def write_record(f, data):
    """dmlc RecordIOWriter::WriteRecord on a binary file object; returns the start offset."""
    start = f.tell()
    n = len(data)
    assert n < (1 << 29)
    dptr = 0
    for i in range(0, n - n % 4, 4):
        if data[i:i + 4] == MAGIC_BYTES:
            cflag = 1 if dptr == 0 else 2
            f.write(struct.pack("<II", MAGIC, (cflag << 29) | (i - dptr)))
            f.write(data[dptr:i])
            dptr = i + 4
    cflag = 3 if dptr != 0 else 0
    f.write(struct.pack("<II", MAGIC, (cflag << 29) | (n - dptr)))
    f.write(data[dptr:])
    f.write(b"\0" * ((4 - n % 4) % 4))
    return start


def pack(label, img, rid=0, rid2=0):
    """mx.recordio.pack(IRHeader(flag, label, id, id2), img)."""
    if isinstance(label, (list, tuple)):
        arr = struct.pack("<%df" % len(label), *label)
        return struct.pack("<IfQQ", len(label), 0.0, rid, rid2) + arr + img
    return struct.pack("<IfQQ", 0, float(label), rid, rid2) + img


def fnv1a64(b):
    h = 0xCBF29CE484222325
    for c in b:
        h = ((h ^ c) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def jpeg(w, h, seed):
    from PIL import Image
    rnd = random.Random(seed)
    im = Image.new("RGB", (w, h))
    im.putdata([(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)) for _ in range(w * h)])
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def with_aligned_magic(img, header_len, twice=False):
    """JPEG bytes + padding + the magic word at a 4-aligned position of the record data."""
    pad = (-(header_len + len(img))) % 4
    tail = MAGIC_BYTES * (2 if twice else 1) + b"tail"
    return img + b"\0" * pad + tail


def write_insightface(folder, labels, seed=1):
    """insightface's layout; returns [(key, flag, labels, id, id2, image bytes)] per record written."""
    os.makedirs(folder, exist_ok=True)
    n = len(labels)
    ids = max(labels) + 1
    written = []
    lines = []
    with open(os.path.join(folder, "train.rec"), "wb") as f:
        hdr = [float(n + 1), float(n + 1 + ids)]
        off = write_record(f, pack(hdr, b""))
        lines.append((0, off))
        written.append((0, 2, hdr, 0, 0, b""))
        for i, lab in enumerate(labels):
            img = jpeg(10 + i % 7, 8 + i % 5, seed * 1000 + i)
            key = i + 1
            if i == 1:
                img = with_aligned_magic(img, 24)
            if i == 3:
                img = with_aligned_magic(img, 24 + 8, twice=True)
                lab_field = [float(lab), 0.25]
                data = pack(lab_field, img, rid=key)
                written.append((key, 2, lab_field, key, 0, img))
            else:
                data = pack(lab, img, rid=key, rid2=7)
                written.append((key, 0, [float(lab)], key, 7, img))
            lines.append((key, write_record(f, data)))
        # identity records: label = [first key, end key)
        first = {}
        for i, lab in enumerate(labels):
            first.setdefault(lab, [i + 1, i + 2])[1] = i + 2
        for c in range(ids):
            rng = [float(x) for x in first.get(c, [0, 0])]
            key = n + 1 + c
            lines.append((key, write_record(f, pack(rng, b""))))
            written.append((key, 2, rng, 0, 0, b""))
    with open(os.path.join(folder, "train.idx"), "w") as fi:
        for key, off in lines:
            fi.write("%d\t%d\n" % (key, off))
    return written


# ---------------------------------------------------------------- the reader under test

def dumper():
    exe = os.path.join(os.environ.get("UFO_BUILD", "build"), "test_recordio_dump")
    if not os.path.exists(exe):
        print("missing %s (build the test_recordio_dump target)" % exe)
        sys.exit(1)
    return exe


def run(exe, *args):
    r = subprocess.run([exe, *args], capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr.strip()


def parse_records(out):
    recs = []
    for line in out.splitlines():
        key, flag, labels, rid, rid2, size, h = line.split("\t")
        recs.append((int(key), int(flag), [float(x) for x in labels.split(",")], int(rid), int(rid2), int(size), int(h, 16)))
    return recs


def compare(got, written, what):
    check(len(got) == len(written), "%s: %d records, wrote %d" % (what, len(got), len(written)))
    for g, w in zip(got, written):
        key, flag, labels, rid, rid2, img = w
        ok = (g[0] == key and g[1] == flag and g[2] == [struct.unpack("<f", struct.pack("<f", x))[0] for x in labels]
              and g[3] == rid and g[4] == rid2 and g[5] == len(img) and g[6] == fnv1a64(img))
        check(ok, "%s: key %d: C read %s" % (what, key, g))


def main():
    exe = dumper()
    rc, out, err = run(exe)
    check(rc == 0, "self-check: " + out + err)
    from PIL import Image
    with tempfile.TemporaryDirectory() as tmp:
        # 1. insightface layout, read through the index.
        labels = [3, 0, 0, 5, 3, 1, 5, 5, 0, 2, 2, 4]
        folder = os.path.join(tmp, "ms1m-retinaface-t1")
        written = write_insightface(folder, labels)
        rec, idx = os.path.join(folder, "train.rec"), os.path.join(folder, "train.idx")
        raw = open(rec, "rb").read()
        nsplit = sum(1 for i in range(0, len(raw) - 8, 4)
                     if raw[i:i + 4] == MAGIC_BYTES and (struct.unpack("<I", raw[i + 4:i + 8])[0] >> 29) == 1)
        check(nsplit == 2, "the writer made 2 split records (found %d)" % nsplit)
        rc, out, err = run(exe, rec, idx)
        check(rc == 0, "dump with index: " + err)
        compare(parse_records(out), written, "indexed")
        # 2. the same file without the index (sequential scan): keys are positions.
        rc, out, err = run(exe, rec, "-")
        check(rc == 0, "dump without index: " + err)
        compare(parse_records(out), [(i,) + w[1:] for i, w in enumerate(written)], "scanned")
        # 3. the face training set: images 1..N, raw label = header label (first of an array).
        rc, out, err = run(exe, "--set", "folder:" + folder)
        check(rc == 0, "face set: " + err)
        lines = out.splitlines()
        n, classes = map(int, lines[0].split("\t")) if lines else (0, 0)
        uniq = sorted(set(labels))
        check(n == len(labels) and classes == len(uniq), "face set: n %d classes %d" % (n, classes))
        for i, line in enumerate(lines[1:]):
            f = line.split("\t")
            img = written[i + 1][5]
            w, h = Image.open(io.BytesIO(img)).size
            check(int(f[1]) == labels[i] and int(f[2]) == uniq.index(labels[i]) and int(f[3]) == -1
                  and (int(f[4]), int(f[5])) == (w, h) and ("(key %d)" % (i + 1)) in f[6],
                  "face image %d: %s" % (i, line))
        # Also found as MS1M-V3 under a data root.
        rc, out2, err = run(exe, "--set", "MS1M-V3", tmp)
        check(rc == 0 and out2 == out, "MS1M-V3 under the root: " + err)
        # 4. a plain file: no header record, shuffled index order, sparse keys, empty and odd payloads.
        plain = os.path.join(tmp, "plain")
        os.makedirs(plain)
        items = []
        with open(os.path.join(plain, "train.rec"), "wb") as f:
            payloads = [(5, b""), (2, jpeg(7, 9, 5)), (9, b"x" * 5), (7, MAGIC_BYTES * 3), (0, jpeg(9, 7, 6))]
            for j, (lab, img) in enumerate(payloads):
                key = 1000 + 17 * j
                items.append((key, write_record(f, pack(lab, img, rid=j)), (key, 0, [float(lab)], j, 0, img)))
        random.Random(3).shuffle(items)
        with open(os.path.join(plain, "train.idx"), "w") as fi:
            for key, off, _ in items:
                fi.write("%d\t%d\n" % (key, off))
        rc, out, err = run(exe, os.path.join(plain, "train.rec"), os.path.join(plain, "train.idx"))
        check(rc == 0, "plain dump: " + err)
        compare(parse_records(out), [w for _, _, w in items], "plain")
        # 5. damaged copies: one-line errors naming the file and the record.
        bad = os.path.join(tmp, "bad.rec")
        with open(bad, "wb") as f:
            f.write(raw[:len(raw) - 12])
        rc, out, err = run(exe, bad, "-")
        check(rc == 1 and err.startswith("error: " + bad + ": record ") and "\n" not in err, "truncated: " + err)
        k = written[4]
        offs = dict((int(a), int(b)) for a, b in (l.split("\t") for l in open(idx)))
        dam = bytearray(raw)
        struct.pack_into("<I", dam, offs[k[0]] + 4, (0 << 29) | (len(raw) + 100))
        with open(bad, "wb") as f:
            f.write(dam)
        rc, out, err = run(exe, bad, idx)
        check(rc == 1 and ("record %d (key %d, offset %d)" % (4, k[0], offs[k[0]])) in err and "past the end" in err,
              "hostile length: " + err)
        dam = bytearray(raw)
        struct.pack_into("<I", dam, offs[written[2][0]] + 8, 1 << 30)   # IRHeader flag: 2^30 labels
        with open(bad, "wb") as f:
            f.write(dam)
        rc, out, err = run(exe, bad, idx)
        check(rc == 1 and "record 2 (key 2" in err and "announces 1073741824 labels" in err, "hostile flag: " + err)
        with open(os.path.join(tmp, "bad.idx"), "w") as fi:
            fi.write("0\t0\n1\t%d\n" % (len(raw) + 4))
        rc, out, err = run(exe, rec, os.path.join(tmp, "bad.idx"))
        check(rc == 1 and "bad.idx:2: offset" in err, "idx past the end: " + err)
        rc, out, err = run(exe, os.path.join(tmp, "none.rec"), idx)
        check(rc == 1 and "missing record file" in err and "none.rec" in err, "missing rec: " + err)
    print("recordio: %d passed, %d failed" % (PASSED, FAILED))
    return 1 if FAILED else 0


def write_corpus(d):
    """Seeds for tests/fuzz/fuzz_recordio.c: [mode][idx length u16 LE][idx text][rec bytes]."""
    os.makedirs(d, exist_ok=True)

    def seed(name, mode, rec, idx=b""):
        with open(os.path.join(d, name), "wb") as f:
            f.write(bytes([mode]) + struct.pack("<H", len(idx)) + idx + rec)

    def rec_of(datas):
        b = io.BytesIO()
        offs = [write_record(b, x) for x in datas]
        return b.getvalue(), "".join("%d\t%d\n" % (i, o) for i, o in enumerate(offs)).encode()

    tiny = bytes.fromhex("ffd8ffdb0043000101010101")   # a JPEG's first bytes (decoding is not fuzzed)
    hdr = pack([3.0, 4.0], b"")
    recs = [hdr, pack(1, tiny), pack([0.0, 2.0], with_aligned_magic(tiny, 32))]
    r, ix = rec_of(recs)
    seed("insightface_idx", 3, r, ix)
    seed("insightface_scan", 2, r)
    r, ix = rec_of([pack(2, MAGIC_BYTES * 2 + b"ab"), pack(0, b"")])
    seed("split_idx", 1, r, ix)
    seed("split_scan", 0, r)
    seed("bad_cflag", 0, struct.pack("<II", MAGIC, (2 << 29) | 4) + b"abcd")
    seed("long_len", 1, struct.pack("<II", MAGIC, 4000) + b"abcd", b"0\t0\n")
    seed("bad_idx", 1, r, b"0\t0\n0\t4\nx\n")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--corpus":
        write_corpus(sys.argv[2])
        sys.exit(0)
    sys.exit(main())
