#!/usr/bin/env python3
"""Write the demo data root behind `make run`: four small, real training and
evaluation sets in the exact benchmark layouts ufo reads (SPEC sections 4 and 5).

    make_demo_data.py ROOT [--seed N] [--scale S] [--jobs J]

ROOT becomes a FASTREID_DATASETS folder. Run with Debian's /usr/bin/python3
(numpy, Pillow); the product task needs Debian's dataset-fashion-mnist.

  product  REAL images: Fashion-MNIST (Debian's dataset-fashion-mnist) as an
           open-set retrieval task like SOP. Training: classes 0-5 (T-shirt/top,
           Trouser, Pullover, Dress, Coat, Sandal) from the train file; evaluation:
           classes 6-9 (Shirt, Sneaker, Bag, Ankle boot), never seen in training,
           from the t10k file. 28x28 grey images upscaled (bicubic) to 32x32 RGB
           JPEG (quality 95). Per class ~300*S training / ~100*S test images.
  face     SYNTHETIC identities (112x112 crops, as insightface's): procedurally
           drawn faces (skin, face shape, hair colour and style, eyes, brows, nose,
           mouth, glasses, beard, mole), each image seen by a "camera" (light,
           colour cast, contrast, scale, roll, yaw, translation, blur, resolution,
           noise) over a random background and shirt.
  person   SYNTHETIC identities (64x128, as Market-1501): clothing colours and
           patterns, trousers/shorts/skirt, bags, hats; front/back view, walking
           pose, per-camera background and light.
  vehicle  SYNTHETIC identities (96x64): body type and colour, windows, stripe,
           roof rack, sticker, wheels; left/right view, viewpoint shear, per-camera
           road background and light.
Evaluation identities are never training identities (as in the benchmarks).

Layout under ROOT (paths as ufo's readers expect them; S = --scale):

  ms1m-retinaface-t1/train.rec, train.idx, property
        MXNet RecordIO as insightface writes MS1M-V3: record 0 a header
        IRHeader(flag=2, label=[N+1, N+1+C]), records 1..N one image each
        (IRHeader(flag=0, label=identity, id=key, id2=0) + JPEG bytes), then C
        identity records IRHeader(flag=2, label=[first key, end key)); train.idx
        lines "key<TAB>offset". 100*S identities x 10 images.
  faces_emore_val/{lfw,agedb_30}.filelist   "<stem>/NNNNN.jpg <identity>" per pair image
  faces_emore_val/{lfw,agedb_30}_label.npy  bool is-same flags, pair i = images 2i, 2i+1
  faces_emore_val/{lfw,agedb_30}/NNNNN.jpg   300*S pairs each (half same), over
        100*S unseen identities per set (4 images each, shared by the pairs, as LFW);
        agedb_30 adds an "age" change (greying hair, wrinkles) between images; only the
        pool images that some pair uses are written.
  Market-1501-v15.09.15/bounding_box_train/<pid:04d>_c<cam>s1_<frame:06d>_01.jpg
        100*S identities, 6 cameras, 2-5 cameras x 2-3 images each.
  Market-1501-v15.09.15/{query,bounding_box_test}/...   50*S other identities:
        1-2 queries per identity, each from its own camera; the gallery holds the
        rest (other cameras, and same-camera images the junk rule removes), a few
        pid 0000 distractors and two pid -1 junk images (dropped by the readers).
  veri/image_train/<vid:04d>_c<ccc:03d>_<frame:08d>_0.jpg   100*S vehicles, 20 cameras
  veri/image_query, veri/image_test   50*S other vehicles; one query per camera for
        up to 3 of its cameras; image_test holds all of its images (the query
        images too, as VeRi-776: the same-camera rule removes them).
  Stanford_Online_Products/train.txt  "relpath,label" (classes 0-5)
  Stanford_Online_Products/test.txt   "relpath,label" (classes 6-9)
  Stanford_Online_Products/<class>_final/<split>_<index in the source file:05d>.jpg
  README.txt      what is synthetic, what is real, the counts
  manifest.json   per task: training sets, identities, images; evaluation sets and
                  counts; the `ufo eval` dataset names; the recipe's set names

Everything is a function of (seed, scale): each image is drawn from its own
random stream, so the tree is identical for any --jobs.
"""
import argparse
import colorsys
import gzip
import io
import json
import math
import os
import struct
import sys
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
FMNIST_CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot"]
PRODUCT_TRAIN_CLASSES = (0, 1, 2, 3, 4, 5)
PRODUCT_EVAL_CLASSES = (6, 7, 8, 9)

FACE_SIZE, PERSON_SIZE, VEHICLE_SIZE, PRODUCT_SIZE = (112, 112), (64, 128), (96, 64), (32, 32)   # (w, h)
SS = 2                      # supersampling of the drawings
SYN_QUALITY, PRODUCT_QUALITY = 90, 95
MARKET_CAMS, VERI_CAMS, FACE_CAMS = 6, 20, 8

# random-stream keys
K_FACE, K_PERSON, K_VEHICLE, K_PRODUCT = 1, 2, 3, 4
K_IDENTITY, K_CAMERA, K_IMAGE, K_PLAN, K_DISTRACTOR = 10, 11, 12, 13, 14

FACE_EVAL_BASE = {"lfw": 100000, "agedb_30": 200000}   # identity numbers of the face evaluation sets

RECORDIO_MAGIC = 0xCED7230A
IR_FORMAT = "<IfQQ"


def rng_for(seed, *keys):
    return np.random.default_rng([int(seed) & 0xFFFFFFFF] + [int(k) for k in keys])


def count(base, scale, minimum):
    return max(minimum, int(round(base * scale)))


# =============================================================== MXNet RecordIO

def recordio_pack(flag, label, id_, id2, payload):
    """mx.recordio.pack: IRHeader '<IfQQ' + (flag float32 labels when flag > 0) + payload."""
    if flag == 0:
        return struct.pack(IR_FORMAT, 0, float(label), id_, id2) + payload
    lab = np.asarray(label, dtype="<f4").ravel()
    assert lab.size == flag
    return struct.pack(IR_FORMAT, flag, 0.0, id_, id2) + lab.tobytes() + payload


def recordio_frame(data):
    """dmlc-core's RecordIOWriter::WriteRecord: the bytes of one record in the .rec.
    A magic word at a 4-byte-aligned position of the data is cut out and the pieces
    are written with cflag 1 (first), 2 (middle), 3 (last); cflag 0 is a whole record.
    The last piece is zero-padded to a multiple of 4."""
    magic = struct.pack("<I", RECORDIO_MAGIC)
    n = len(data)
    out = bytearray()
    dptr = 0
    for i in range(0, n & ~3, 4):
        if data[i:i + 4] == magic:
            out += magic + struct.pack("<I", ((1 if dptr == 0 else 2) << 29) | (i - dptr)) + data[dptr:i]
            dptr = i + 4
    out += magic + struct.pack("<I", ((3 if dptr else 0) << 29) | (n - dptr)) + data[dptr:]
    out += b"\0" * (((n + 3) & ~3) - n)
    return bytes(out)


class IndexedRecordIOWriter:
    """mx.recordio.MXIndexedRecordIO(idx, rec, 'w'): write_idx(key, buf) appends the
    record and the line "key\\toffset" to the index."""

    def __init__(self, idx_path, rec_path):
        self.rec = open(rec_path, "wb")
        self.idx = open(idx_path, "w")
        self.pos = 0

    def write_idx(self, key, buf):
        framed = recordio_frame(buf)
        self.idx.write("%d\t%d\n" % (key, self.pos))
        self.rec.write(framed)
        self.pos += len(framed)

    def close(self):
        self.rec.close()
        self.idx.close()


# =============================================================== drawing helpers

def hsv(h, s, v):
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0), 1), min(max(v, 0), 1))
    return (int(r * 255), int(g * 255), int(b * 255))


def any_colour(rng, smin=0.15, vmin=0.15, smax=1.0):
    """A colour spread over the whole colour space (greys included)."""
    if rng.random() < 0.2:
        g = rng.uniform(0.08, 0.95)
        return hsv(0, 0, g)
    return hsv(rng.random(), rng.uniform(smin, max(smin, smax)), rng.uniform(vmin, 1.0))


def jitter(rng, c, s):
    return tuple(int(min(255, max(0, v + rng.normal(0, s)))) for v in c)


def mix(c1, c2, t):
    return tuple(int(round(a + (b - a) * t)) for a, b in zip(c1, c2))


def darker(c, f):
    return tuple(int(v * f) for v in c)


SKIN = [(255, 224, 196), (241, 194, 164), (229, 178, 140), (205, 145, 105), (170, 112, 78), (128, 82, 56),
        (96, 62, 44)]
HAIR = [(18, 16, 16), (45, 32, 24), (85, 58, 36), (130, 88, 50), (185, 145, 85), (225, 200, 140),
        (150, 60, 30), (110, 110, 115)]
IRIS = [(60, 40, 25), (95, 65, 35), (60, 110, 160), (70, 120, 80), (40, 40, 45), (120, 100, 60)]


class Camera:
    """A camera's look: gain, contrast, colour cast, blur, noise, resolution, and a
    background palette. Each image adds its own jitter around it."""

    def __init__(self, seed, task, cam):
        r = rng_for(seed, task, K_CAMERA, cam)
        self.gain = r.uniform(0.72, 1.22)
        self.contrast = r.uniform(0.7, 1.15)
        self.cast = np.clip(1.0 + r.normal(0, 0.09, 3), 0.75, 1.25)
        self.blur = r.uniform(0.0, 0.9)
        self.noise = r.uniform(1.5, 6.0)
        self.res = r.uniform(0.55, 1.0)          # fraction of full resolution the sensor resolves
        self.bg = [any_colour(r, 0.0, 0.2, 0.55) for _ in range(3)]
        self.horizon = r.uniform(0.35, 0.7)
        self.side = int(r.integers(2))           # preferred view for person/vehicle cameras


def camera_finish(img, cam, r, out_size, strength=1.0):
    """Light, colour cast, contrast, resolution, blur and noise of one shot."""
    w, h = out_size
    res = min(1.0, cam.res * r.uniform(0.9, 1.15))
    if res < 0.97:
        small = (max(8, int(w * res)), max(8, int(h * res)))
        img = img.resize(small, Image.BILINEAR).resize((w, h), Image.BILINEAR)
    blur = max(0.0, cam.blur + r.normal(0, 0.25)) * strength
    if blur > 0.15:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    a = np.asarray(img, dtype=np.float32)
    gain = cam.gain * r.uniform(0.88, 1.12)
    gain = 1.0 + (gain - 1.0) * strength
    contrast = 1.0 + (cam.contrast * r.uniform(0.92, 1.08) - 1.0) * strength
    cast = 1.0 + (cam.cast * (1.0 + r.normal(0, 0.025, 3)) - 1.0) * strength
    mean = a.mean()
    a = ((a - mean) * contrast + mean) * gain * cast
    a += r.normal(0, max(0.5, cam.noise * r.uniform(0.7, 1.3)) * strength, a.shape)
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "RGB")


def affine(layer, out_size, angle_deg, scale, tx, ty, shear=0.0, pad=0):
    """Rotate/scale/shear about the centre, then translate (pixels of the layer).
    The layer may have a margin of `pad` pixels around the out_size picture."""
    W, H = layer.size
    cx, cy = W / 2.0, H / 2.0
    t = math.radians(angle_deg)
    c, s = math.cos(t), math.sin(t)
    # forward: p' = C + scale * R(t) * Sh * (p - C) + T ; PIL wants the inverse map.
    m = np.array([[c, -s], [s, c]]) @ np.array([[1.0, shear], [0.0, 1.0]]) * scale
    inv = np.linalg.inv(m)
    a, b = inv[0]
    d, e = inv[1]
    ox, oy = cx - pad + tx, cy - pad + ty     # the centre's place in the output
    cc = cx - a * ox - b * oy
    f = cy - d * ox - e * oy
    return layer.transform(out_size, Image.AFFINE, (a, b, cc, d, e, f), resample=Image.BILINEAR)


def gradient_bg(size, c1, c2, vertical=True):
    w, h = size
    t = np.linspace(0, 1, h if vertical else w, dtype=np.float32)
    col = np.asarray(c1, np.float32)[None, :] * (1 - t[:, None]) + np.asarray(c2, np.float32)[None, :] * t[:, None]
    a = np.broadcast_to(col[:, None, :], (h, w, 3)) if vertical else np.broadcast_to(col[None, :, :], (h, w, 3))
    return Image.fromarray(a.astype(np.uint8), "RGB")


def encode_jpeg(img, quality):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


# =============================================================== faces

def face_identity(seed, ident):
    r = rng_for(seed, K_FACE, K_IDENTITY, ident)
    hair = jitter(r, HAIR[int(r.integers(len(HAIR)))], 10)
    if r.random() < 0.08:
        hair = any_colour(r, 0.5, 0.4)                  # dyed
    return dict(
        skin=jitter(r, SKIN[int(r.integers(len(SKIN)))], 8),
        fw=r.uniform(0.48, 0.62), fh=r.uniform(0.62, 0.78), fy=r.uniform(0.50, 0.56),
        hair=hair, style=int(r.integers(6)), hvol=r.uniform(0.02, 0.09), part=r.uniform(-0.15, 0.15),
        eye_y=r.uniform(-0.10, -0.02), eye_dx=r.uniform(0.15, 0.21), eye_r=r.uniform(0.024, 0.04),
        eye_open=r.uniform(0.55, 1.0), iris=jitter(r, IRIS[int(r.integers(len(IRIS)))], 10),
        brow_t=r.uniform(0.010, 0.028), brow_tilt=r.uniform(-0.025, 0.03), brow_gap=r.uniform(0.045, 0.075),
        nose_len=r.uniform(0.07, 0.14), nose_w=r.uniform(0.03, 0.07),
        mouth_y=r.uniform(0.15, 0.22), mouth_w=r.uniform(0.09, 0.18), lip=r.uniform(0.55, 0.85),
        glasses=r.random() < 0.25, glasses_col=any_colour(r, 0.2, 0.05), glasses_round=r.random() < 0.5,
        beard=r.random() < 0.2, mole=(r.uniform(-0.2, 0.2), r.uniform(-0.1, 0.2)) if r.random() < 0.3 else None,
        ear=r.uniform(0.035, 0.055),
    )


def draw_face(p, r, size, pad, age=0.0):
    """One face on a transparent layer of size + 2 * pad (the crop is the middle
    `size`; the margin keeps the shirt whole under rotation), with this image's
    pose and expression."""
    W, H = size
    layer = Image.new("RGBA", (W + 2 * pad, H + 2 * pad), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    yaw = r.uniform(-0.05, 0.05)
    pitch = r.uniform(-0.02, 0.02)
    cx, cy = pad + W * (0.5 + yaw * 0.3), pad + H * p["fy"]
    fw, fh = W * p["fw"], H * p["fh"]
    hair = mix(p["hair"], (200, 200, 200), min(1.0, age * 0.9)) if age > 0 else p["hair"]
    skin = p["skin"]
    shirt = any_colour(r, 0.1, 0.15)
    # shoulders and neck
    d.ellipse([cx - fw * 1.1, cy + fh * 0.42, cx + fw * 1.1, cy + fh * 1.4], fill=shirt)
    d.rectangle([cx - fw * 1.1, cy + fh * 0.91, cx + fw * 1.1, cy + fh * 2.0], fill=shirt)
    d.rectangle([cx - fw * 0.2, cy + fh * 0.25, cx + fw * 0.2, cy + fh * 0.6], fill=darker(skin, 0.92))
    # long hair behind the face
    if p["style"] in (2, 4):
        d.ellipse([cx - fw * 0.62, cy - fh * 0.6, cx + fw * 0.62, cy + fh * (0.55 if p["style"] == 2 else 0.2)],
                  fill=hair)
        if p["style"] == 2:
            d.rectangle([cx - fw * 0.62, cy, cx + fw * 0.62, cy + fh * 0.55], fill=hair)
    # ears
    er = W * p["ear"]
    for sx in (-1, 1):
        ex = cx + sx * fw * 0.5
        d.ellipse([ex - er, cy - er * 1.6, ex + er, cy + er * 1.4], fill=darker(skin, 0.95))
    # face
    d.ellipse([cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2], fill=skin)
    # hair on top
    hv = H * p["hvol"]
    st = p["style"]
    if st != 5:   # 5: bald
        top = [cx - fw * 0.54, cy - fh * 0.5 - hv, cx + fw * 0.54, cy - fh * 0.5 + fh * 0.55]
        d.chord(top, 180, 360, fill=hair)
        if st == 1:   # fringe
            d.rectangle([cx - fw * 0.42, cy - fh * 0.3, cx + fw * 0.42, cy - fh * 0.2], fill=hair)
        if st == 3:   # side part
            px = cx + p["part"] * fw
            d.polygon([(cx - fw * 0.5, cy - fh * 0.22), (px, cy - fh * 0.5), (cx + fw * 0.5, cy - fh * 0.3),
                       (cx + fw * 0.5, cy - fh * 0.15)], fill=hair)
    # features move with yaw/pitch
    fx = cx + yaw * fw * 1.6
    fy = cy + pitch * fh
    ey = fy + p["eye_y"] * fh
    edx, erd = p["eye_dx"] * W, p["eye_r"] * W
    blink = r.uniform(0.6, 1.0) * p["eye_open"]
    brow_col = darker(hair, 0.8)
    for sx in (-1, 1):
        ex = fx + sx * edx
        d.ellipse([ex - erd * 1.5, ey - erd * blink, ex + erd * 1.5, ey + erd * blink], fill=(245, 245, 240))
        d.ellipse([ex - erd * 0.8, ey - erd * 0.8 * blink, ex + erd * 0.8, ey + erd * 0.8 * blink], fill=p["iris"])
        d.ellipse([ex - erd * 0.35, ey - erd * 0.35 * blink, ex + erd * 0.35, ey + erd * 0.35 * blink], fill=(10, 10, 10))
        by = ey - p["brow_gap"] * H
        tilt = p["brow_tilt"] * H
        # outer end lower by `tilt` than the inner end (negative tilt: raised outer ends)
        d.line([(ex - erd * 1.8, by - sx * tilt), (ex + erd * 1.8, by + sx * tilt)],
               fill=brow_col, width=max(2, int(p["brow_t"] * H)))
    # nose
    nl, nw = p["nose_len"] * H, p["nose_w"] * W
    d.polygon([(fx, ey + erd), (fx - nw / 2, ey + nl), (fx + nw / 2, ey + nl)], fill=darker(skin, 0.85))
    # mouth (opens a little with the expression)
    my = fy + p["mouth_y"] * fh
    mw = p["mouth_w"] * W * r.uniform(0.9, 1.15)
    mo = H * r.uniform(0.006, 0.03)
    lip = darker(mix(skin, (190, 60, 70), 0.6), p["lip"] + 0.15)
    d.ellipse([fx - mw / 2, my - mo, fx + mw / 2, my + mo], fill=lip)
    d.line([(fx - mw / 2, my), (fx + mw / 2, my)], fill=darker(lip, 0.5), width=2)
    if p["beard"]:
        d.chord([cx - fw * 0.5, cy - fh * 0.2, cx + fw * 0.5, cy + fh * 0.5], 20, 160, fill=hair)
        d.ellipse([fx - mw / 2, my - mo, fx + mw / 2, my + mo], fill=lip)
    if p["mole"]:
        mx_, my_ = fx + p["mole"][0] * fw, fy + p["mole"][1] * fh
        d.ellipse([mx_ - 3, my_ - 3, mx_ + 3, my_ + 3], fill=darker(skin, 0.45))
    if age > 0.3:   # wrinkles
        for k in range(int(age * 4)):
            yy = cy - fh * 0.33 + k * H * 0.018
            d.line([(cx - fw * 0.2, yy), (cx + fw * 0.2, yy)], fill=darker(skin, 0.78), width=2)
    if p["glasses"]:
        gc = p["glasses_col"]
        for sx in (-1, 1):
            ex = fx + sx * edx
            box = [ex - erd * 2.2, ey - erd * 1.7, ex + erd * 2.2, ey + erd * 1.7]
            (d.ellipse if p["glasses_round"] else d.rectangle)(box, outline=gc, width=3)
        d.line([(fx - edx + erd * 2.2, ey), (fx + edx - erd * 2.2, ey)], fill=gc, width=3)
    return layer


def face_image(seed, ident, shot, age=0.0):
    """Image `shot` of face identity `ident` (a camera of FACE_CAMS, random per shot)."""
    p = face_identity(seed, ident)
    r = rng_for(seed, K_FACE, K_IMAGE, ident, shot)
    cam = Camera(seed, K_FACE, int(r.integers(FACE_CAMS)))
    big = (FACE_SIZE[0] * SS, FACE_SIZE[1] * SS)
    pad = big[0] // 4
    layer = draw_face(p, r, big, pad, age)
    layer = affine(layer, big, r.uniform(-10, 10), r.uniform(0.9, 1.08), r.uniform(-5, 5) * SS, r.uniform(-5, 5) * SS,
                   pad=pad)
    bg = gradient_bg(big, jitter(r, cam.bg[0], 40), jitter(r, cam.bg[1], 40), vertical=bool(r.integers(2)))
    bg.paste(layer, (0, 0), layer)
    img = bg.resize(FACE_SIZE, Image.BILINEAR, reducing_gap=None)
    return encode_jpeg(camera_finish(img, cam, r, FACE_SIZE), SYN_QUALITY)


# =============================================================== persons

def person_identity(seed, pid, key=K_IDENTITY):
    r = rng_for(seed, K_PERSON, key, pid)
    top = any_colour(r)
    return dict(
        skin=jitter(r, SKIN[int(r.integers(len(SKIN)))], 8),
        hair=jitter(r, HAIR[int(r.integers(len(HAIR)))], 10), long_hair=r.random() < 0.35,
        top=top, top2=any_colour(r), pattern=int(r.integers(4)), long_sleeves=r.random() < 0.5,
        bottom=any_colour(r, 0.1, 0.1), bottom_kind=int(r.choice(3, p=[0.6, 0.2, 0.2])),
        shoes=any_colour(r, 0.0, 0.05), bag=int(r.choice(3, p=[0.45, 0.3, 0.25])), bag_col=any_colour(r, 0.1, 0.1),
        bag_side=int(r.integers(2)) * 2 - 1, hat=r.random() < 0.2, hat_col=any_colour(r),
        bw=r.uniform(0.85, 1.15), bh=r.uniform(0.92, 1.04),
    )


def draw_person(p, r, size, back):
    W, H = size
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    cx = W / 2
    s = p["bh"]
    top_y, waist_y, foot_y = H * (0.5 - 0.35 * s), H * (0.5 + 0.05 * s), H * (0.5 + 0.45 * s)
    head_r = H * 0.06 * s
    head_cy = top_y - head_r * 0.2
    tw = W * 0.4 * p["bw"]
    neck_y = head_cy + head_r
    phase = r.uniform(-1, 1)        # walking
    leg_w = tw * 0.42
    # bag on the back (behind the body in a front view)
    if p["bag"] == 1 and not back:
        d.rectangle([cx - tw * 0.55, neck_y + H * 0.03, cx + tw * 0.55, waist_y - H * 0.02], fill=darker(p["bag_col"], 0.8))
    # legs
    for k, sx in enumerate((-1, 1)):
        lx = cx + sx * tw * 0.24 + phase * sx * W * 0.05
        x0, x1 = lx - leg_w / 2, lx + leg_w / 2
        if p["bottom_kind"] == 0:       # trousers
            d.polygon([(cx + sx * tw * 0.02 - leg_w * 0.5, waist_y), (cx + sx * tw * 0.45, waist_y), (x1, foot_y), (x0, foot_y)]
                      if sx > 0 else
                      [(cx - tw * 0.45, waist_y), (cx + leg_w * 0.5, waist_y), (x1, foot_y), (x0, foot_y)], fill=p["bottom"])
        else:
            d.rectangle([x0, waist_y, x1, foot_y], fill=p["skin"])
            if p["bottom_kind"] == 1:   # shorts
                d.rectangle([x0 - 1, waist_y, x1 + 1, waist_y + (foot_y - waist_y) * 0.4], fill=p["bottom"])
        d.ellipse([x0 - leg_w * 0.15, foot_y - H * 0.02, x1 + leg_w * 0.35 * (1 if not back else -1), foot_y + H * 0.025],
                  fill=p["shoes"])
    if p["bottom_kind"] == 2:           # skirt
        d.polygon([(cx - tw * 0.5, waist_y), (cx + tw * 0.5, waist_y), (cx + tw * 0.75, waist_y + (foot_y - waist_y) * 0.45),
                   (cx - tw * 0.75, waist_y + (foot_y - waist_y) * 0.45)], fill=p["bottom"])
    # arms
    arm_w = tw * 0.26
    for sx in (-1, 1):
        ax = cx + sx * (tw / 2 + arm_w * 0.45)
        swing = -phase * sx * W * 0.04
        hand_y = waist_y + H * 0.04
        sleeve_end = hand_y if p["long_sleeves"] else neck_y + (hand_y - neck_y) * 0.4
        d.polygon([(ax - arm_w / 2, neck_y + H * 0.02), (ax + arm_w / 2, neck_y + H * 0.02),
                   (ax + arm_w / 2 + swing, hand_y), (ax - arm_w / 2 + swing, hand_y)], fill=p["skin"])
        d.polygon([(ax - arm_w / 2 - 1, neck_y + H * 0.02), (ax + arm_w / 2 + 1, neck_y + H * 0.02),
                   (ax + arm_w / 2 + 1 + swing * (sleeve_end - neck_y) / (hand_y - neck_y), sleeve_end),
                   (ax - arm_w / 2 - 1 + swing * (sleeve_end - neck_y) / (hand_y - neck_y), sleeve_end)], fill=p["top"])
    # torso and its pattern
    torso = [cx - tw / 2, neck_y + H * 0.01, cx + tw / 2, waist_y + H * 0.01]
    d.rectangle(torso, fill=p["top"])
    pat = p["pattern"]
    if pat == 1:      # stripes
        n = 4
        hh = (torso[3] - torso[1]) / (2 * n)
        for k in range(n):
            y0 = torso[1] + (2 * k + 1) * hh
            d.rectangle([torso[0], y0, torso[2], y0 + hh], fill=p["top2"])
    elif pat == 2:    # two halves (mirrored in a back view)
        if back:
            d.rectangle([torso[0], torso[1], cx, torso[3]], fill=p["top2"])
        else:
            d.rectangle([cx, torso[1], torso[2], torso[3]], fill=p["top2"])
    elif pat == 3 and not back:   # chest logo
        d.rectangle([cx - tw * 0.22, torso[1] + H * 0.05, cx + tw * 0.22, torso[1] + H * 0.12], fill=p["top2"])
    # bags over the body
    if p["bag"] == 1:
        if back:
            d.rectangle([cx - tw * 0.38, neck_y + H * 0.04, cx + tw * 0.38, waist_y - H * 0.03], fill=p["bag_col"])
        else:
            for sx in (-1, 1):
                d.line([(cx + sx * tw * 0.3, neck_y + H * 0.01), (cx + sx * tw * 0.3, neck_y + H * 0.16)],
                       fill=darker(p["bag_col"], 0.7), width=max(2, int(W * 0.03)))
    elif p["bag"] == 2:
        bs = p["bag_side"] * (-1 if back else 1)
        bx = cx + bs * (tw / 2 + arm_w * 0.4)
        d.line([(cx - bs * tw * 0.3, neck_y + H * 0.01), (bx, waist_y)], fill=darker(p["bag_col"], 0.7),
               width=max(2, int(W * 0.025)))
        d.rectangle([bx - W * 0.09, waist_y - H * 0.02, bx + W * 0.09, waist_y + H * 0.07], fill=p["bag_col"])
    # head
    hb = [cx - head_r * 0.85, head_cy - head_r, cx + head_r * 0.85, head_cy + head_r]
    if p["long_hair"]:
        d.rectangle([cx - head_r * 0.95, head_cy, cx + head_r * 0.95, head_cy + head_r * 1.9], fill=p["hair"])
    d.ellipse(hb, fill=p["hair"] if back else p["skin"])
    if not back:
        d.chord([hb[0] - 1, hb[1] - 2, hb[2] + 1, hb[3] - head_r * 0.4], 180, 360, fill=p["hair"])
        ey = head_cy - head_r * 0.05
        for sx in (-1, 1):
            ex = cx + sx * head_r * 0.35
            d.ellipse([ex - 2, ey - 2, ex + 2, ey + 2], fill=(20, 20, 20))
    if p["hat"]:
        d.chord([hb[0] - 2, hb[1] - head_r * 0.3, hb[2] + 2, hb[3] - head_r * 0.5], 180, 360, fill=p["hat_col"])
        d.rectangle([hb[0] - head_r * 0.3, head_cy - head_r * 0.45, hb[2] + head_r * 0.3, head_cy - head_r * 0.3],
                    fill=p["hat_col"])
    return layer


def street_bg(r, cam, size):
    W, H = size
    img = gradient_bg(size, jitter(r, cam.bg[0], 18), jitter(r, cam.bg[1], 18))
    d = ImageDraw.Draw(img)
    hy = H * (cam.horizon + r.uniform(-0.05, 0.05))
    d.rectangle([0, hy, W, H], fill=jitter(r, cam.bg[2], 15))
    for _ in range(int(r.integers(0, 4))):       # clutter
        x, y = r.uniform(0, W), r.uniform(0, H)
        w, h = r.uniform(0.05, 0.3) * W, r.uniform(0.03, 0.2) * H
        d.rectangle([x, y, x + w, y + h], fill=jitter(r, any_colour(r, 0.0, 0.2), 10))
    return img


def person_image(seed, pid, cam_no, shot, distractor=False):
    """Image `shot` of person `pid` seen by Market camera cam_no (1-based)."""
    p = person_identity(seed, pid, K_DISTRACTOR if distractor else K_IDENTITY)
    r = rng_for(seed, K_PERSON, K_IMAGE, pid, cam_no, shot, int(distractor))
    cam = Camera(seed, K_PERSON, cam_no)
    big = (PERSON_SIZE[0] * SS, PERSON_SIZE[1] * SS)
    bg = street_bg(r, cam, big)
    back = bool(r.random() < (0.75 if cam.side else 0.25))
    if not (distractor and r.random() < 0.5):   # half of the distractors are background only
        layer = draw_person(p, r, big, back)
        if r.random() < 0.5:
            layer = layer.transpose(Image.FLIP_LEFT_RIGHT)
        sc = r.uniform(0.88, 1.04)
        layer = affine(layer, big, r.uniform(-3, 3), sc, r.uniform(-0.06, 0.06) * big[0], r.uniform(-0.04, 0.04) * big[1])
        if distractor:   # a badly cropped box
            layer = affine(layer, big, 0, 1.0, r.uniform(-0.5, 0.5) * big[0], r.uniform(-0.4, 0.4) * big[1])
        bg.paste(layer, (0, 0), layer)
    img = bg.resize(PERSON_SIZE, Image.BILINEAR, reducing_gap=None)
    return encode_jpeg(camera_finish(img, cam, r, PERSON_SIZE), SYN_QUALITY)


# =============================================================== vehicles

BODY_COLOURS = [(235, 235, 235), (25, 25, 28), (160, 163, 168), (95, 98, 104), (170, 25, 30), (30, 60, 150),
                (35, 100, 55), (225, 190, 40), (110, 75, 45), (230, 120, 30), (120, 170, 210), (90, 20, 60)]


def vehicle_identity(seed, vid):
    r = rng_for(seed, K_VEHICLE, K_IDENTITY, vid)
    body = jitter(r, BODY_COLOURS[int(r.integers(len(BODY_COLOURS)))], 14)
    return dict(
        body=body, kind=int(r.choice(5, p=[0.35, 0.25, 0.15, 0.13, 0.12])),  # sedan suv hatch van truck
        cargo=any_colour(r, 0.0, 0.3) if r.random() < 0.6 else body,
        window=jitter(r, (40, 55, 70), 20), stripe=any_colour(r) if r.random() < 0.35 else None,
        stripe_y=r.uniform(0.55, 0.7), rack=r.random() < 0.25, sticker=(r.uniform(0.3, 0.7), any_colour(r))
        if r.random() < 0.35 else None, rim=jitter(r, (180, 180, 185), 40), length=r.uniform(0.78, 0.92),
        height=r.uniform(0.9, 1.1), wheel=r.uniform(0.09, 0.12), lights=jitter(r, (250, 230, 160), 10),
    )


def draw_vehicle(p, size):
    W, H = size
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    L = W * p["length"]
    x0, x1 = (W - L) / 2, (W + L) / 2
    base = H * 0.74
    hgt = H * p["height"]
    wr = W * p["wheel"]
    d.ellipse([x0 - W * 0.02, base + wr * 0.5, x1 + W * 0.02, base + wr * 1.2], fill=(0, 0, 0, 90))   # shadow
    k = p["kind"]
    belt = base - hgt * 0.26
    roof = base - hgt * (0.5 if k in (0, 2) else 0.6 if k == 1 else 0.66)
    if k == 3:       # van: one tall box
        d.rounded_rectangle([x0, roof, x1, base], radius=int(W * 0.04), fill=p["body"])
        d.polygon([(x1 - L * 0.16, roof + hgt * 0.05), (x1 - W * 0.01, belt - hgt * 0.02), (x1 - L * 0.16, belt - hgt * 0.02)],
                  fill=p["window"])
        d.rectangle([x0 + L * 0.08, roof + hgt * 0.06, x1 - L * 0.22, belt - hgt * 0.04], fill=p["window"])
    elif k == 4:     # truck: cab + cargo box
        d.rectangle([x0, roof - hgt * 0.05, x0 + L * 0.68, base - hgt * 0.06], fill=p["cargo"])
        d.rounded_rectangle([x0 + L * 0.7, roof + hgt * 0.08, x1, base], radius=int(W * 0.03), fill=p["body"])
        d.rectangle([x0 + L * 0.78, roof + hgt * 0.13, x1 - L * 0.03, belt - hgt * 0.02], fill=p["window"])
        d.rectangle([x0, base - hgt * 0.1, x1, base], fill=darker(p["body"], 0.7))
    else:            # sedan, suv, hatchback
        d.rounded_rectangle([x0, belt, x1, base], radius=int(W * 0.03), fill=p["body"])
        front = x1 - L * (0.22 if k == 0 else 0.16)
        rear = x0 + L * (0.2 if k == 0 else 0.03)
        d.polygon([(rear, belt), (rear + L * 0.08, roof), (front - L * 0.12, roof), (front, belt)], fill=p["body"])
        d.polygon([(rear + L * 0.04, belt - hgt * 0.01), (rear + L * 0.1, roof + hgt * 0.03),
                   (front - L * 0.13, roof + hgt * 0.03), (front - L * 0.03, belt - hgt * 0.01)], fill=p["window"])
        pillar = (rear + front) / 2
        d.line([(pillar, roof), (pillar, belt)], fill=p["body"], width=max(2, int(W * 0.02)))
    if p["stripe"] is not None:
        sy = base - hgt * (p["stripe_y"] - 0.4) * 0.6
        d.rectangle([x0 + 2, sy, x1 - 2, sy + hgt * 0.035], fill=p["stripe"])
    if p["rack"]:
        d.rectangle([x0 + L * 0.25, roof - hgt * 0.05, x1 - L * 0.3, roof - hgt * 0.02], fill=(40, 40, 40))
    if p["sticker"] is not None:
        sx = x0 + L * p["sticker"][0]
        d.ellipse([sx - W * 0.03, belt + hgt * 0.04, sx + W * 0.03, belt + hgt * 0.04 + W * 0.06], fill=p["sticker"][1])
    d.rectangle([x1 - W * 0.025, belt + hgt * 0.03, x1, belt + hgt * 0.09], fill=p["lights"])          # head light
    d.rectangle([x0, belt + hgt * 0.03, x0 + W * 0.02, belt + hgt * 0.09], fill=(200, 30, 30))       # tail light
    for wx in (x0 + L * 0.2, x1 - L * 0.2):
        d.ellipse([wx - wr, base - wr * 0.8, wx + wr, base + wr * 1.2], fill=(20, 20, 20))
        d.ellipse([wx - wr * 0.5, base - wr * 0.3, wx + wr * 0.5, base + wr * 0.7], fill=p["rim"])
    return layer


def road_bg(r, cam, size):
    W, H = size
    img = gradient_bg(size, jitter(r, cam.bg[0], 15), jitter(r, cam.bg[1], 15))
    d = ImageDraw.Draw(img)
    hy = H * (cam.horizon * 0.6 + r.uniform(-0.04, 0.04))
    road = jitter(r, mix(cam.bg[2], (90, 90, 90), 0.6), 10)
    d.rectangle([0, hy, W, H], fill=road)
    ly = H * r.uniform(0.82, 0.95)
    for x in range(int(r.uniform(-20, 0)), W, 30):
        d.rectangle([x, ly, x + 15, ly + 3], fill=(220, 220, 210))
    return img


def vehicle_image(seed, vid, cam_no, shot):
    p = vehicle_identity(seed, vid)
    r = rng_for(seed, K_VEHICLE, K_IMAGE, vid, cam_no, shot)
    cam = Camera(seed, K_VEHICLE, cam_no)
    big = (VEHICLE_SIZE[0] * SS, VEHICLE_SIZE[1] * SS)
    bg = road_bg(r, cam, big)
    layer = draw_vehicle(p, big)
    if (r.random() < 0.8) == bool(cam.side):     # direction of travel, mostly per camera
        layer = layer.transpose(Image.FLIP_LEFT_RIGHT)
    layer = affine(layer, big, r.uniform(-4, 4), r.uniform(0.82, 1.0), r.uniform(-0.05, 0.05) * big[0],
                   r.uniform(-0.05, 0.05) * big[1], shear=r.uniform(-0.25, 0.25))
    bg.paste(layer, (0, 0), layer)
    img = bg.resize(VEHICLE_SIZE, Image.BILINEAR, reducing_gap=None)
    return encode_jpeg(camera_finish(img, cam, r, VEHICLE_SIZE), SYN_QUALITY)


# =============================================================== Fashion-MNIST

def read_idx_gz(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def product_image(pixels):
    img = Image.fromarray(pixels, "L").convert("RGB").resize(PRODUCT_SIZE, Image.BICUBIC)
    return encode_jpeg(img, PRODUCT_QUALITY)


# =============================================================== rendering jobs

def render(job):
    kind = job[0]
    if kind == "face":
        return face_image(*job[1:])
    if kind == "person":
        return person_image(*job[1:])
    if kind == "vehicle":
        return vehicle_image(*job[1:])
    if kind == "product":
        return product_image(job[1])
    raise ValueError(kind)


class Renderer:
    def __init__(self, jobs):
        self.pool = None
        if jobs > 1:
            import multiprocessing as mp
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
            self.pool = ctx.Pool(jobs)

    def map(self, jobs):
        if self.pool is None:
            return [render(j) for j in jobs]
        return self.pool.map(render, jobs, chunksize=max(1, len(jobs) // 64))

    def close(self):
        if self.pool is not None:
            self.pool.close()
            self.pool.join()


def write_file(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# =============================================================== the sets

def make_face(root, seed, scale, R):
    out = {}
    n_ids, per_id = count(100, scale, 4), 10
    jobs = [("face", seed, ident, shot) for ident in range(n_ids) for shot in range(per_id)]
    blobs = R.map(jobs)
    d = os.path.join(root, "ms1m-retinaface-t1")
    os.makedirs(d, exist_ok=True)
    w = IndexedRecordIOWriter(os.path.join(d, "train.idx"), os.path.join(d, "train.rec"))
    n = len(blobs)
    w.write_idx(0, recordio_pack(2, [n + 1, n + 1 + n_ids], 0, 0, b""))
    for k, ((_, _, ident, _), blob) in enumerate(zip(jobs, blobs)):
        w.write_idx(k + 1, recordio_pack(0, ident, k + 1, 0, blob))
    for ident in range(n_ids):
        first = 1 + ident * per_id
        w.write_idx(n + 1 + ident, recordio_pack(2, [first, first + per_id], n + 1 + ident, 0, b""))
    w.close()
    write_file(os.path.join(d, "property"), "%d,%d,%d\n" % (n_ids, FACE_SIZE[1], FACE_SIZE[0]))
    out["train"] = {"sets": ["MS1M-V3"], "layout": "ms1m-retinaface-t1/{train.rec,train.idx}",
                    "identities": n_ids, "images": n, "identity_numbers": [0, n_ids - 1]}
    # verification sets: LFW (light/pose) and AgeDB_30 (plus an age change)
    fdir = os.path.join(root, "faces_emore_val")
    ev = {}
    for name, stem in (("LFW", "lfw"), ("AgeDB_30", "agedb_30")):
        n_pairs, n_eval, pool = count(300, scale, 20), count(100, scale, 6), 4
        base = FACE_EVAL_BASE[stem]
        r = rng_for(seed, K_FACE, K_PLAN, base)
        ages = r.uniform(0, 1, (n_eval, pool)) if stem == "agedb_30" else np.zeros((n_eval, pool))
        issame = np.array([1] * (n_pairs // 2) + [0] * (n_pairs - n_pairs // 2), dtype=bool)
        r.shuffle(issame)
        shots = []      # (identity, pool image) of every pair image, in filelist order
        for same in issame:
            a = int(r.integers(n_eval))
            if same:
                j1, j2 = (int(j) for j in r.choice(pool, 2, replace=False))
                shots += [(a, j1), (a, j2)]
            else:
                b = (a + 1 + int(r.integers(n_eval - 1))) % n_eval
                shots += [(a, int(r.integers(pool))), (b, int(r.integers(pool)))]
        files = {}      # the images the pairs use, numbered in order of first use
        for sh in shots:
            files.setdefault(sh, len(files))
        blobs = R.map([("face", seed, base + i, 1000 + j, float(ages[i, j])) for i, j in files])
        for k, blob in enumerate(blobs):
            write_file(os.path.join(fdir, stem, "%05d.jpg" % k), blob)
        lines = ["%s/%05d.jpg %d\n" % (stem, files[(i, j)], base + i) for i, j in shots]
        write_file(os.path.join(fdir, stem + ".filelist"), "".join(lines))
        np.save(os.path.join(fdir, stem + "_label.npy"), issame)
        ev[name] = {"layout": "faces_emore_val/%s.filelist + %s_label.npy" % (stem, stem), "pairs": int(n_pairs),
                    "same_pairs": int(issame.sum()), "images": len(blobs),
                    "identities": len({i for i, _ in files}),
                    "identity_numbers": [base, base + n_eval - 1]}
    out["eval"] = ev
    return out


def market_name(pid, cam, frame):
    if pid < 0:
        return "-1_c%ds1_%06d_00.jpg" % (cam, frame)
    return "%04d_c%ds1_%06d_01.jpg" % (pid, cam, frame)


def make_person(root, seed, scale, R):
    n_train, n_eval = count(100, scale, 6), count(50, scale, 4)
    r = rng_for(seed, K_PERSON, K_PLAN)
    pids = r.permutation(np.arange(1, max(1501, n_train + n_eval + 1))) [: n_train + n_eval]
    train_pids, eval_pids = sorted(int(x) for x in pids[:n_train]), sorted(int(x) for x in pids[n_train:])
    frame = {c: int(r.integers(1000, 5000)) for c in range(1, MARKET_CAMS + 1)}

    def next_frame(c):
        frame[c] += int(r.integers(20, 400))
        return frame[c]

    def shots(pid):
        cams = sorted(int(c) for c in r.choice(np.arange(1, MARKET_CAMS + 1), int(r.integers(2, 6)), replace=False))
        return [(c, k) for c in cams for k in range(int(r.integers(2, 4)))]

    base = os.path.join(root, "Market-1501-v15.09.15")
    files = []          # (folder, name, job)
    for pid in train_pids:
        for c, k in shots(pid):
            files.append(("bounding_box_train", market_name(pid, c, next_frame(c)), ("person", seed, pid, c, k)))
    n_query = n_gallery = n_distract = 0
    for pid in eval_pids:
        sh = shots(pid)
        cams = sorted({c for c, _ in sh})
        qcams = [int(c) for c in r.choice(cams, min(len(cams) - 1, int(r.integers(1, 3))), replace=False)]
        for c, k in sh:
            folder = "query" if (c in qcams and k == 0) else "bounding_box_test"
            n_query += folder == "query"
            n_gallery += folder != "query"
            files.append((folder, market_name(pid, c, next_frame(c)), ("person", seed, pid, c, k)))
    n_distract = max(2, int(round(0.05 * n_gallery)))
    for k in range(n_distract):
        c = int(r.integers(1, MARKET_CAMS + 1))
        files.append(("bounding_box_test", market_name(0, c, next_frame(c)), ("person", seed, 100000 + k, c, 0, True)))
    for k in range(2):
        c = int(r.integers(1, MARKET_CAMS + 1))
        files.append(("bounding_box_test", market_name(-1, c, next_frame(c)), ("person", seed, 200000 + k, c, 0, True)))
    for (folder, name, _), blob in zip(files, R.map([f[2] for f in files])):
        write_file(os.path.join(base, folder, name), blob)
    n_train_img = sum(f[0] == "bounding_box_train" for f in files)
    return {
        "train": {"sets": ["Market1501"], "layout": "Market-1501-v15.09.15/bounding_box_train",
                  "identities": n_train, "images": n_train_img, "cameras": MARKET_CAMS, "pids": train_pids},
        "eval": {"Market1501": {"layout": "Market-1501-v15.09.15/{query,bounding_box_test}", "identities": n_eval,
                                "query": n_query, "gallery": n_gallery + n_distract, "distractors_pid0": n_distract,
                                "junk_pid-1": 2, "cameras": MARKET_CAMS, "pids": eval_pids}},
    }


def make_vehicle(root, seed, scale, R):
    n_train, n_eval = count(100, scale, 6), count(50, scale, 4)
    r = rng_for(seed, K_VEHICLE, K_PLAN)
    vids = r.permutation(np.arange(1, max(777, n_train + n_eval + 1)))[: n_train + n_eval]
    train_vids, eval_vids = sorted(int(x) for x in vids[:n_train]), sorted(int(x) for x in vids[n_train:])
    frame = {c: int(r.integers(10000, 90000)) for c in range(1, VERI_CAMS + 1)}

    def name(vid, c):
        frame[c] += int(r.integers(5, 300))
        return "%04d_c%03d_%08d_0.jpg" % (vid, c, frame[c])

    def shots(vid):
        cams = sorted(int(c) for c in r.choice(np.arange(1, VERI_CAMS + 1), int(r.integers(2, 7)), replace=False))
        sh = [(c, k) for c in cams for k in range(int(r.integers(1, 4)))]
        while len(sh) < 4:      # at least K = 4 images per vehicle
            sh.append((cams[-1], len(sh) + 10))
        return sh

    files = []
    for vid in train_vids:
        for c, k in shots(vid):
            files.append((["image_train"], name(vid, c), ("vehicle", seed, vid, c, k)))
    n_query = n_test = 0
    for vid in eval_vids:
        sh = shots(vid)
        cams = sorted({c for c, _ in sh})
        qcams = {int(c) for c in r.choice(cams, min(3, len(cams)), replace=False)}
        for c, k in sh:
            first = k == min(kk for cc, kk in sh if cc == c)
            folders = ["image_query", "image_test"] if (c in qcams and first) else ["image_test"]
            n_query += len(folders) == 2
            n_test += 1
            files.append((folders, name(vid, c), ("vehicle", seed, vid, c, k)))
    for (folders, nm, _), blob in zip(files, R.map([f[2] for f in files])):
        for folder in folders:
            write_file(os.path.join(root, "veri", folder, nm), blob)
    n_train_img = sum(f[0] == ["image_train"] for f in files)
    return {
        "train": {"sets": ["VeRi"], "layout": "veri/image_train", "identities": n_train, "images": n_train_img,
                  "cameras": VERI_CAMS, "pids": train_vids},
        "eval": {"VeRi": {"layout": "veri/{image_query,image_test}", "identities": n_eval, "query": n_query,
                          "gallery": n_test, "cameras": VERI_CAMS, "pids": eval_vids,
                          "note": "the query images are also in image_test, as in VeRi-776"}},
    }


def make_product(root, seed, scale, R):
    n_train, n_test = count(300, scale, 10), count(100, scale, 5)
    base = os.path.join(root, "Stanford_Online_Products")
    r = rng_for(seed, K_PRODUCT, K_PLAN)
    out = {}
    for split, src, classes, per in (("train", "train", PRODUCT_TRAIN_CLASSES, n_train),
                                     ("test", "t10k", PRODUCT_EVAL_CLASSES, n_test)):
        images = read_idx_gz(os.path.join(FMNIST_DIR, "%s-images-idx3-ubyte.gz" % src))
        labels = read_idx_gz(os.path.join(FMNIST_DIR, "%s-labels-idx1-ubyte.gz" % src))
        rows = []
        for c in classes:
            idx = np.flatnonzero(labels == c)
            pick = np.sort(r.choice(idx, min(per, idx.size), replace=False))
            rows += [("%s_final/%s_%05d.jpg" % (FMNIST_CLASSES[c], split, int(i)), c, int(i)) for i in pick]
        blobs = R.map([("product", images[i]) for _, _, i in rows])
        for (rel, _, _), blob in zip(rows, blobs):
            write_file(os.path.join(base, rel), blob)
        write_file(os.path.join(base, split + ".txt"), "".join("%s,%d\n" % (rel, c) for rel, c, _ in rows))
        out[split] = {"classes": list(classes), "images": len(rows), "per_class": per, "source": "%s-images-idx3-ubyte.gz" % src}
    return {
        "train": {"sets": ["SOP"], "layout": "Stanford_Online_Products/train.txt", "identities": len(PRODUCT_TRAIN_CLASSES),
                  "images": out["train"]["images"], "classes": out["train"]["classes"],
                  "class_names": [FMNIST_CLASSES[c] for c in PRODUCT_TRAIN_CLASSES], "source": out["train"]["source"]},
        "eval": {"SOP": {"layout": "Stanford_Online_Products/test.txt", "images": out["test"]["images"],
                         "classes": out["test"]["classes"], "class_names": [FMNIST_CLASSES[c] for c in PRODUCT_EVAL_CLASSES],
                         "source": out["test"]["source"]}},
    }


README = """ufo demo data (written by tools/make_demo_data.py, seed {seed}, scale {scale})
==================================================================

A small FASTREID_DATASETS root in the exact layouts of the benchmarks, for
`make run` (train + evaluate a small AllInOne model on all four tasks).

SYNTHETIC: face, person and vehicle. Their identities are procedurally drawn
(appearance parameters drawn from a per-identity random stream), and every image
of an identity is a different "shot": camera light, colour cast, contrast,
resolution, blur, noise, scale, rotation, translation, pose/view. They are NOT
faces, people or vehicles of any real dataset, and numbers measured on them are
not comparable with the published benchmark numbers.

REAL: product = Fashion-MNIST (Debian's dataset-fashion-mnist, Zalando, MIT
licence), as an open-set retrieval task like Stanford Online Products:
  training classes 0-5:   {train_names}
  evaluation classes 6-9: {eval_names} (never seen in training)
28x28 images upscaled to 32x32, JPEG quality 95.

Evaluation identities never occur in training (every task).

{table}

  ufo eval --model M --data ROOT --datasets {datasets}
  (recipe training sets: face MS1M-V3, person Market1501, vehicle VeRi, product SOP)

manifest.json has the same in machine-readable form.
"""


def tree_stats(root):
    n = size = 0
    for dp, _, fns in os.walk(root):
        for f in fns:
            n += 1
            size += os.path.getsize(os.path.join(dp, f))
    return n, size


def make_demo(root, seed=0, scale=1.0, jobs=1):
    if scale <= 0:
        raise ValueError("--scale must be > 0")
    os.makedirs(root, exist_ok=True)
    R = Renderer(jobs)
    try:
        tasks = {
            "face": make_face(root, seed, scale, R),
            "person": make_person(root, seed, scale, R),
            "vehicle": make_vehicle(root, seed, scale, R),
            "product": make_product(root, seed, scale, R),
        }
    finally:
        R.close()
    for t in ("face", "person", "vehicle"):
        tasks[t]["synthetic"] = True
        tasks[t]["image_size"] = list({"face": FACE_SIZE, "person": PERSON_SIZE, "vehicle": VEHICLE_SIZE}[t])
    tasks["product"]["synthetic"] = False
    tasks["product"]["image_size"] = list(PRODUCT_SIZE)
    for t in tasks:
        tasks[t]["ufo_eval"] = list(tasks[t]["eval"])
    datasets = ["LFW", "AgeDB_30", "Market1501", "VeRi", "SOP"]
    n_files, n_bytes = tree_stats(root)
    manifest = {
        "version": 1, "generator": "tools/make_demo_data.py", "seed": seed, "scale": scale,
        "synthetic_tasks": ["face", "person", "vehicle"], "real_tasks": ["product"],
        "tasks": tasks,
        "ufo_eval_datasets": ",".join(datasets),
        "eval_heads": {"LFW": "face", "AgeDB_30": "face", "Market1501": "person", "VeRi": "vehicle", "SOP": "product"},
        "recipe_sets": {"face": "MS1M-V3", "person": "Market1501", "vehicle": "VeRi", "product": "SOP"},
        "data_files": n_files, "data_bytes": n_bytes,
    }
    f, p, v, s = tasks["face"], tasks["person"], tasks["vehicle"], tasks["product"]
    rows = [("task", "training set: layout", "evaluation set (ufo eval name): layout"),
            ("face", "MS1M-V3: ms1m-retinaface-t1/train.rec+.idx", "LFW, AgeDB_30: faces_emore_val/<stem>.filelist"),
            ("", "%d identities, %d images" % (f["train"]["identities"], f["train"]["images"]),
             "%d + %d pairs, unseen identities" % (f["eval"]["LFW"]["pairs"], f["eval"]["AgeDB_30"]["pairs"])),
            ("person", "Market1501: .../bounding_box_train", "Market1501: .../query, bounding_box_test"),
            ("", "%d identities, %d images" % (p["train"]["identities"], p["train"]["images"]),
             "%d queries / %d gallery, %d identities" % (p["eval"]["Market1501"]["query"], p["eval"]["Market1501"]["gallery"],
                                                        p["eval"]["Market1501"]["identities"])),
            ("vehicle", "VeRi: veri/image_train", "VeRi: veri/image_query, image_test"),
            ("", "%d identities, %d images" % (v["train"]["identities"], v["train"]["images"]),
             "%d queries / %d gallery, %d identities" % (v["eval"]["VeRi"]["query"], v["eval"]["VeRi"]["gallery"],
                                                        v["eval"]["VeRi"]["identities"])),
            ("product", "SOP: Stanford_Online_Products/train.txt", "SOP: Stanford_Online_Products/test.txt"),
            ("", "6 classes, %d images" % s["train"]["images"], "4 classes, %d images" % s["eval"]["SOP"]["images"])]
    table = "\n".join("  %-8s %-44s %s" % r for r in rows)
    write_file(os.path.join(root, "README.txt"), README.format(
        seed=seed, scale=scale, train_names=", ".join(s["train"]["class_names"]),
        eval_names=", ".join(s["eval"]["SOP"]["class_names"]), table=table, datasets=",".join(datasets)))
    with open(os.path.join(root, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
        fh.write("\n")
    return manifest


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", help="folder to write (becomes a FASTREID_DATASETS root)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--scale", type=float, default=1.0, help="size factor: identities, images, pairs (default 1)")
    ap.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1),
                    help="worker processes (default: the cores, at most 8); the output does not depend on it")
    a = ap.parse_args(argv)
    if a.scale <= 0:
        ap.error("--scale must be > 0")
    if not os.path.isdir(FMNIST_DIR):
        print("make_demo_data: missing %s (install Debian's dataset-fashion-mnist)" % FMNIST_DIR, file=sys.stderr)
        return 1
    t0 = time.time()
    m = make_demo(a.root, a.seed, a.scale, max(1, a.jobs))
    t = m["tasks"]
    print("make_demo_data: %s: %d files, %.1f MB in %.1f s (seed %d, scale %g)" % (
        a.root, m["data_files"], m["data_bytes"] / 1e6, time.time() - t0, a.seed, a.scale))
    for name in ("face", "person", "vehicle", "product"):
        tr = t[name]["train"]
        ev = ", ".join("%s %s" % (k, "%d pairs" % v["pairs"] if "pairs" in v else
                                  "%d/%d" % (v["query"], v["gallery"]) if "query" in v else "%d images" % v["images"])
                       for k, v in t[name]["eval"].items())
        print("  %-8s %-10s %5d ids %6d images | %s%s" % (name, "+".join(tr["sets"]), tr["identities"], tr["images"], ev,
                                                         "" if not t[name]["synthetic"] else "  (synthetic)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
