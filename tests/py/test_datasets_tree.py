"""The evaluation-set readers against tools/make_eval_tree.py's manifest.

Writes the tiny twelve-layout tree into a temp folder, loads every set (and
every variant: MSMT17_V2, Market's flat layout, the UFO release's VeRi-Wild
files, SOP's Ebay_test.txt, LFW as .bin and as filelist) with the C dumper
(tests/test_dataset_dump.c, from $UFO_BUILD), and compares kind, counts, paths,
pids, cameras, is-same flags and .bin blob checksums with what the generator
says it wrote. Checks the VehicleID split against the Python re-implementation
of its documented shuffle, and a few error messages on a damaged copy.
Final line: "datasets: N passed, M failed".
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import make_eval_tree  # noqa: E402

PASSED = 0
FAILED = 0


def check(cond, what):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print("FAILED:", what)


def dumper():
    build = os.environ.get("UFO_BUILD", "build")
    exe = os.path.join(build, "test_dataset_dump")
    if not os.path.exists(exe):
        print("missing %s (build the test_dataset_dump target)" % exe)
        sys.exit(1)
    return exe


def dump(exe, name, root, args=()):
    r = subprocess.run([exe, name, root] + list(args), capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip()
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    return lines, ""


def opts_args(opts):
    a = []
    if opts.get("face_source") == "bin":
        a.append("--face-bin")
    if opts.get("face_source") == "filelist":
        a.append("--face-filelist")
    if "msmt_version" in opts:
        a += ["--msmt", str(opts["msmt_version"])]
    return a


def compare(exe, label, name, root, opts, exp):
    lines, err = dump(exe, name, root, opts_args(opts))
    check(lines is not None, "%s: load failed: %s" % (label, err))
    if lines is None:
        return None
    head, rows = lines[0], [l for l in lines[1:] if "i" in l]
    check(head["name"] == name, "%s: name %s" % (label, head["name"]))
    check(head["kind"] == exp["kind"], "%s: kind %s != %s" % (label, head["kind"], exp["kind"]))
    if exp["kind"] == "verify":
        same = [l for l in lines if "issame" in l]
        check(len(same) == 1 and same[0]["issame"] == exp["issame"], "%s: issame differs" % label)
        if "bin" in exp:
            check(head["has_blobs"] and not head["has_paths"], "%s: expected blobs" % label)
            got = [[r.get("blob_size"), r.get("blob_fnv")] for r in rows]
            check(got == exp["blobs"], "%s: blobs differ" % label)
            check(head["source"] == os.path.join(root, exp["bin"]), "%s: source %s" % (label, head["source"]))
        else:
            got = [r.get("path") for r in rows]
            want = [os.path.join(root, p) for p in exp["paths"]]
            check(got == want, "%s: paths differ: %s vs %s" % (label, got[:3], want[:3]))
            check(all("pid" not in r for r in rows), "%s: face rows carry pids" % label)
        check(head["n"] == 2 * len(exp["issame"]), "%s: n %d" % (label, head["n"]))
        return lines
    items = exp["items"]
    check(head["n"] == len(items), "%s: n %d != %d" % (label, head["n"], len(items)))
    check(head["n_query"] == exp["n_query"], "%s: n_query %d != %d" % (label, head["n_query"], exp["n_query"]))
    got = [[r.get("path"), r.get("pid"), r.get("camid")] for r in rows]
    want = [[os.path.join(root, p), pid, cam] for p, pid, cam in items]
    for k, (g, w) in enumerate(zip(got, want)):
        if g != w:
            check(False, "%s: item %d: %s != %s" % (label, k, g, w))
            break
    else:
        check(len(got) == len(want), "%s: %d items, want %d" % (label, len(got), len(want)))
    # Every listed path is a real file (the generator wrote images, not empty files).
    check(all(os.path.getsize(r[0]) > 100 for r in want), "%s: an image file is missing or tiny" % label)
    return lines


def main():
    exe = dumper()
    tmp = tempfile.mkdtemp(prefix="ufo_eval_tree_")
    try:
        root = os.path.join(tmp, "data")
        r = subprocess.run([sys.executable, os.path.join("tools", "make_eval_tree.py"), root, "--seed", "7"],
                           capture_output=True, text=True)
        check(r.returncode == 0, "make_eval_tree.py failed: %s" % r.stderr[-2000:])
        with open(os.path.join(root, "manifest.json")) as f:
            man = json.load(f)
        total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(root) for fn in fns)
        check(total < 2 * 1024 * 1024, "tree is %d bytes (want < 2 MB)" % total)

        names = ["CALFW", "CPLFW", "LFW", "CFP_FF", "CFP_FP", "AgeDB_30", "Market1501", "MSMT17", "VeRi",
                 "LargeVehicleID", "LargeVeRiWild", "SOP"]
        check(sorted(man["sets"]) == sorted(names), "manifest sets: %s" % sorted(man["sets"]))
        for name in names:
            compare(exe, name, name, root, {}, man["sets"][name])
        for v in man["variants"]:
            vroot = os.path.normpath(os.path.join(root, v["root"]))
            compare(exe, "%s@%s%s" % (v["name"], v["root"], v["opts"] or ""), v["name"], vroot, v["opts"], v["expect"])

        # The generator's own sanity: Market junk is absent, distractors present, one
        # query without a valid match; the .bin and filelist forms of LFW hold the same bytes.
        mk = man["sets"]["Market1501"]
        check(any(p == 0 for _, p, _ in mk["items"]) and all(p != -1 for _, p, _ in mk["items"]),
              "market: distractors / junk in the manifest")
        lfw_bin = [v for v in man["variants"] if v["name"] == "LFW" and v["opts"].get("face_source") == "bin"][0]
        fl = man["sets"]["LFW"]
        blobs = []
        for p in fl["paths"]:
            with open(os.path.join(root, p), "rb") as f:
                blobs.append(f.read())
        check([[len(b), make_eval_tree.fnv1a64(b)] for b in blobs] == lfw_bin["expect"]["blobs"],
              "LFW: .bin bytes differ from the files")

        # VehicleID: the C split equals the documented algorithm, for several seeds.
        vid = man["sets"]["LargeVehicleID"]
        pids = [p for _, p, _ in vid["items"]]
        seeds = [0, 1, 2, 12345, 2 ** 40 + 3]
        lines, err = dump(exe, "LargeVehicleID", root, sum([["--split", str(s)] for s in seeds], []))
        check(lines is not None, "vehicleid split: %s" % err)
        splits = [l for l in (lines or []) if "split_seed" in l]
        check(len(splits) == len(seeds), "vehicleid: %d splits" % len(splits))
        orders = []
        for s, sp in zip(seeds, splits):
            order, nq = make_eval_tree.vehicleid_split(pids, s)
            check(sp["order"] == order and sp["n_query"] == nq,
                  "vehicleid seed %d: C %s/%d vs Python %s/%d" % (s, sp["order"], sp["n_query"], order, nq))
            gal = [pids[i] for i in sp["order"][sp["n_query"]:]]
            check(sorted(gal) == sorted(set(pids)), "vehicleid seed %d: not one gallery image per vehicle" % s)
            check(sorted(sp["order"]) == list(range(len(pids))), "vehicleid seed %d: not a permutation" % s)
            orders.append(tuple(sp["order"]))
        check(len(set(orders)) == len(orders), "vehicleid: different seeds gave equal splits")

        # Errors on a damaged copy name the missing thing / the file and line.
        bad = os.path.join(tmp, "bad")
        shutil.copytree(root, bad)
        shutil.rmtree(os.path.join(bad, "veri", "image_test"))
        _, err = dump(exe, "VeRi", bad)
        check(err.startswith("error: VeRi: missing folder " + os.path.join(bad, "veri", "image_test")),
              "veri error: %s" % err)
        ql = os.path.join(bad, "MSMT17_V1", "list_query.txt")
        with open(ql, "a") as f:
            f.write("0000/0000_999_01_x_0_0.jpg\n")
        n_lines = sum(1 for _ in open(ql))
        _, err = dump(exe, "MSMT17", bad)
        check("%s:%d: expected '<path> <pid>'" % (ql, n_lines) in err, "msmt error: %s" % err)
        os.remove(os.path.join(bad, "faces_emore_val", "cplfw_label.npy"))
        _, err = dump(exe, "CPLFW", bad)
        check("missing labels " + os.path.join(bad, "faces_emore_val", "cplfw_label.npy") in err,
              "cplfw error: %s" % err)
        _, err = dump(exe, "LargeVeRiWild", os.path.join(bad, "nowhere"))
        check("not a folder" in err, "bad root error: %s" % err)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("datasets: %d passed, %d failed" % (PASSED, FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
