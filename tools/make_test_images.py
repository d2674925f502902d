#!/usr/bin/python3
"""Writes a deterministic set of test images for the preprocessing parity test.

usage: /usr/bin/python3 tools/make_test_images.py OUTDIR

JPEGs (Pillow's encoder: qualities, 4:4:4 / 4:2:2 / 4:2:0, progressive,
optimised, greyscale, CMYK, EXIF orientations 1..8 and hand-made EXIF blocks
that exercise Pillow's parsing rules) and PNGs (a small hand-written encoder,
so that every colour type / bit depth / interlacing / palette / tRNS / eXIf /
text-chunk combination can be produced, not only what Pillow's PNG writer
emits). Content is smooth gradients + noise + sharp edges, so that resampling
bugs show. Same seed, same bytes.

make_all(outdir) -> list of file paths is the importable entry point.
"""
import io
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

# ---------------------------------------------------------------- content


def content(h, w, seed, channels=3):
    """float array h x w x channels in [0, 255]: gradients, noise, edges."""
    rs = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    fx, fy = x / max(w - 1, 1), y / max(h - 1, 1)
    base = [
        255 * fx,
        255 * fy,
        127.5 + 127.5 * np.sin(6.0 * np.hypot(fx - 0.4, fy - 0.6) * np.pi),
        255 * (1 - fx) * fy,
    ]
    out = np.stack([base[(c + seed) % 4] for c in range(channels)], -1)
    # sharp edges: a checkerboard patch, rectangles of flat colour, a line
    cs = int(rs.randint(3, 9))
    cb = (((x // cs) + (y // cs)) % 2 == 0) & (fx > 0.55) & (fy < 0.45)
    out[cb] = 255 - out[cb]
    for _ in range(4):
        x0, y0 = rs.randint(0, max(w, 1)), rs.randint(0, max(h, 1))
        x1, y1 = x0 + rs.randint(1, max(w // 3, 2)), y0 + rs.randint(1, max(h // 3, 2))
        out[y0:y1, x0:x1] = rs.randint(0, 256, channels)
    line = np.abs((y - 0.7 * x) - h * 0.2) < 1.0
    out[line] = 0
    out += rs.normal(0, 12, out.shape)
    return np.clip(out, 0, 255)


def rgb8(h, w, seed):
    return content(h, w, seed).astype(np.uint8)


# ------------------------------------------------------------ PNG writer

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def _pack_rows(a, bitdepth):
    rows = []
    for y in range(a.shape[0]):
        r = a[y].reshape(-1)
        if bitdepth == 16:
            rows.append(r.astype(">u2").tobytes())
        elif bitdepth == 8:
            rows.append(r.astype(np.uint8).tobytes())
        else:
            per = 8 // bitdepth
            pad = (-len(r)) % per
            rr = np.concatenate([r.astype(np.uint16), np.zeros(pad, np.uint16)]).reshape(-1, per)
            b = np.zeros(rr.shape[0], np.uint16)
            for i in range(per):
                b = (b << bitdepth) | rr[:, i]
            rows.append(b.astype(np.uint8).tobytes())
    return rows


def _filter_rows(rows, bpp, seed):
    """Applies a mix of PNG filters (0..4), so the decoder's unfiltering is exercised."""
    out = b""
    prev = None
    for i, r in enumerate(rows):
        cur = np.frombuffer(r, np.uint8).astype(np.int32)
        up = prev if prev is not None else np.zeros_like(cur)
        ft = (i + seed) % 5
        left = np.concatenate([np.zeros(bpp, np.int32), cur[:-bpp]]) if len(cur) > bpp else np.zeros_like(cur)
        upleft = np.concatenate([np.zeros(bpp, np.int32), up[:-bpp]]) if len(cur) > bpp else np.zeros_like(cur)
        if ft == 0:
            f = cur
        elif ft == 1:
            f = cur - left
        elif ft == 2:
            f = cur - up
        elif ft == 3:
            f = cur - (left + up) // 2
        else:
            p = left + up - upleft
            pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
            f = cur - pred
        out += bytes([ft]) + (f & 0xFF).astype(np.uint8).tobytes()
        prev = cur
    return out


def write_png(a, bitdepth, colortype, palette=None, trns=None, interlace=False, before=b"", after=b"",
              idat_pieces=1, seed=0):
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[:, :, None]
    h, w, c = a.shape
    bpp = max(1, c * bitdepth // 8)
    raw = b""
    if interlace:
        for (x0, y0, dx, dy) in ADAM7:
            sub = a[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += _filter_rows(_pack_rows(sub, bitdepth), bpp, seed)
    else:
        raw = _filter_rows(_pack_rows(a, bitdepth), bpp, seed)
    z = zlib.compress(raw, 6)
    out = b"\x89PNG\r\n\x1a\n"
    out += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bitdepth, colortype, 0, 0, 1 if interlace else 0))
    out += before
    if palette is not None:
        out += png_chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).reshape(-1)))
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    step = -(-len(z) // idat_pieces)
    for i in range(0, len(z), step):
        out += png_chunk(b"IDAT", z[i:i + step])
    out += after
    out += png_chunk(b"IEND", b"")
    return out


# ------------------------------------------------------------ EXIF blocks


def exif_block(entries, endian=">", ifd_offset=8, tail=b""):
    """TIFF structure with one IFD. entries: (tag, type, count, 4-byte value field).
    `tail` is appended after the IFD (for out-of-line values; offsets are
    counted from the TIFF header)."""
    head = (b"MM\x00*" if endian == ">" else b"II*\x00") + struct.pack(endian + "I", ifd_offset)
    ifd = struct.pack(endian + "H", len(entries))
    for tag, typ, count, val in entries:
        ifd += struct.pack(endian + "HHI", tag, typ, count) + val
    ifd += struct.pack(endian + "I", 0)
    body = head + b"\0" * (ifd_offset - 8) + ifd if ifd_offset >= 8 else head
    return b"Exif\x00\x00" + body + tail


def short_val(v, endian=">"):
    return struct.pack(endian + "HH", v, 0)


def after_ifd(n_entries, ifd_offset=8):
    """Offset of the first byte after an IFD with n entries."""
    return ifd_offset + 2 + 12 * n_entries + 4


def insert_app_segment(jpeg, marker, payload, after_first_app1=False):
    """Inserts an APPn segment after SOI (or after the first APP1)."""
    seg = b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload
    pos = 2
    if after_first_app1:
        while jpeg[pos] == 0xFF and jpeg[pos + 1] != 0xE1:
            pos += 2 + struct.unpack(">H", jpeg[pos + 2:pos + 4])[0]
        pos += 2 + struct.unpack(">H", jpeg[pos + 2:pos + 4])[0]
    return jpeg[:pos] + seg + jpeg[pos:]


def jpeg_bytes(img, **kw):
    b = io.BytesIO()
    img.save(b, "JPEG", **kw)
    return b.getvalue()


def png_bytes(img, **kw):
    b = io.BytesIO()
    img.save(b, "PNG", **kw)
    return b.getvalue()


def text_chunk(kind, key, text, compress=False):
    if kind == b"tEXt":
        return png_chunk(b"tEXt", key + b"\0" + text)
    if kind == b"zTXt":
        return png_chunk(b"zTXt", key + b"\0\0" + zlib.compress(text))
    data = zlib.compress(text) if compress else text
    return png_chunk(b"iTXt", key + b"\0" + bytes([1 if compress else 0, 0]) + b"\0\0" + data)


def raw_profile(exif):
    """ImageMagick's "Raw profile type exif" text: header lines, then hex."""
    hx = exif.hex()
    lines = [hx[i:i + 72] for i in range(0, len(hx), 72)]
    return ("\nexif\n%8d\n" % len(exif) + "\n".join(lines) + "\n").encode()


def xmp_packet(orientation, attr=True):
    o = ('tiff:Orientation="%d"' % orientation) if attr else ""
    e = "" if attr else "<tiff:Orientation>%d</tiff:Orientation>" % orientation
    return ('<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
            '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
            'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" %s>%s</rdf:Description></rdf:RDF></x:xmpmeta>'
            '<?xpacket end="w"?>' % (o, e)).encode()


# ------------------------------------------------------------ the set


def build():
    """-> list of (filename, bytes)."""
    files = []

    def add(name, data):
        files.append((name, data))

    seed = [100]

    def nxt():
        seed[0] += 1
        return seed[0]

    # --- JPEG: sizes, subsampling, quality, progressive
    jpeg_cases = [
        ("face112_q95_444", 112, 112, dict(quality=95, subsampling=0)),
        ("face112_q75_420", 112, 112, dict(quality=75, subsampling=2)),
        ("face112_prog", 112, 112, dict(quality=90, progressive=True)),
        ("face96x112_422", 96, 112, dict(quality=85, subsampling=1)),
        ("w500h700_q90_420", 500, 700, dict(quality=90, subsampling=2)),
        ("w700h500_q85_422", 700, 500, dict(quality=85, subsampling=1)),
        ("w37h391_444", 37, 391, dict(quality=90, subsampling=0)),
        ("w391h37_420", 391, 37, dict(quality=90, subsampling=2)),
        ("w384h384_same", 384, 384, dict(quality=92)),
        ("w383h385", 383, 385, dict(quality=92)),
        ("w385h383_prog", 385, 383, dict(quality=80, progressive=True)),
        ("w1h1", 1, 1, dict(quality=90)),
        ("w2h3", 2, 3, dict(quality=90)),
        ("w17h9_420", 17, 9, dict(quality=90, subsampling=2)),
        ("w1280h720_q80", 1280, 720, dict(quality=80)),
        ("w2000h1500_q88", 2000, 1500, dict(quality=88)),
        ("w640h480_optimize", 640, 480, dict(quality=90, optimize=True)),
        ("w800h600_prog_q70", 800, 600, dict(quality=70, progressive=True, optimize=True)),
        ("w256h200_q10", 256, 200, dict(quality=10)),
        ("w256h200_q30_444", 256, 200, dict(quality=30, subsampling=0)),
        ("w256h200_q50", 256, 200, dict(quality=50)),
        ("w256h200_q100_444", 256, 200, dict(quality=100, subsampling=0)),
        ("w300h200_dpi", 300, 200, dict(quality=90, dpi=(300, 300))),
        ("w160h224_icc", 160, 224, dict(quality=90, icc_profile=b"\0" * 100 + b"not really an icc profile")),
    ]
    for name, w, h, kw in jpeg_cases:
        add(name + ".jpg", jpeg_bytes(Image.fromarray(rgb8(h, w, nxt())), **kw))
    add("grey_w500h300.jpg", jpeg_bytes(Image.fromarray(rgb8(300, 500, nxt())[:, :, 1]), quality=90))
    add("grey_w123h77_prog.jpg", jpeg_bytes(Image.fromarray(rgb8(77, 123, nxt())[:, :, 0]), quality=80,
                                             progressive=True))
    add("grey_face112.jpg", jpeg_bytes(Image.fromarray(rgb8(112, 112, nxt())[:, :, 2]), quality=95))
    cmyk = content(150, 200, nxt(), channels=4).astype(np.uint8)
    add("cmyk_w200h150.jpg", jpeg_bytes(Image.fromarray(cmyk, "CMYK"), quality=90))
    cmyk = content(53, 37, nxt(), channels=4).astype(np.uint8)
    add("cmyk_w37h53_prog.jpg", jpeg_bytes(Image.fromarray(cmyk, "CMYK"), quality=75, progressive=True))
    j = jpeg_bytes(Image.fromarray(rgb8(90, 120, nxt())), quality=90)
    add("trailing_garbage.jpg", j + b"\0garbage after the EOI marker" * 3)

    # --- JPEG: EXIF orientation 1..8 (Pillow's own Exif writer, big-endian)
    for o in range(1, 9):
        e = Image.Exif()
        e[0x0112] = o
        e[0x010F] = "ufo test camera"
        add("exif_o%d.jpg" % o, jpeg_bytes(Image.fromarray(rgb8(150, 230, nxt())), quality=90, exif=e.tobytes()))
    im = Image.fromarray(rgb8(120, 200, nxt()))
    S, L, R, SR, B, F, D = 3, 4, 5, 10, 1, 11, 12
    n = 2
    hand = {
        # little-endian, SHORT
        "exif_le_o6": exif_block([(0x010F, 2, 4, b"abc\0"), (0x0112, S, 1, short_val(6, "<"))], "<"),
        "exif_le_o3_progressive": exif_block([(0x0112, S, 1, short_val(3, "<"))], "<"),
        # other numeric types Pillow accepts: LONG, RATIONAL 12/2, SRATIONAL -10/-2, FLOAT, DOUBLE
        "exif_long_o8": exif_block([(0x0112, L, 1, struct.pack(">I", 8))]),
        "exif_rational_o6": exif_block([(0x0112, R, 1, struct.pack(">I", after_ifd(1)))],
                                       tail=struct.pack(">II", 12, 2)),
        "exif_srational_o5": exif_block([(0x0112, SR, 1, struct.pack("<I", after_ifd(1)))], "<",
                                        tail=struct.pack("<ii", -10, -2)),
        "exif_float_o7": exif_block([(0x0112, F, 1, struct.pack(">f", 7.0))]),
        "exif_double_o2": exif_block([(0x0112, D, 1, struct.pack(">I", after_ifd(1)))], tail=struct.pack(">d", 2.0)),
        # types that come back as bytes/str in Pillow: no rotation
        "exif_byte_o6_ignored": exif_block([(0x0112, B, 1, b"\x06\0\0\0")]),
        "exif_rational_o6_5_ignored": exif_block([(0x0112, R, 1, struct.pack(">I", after_ifd(1)))],
                                                 tail=struct.pack(">II", 13, 2)),
        # count 2: the first value counts
        "exif_count2_o3": exif_block([(0x0112, S, 2, struct.pack(">HH", 3, 6))]),
        # duplicate tag: the last one counts
        "exif_dup_o7": exif_block([(0x0112, S, 1, short_val(3)), (0x0112, S, 1, short_val(7))]),
        # unknown type before: skipped; count 0: skipped
        "exif_unknowntype_o4": exif_block([(0x0112, 99, 1, short_val(2)), (0x0112, S, 0, short_val(5)),
                                           (0x0112, S, 1, short_val(4))]),
        # an entry whose data lies past the end stops the IFD: no rotation
        "exif_badoffset_before_ignored": exif_block([(0x010F, 2, 100, struct.pack(">I", 5000)),
                                                    (0x0112, S, 1, short_val(6))]),
        "exif_badoffset_after_o8": exif_block([(0x0112, S, 1, short_val(8)),
                                               (0x010F, 2, 100, struct.pack(">I", 5000))]),
        # IFD count claims more entries than there are: the ones present count
        "exif_shortifd_o6": exif_block([(0x0112, S, 1, short_val(6))])[:14] + b"\0\3"
        + exif_block([(0x0112, S, 1, short_val(6))])[16:-4],
        "exif_value_9_ignored": exif_block([(0x0112, S, 1, short_val(9))]),
        "exif_value_0_ignored": exif_block([(0x0112, S, 1, short_val(0))]),
        "exif_huge_count_ignored": exif_block([(0x0112, S, 0x40000000, struct.pack(">I", 26))]),
        "exif_ifd_past_end_ignored": b"Exif\0\0MM\0*" + struct.pack(">I", 5000)
        + exif_block([(0x0112, S, 1, short_val(6))])[14:],
        "exif_not_tiff_ignored": b"Exif\x00\x00XX\x00*\x00\x00\x00\x08" + b"\0" * 20,
        "exif_prefix_nonzero_ignored": b"Exif\x00X" + exif_block([(0x0112, S, 1, short_val(6))])[6:],
    }
    for name, blk in hand.items():
        prog = "progressive" in name
        add(name + ".jpg", jpeg_bytes(im, quality=88, exif=blk, progressive=prog))
    # two Exif APP1 segments: Pillow uses the first
    j = jpeg_bytes(im, quality=88, exif=exif_block([(0x0112, S, 1, short_val(3))]))
    add("exif_two_app1_o3.jpg", insert_app_segment(j, 0xE1, exif_block([(0x0112, S, 1, short_val(6))]),
                                                  after_first_app1=True))
    # XMP orientation in a JPEG: Pillow 9.4 ignores it (only PNG XMP counts)
    j = jpeg_bytes(im, quality=88)
    add("xmp_only_ignored.jpg", insert_app_segment(j, 0xE1, b"http://ns.adobe.com/xap/1.0/\0" + xmp_packet(6)))
    # EXIF on a greyscale JPEG and on a CMYK JPEG
    e = Image.Exif()
    e[0x0112] = 6
    add("grey_exif_o6.jpg", jpeg_bytes(Image.fromarray(rgb8(70, 130, nxt())[:, :, 0]), quality=90,
                                       exif=e.tobytes()))
    e[0x0112] = 5
    add("cmyk_exif_o5.jpg", jpeg_bytes(Image.fromarray(content(60, 90, nxt(), 4).astype(np.uint8), "CMYK"),
                                       quality=90, exif=e.tobytes()))
    add("exif_o6_w112h112.jpg", jpeg_bytes(Image.fromarray(rgb8(112, 112, nxt())), quality=95,
                                           exif=exif_block([(0x0112, S, 1, short_val(6))])))

    # --- PNG through Pillow's writer
    add("rgb_w500h700.png", png_bytes(Image.fromarray(rgb8(700, 500, nxt()))))
    add("rgb_w112h112.png", png_bytes(Image.fromarray(rgb8(112, 112, nxt()))))
    add("rgb_w37h391.png", png_bytes(Image.fromarray(rgb8(391, 37, nxt()))))
    add("rgb_w384h384.png", png_bytes(Image.fromarray(rgb8(384, 384, nxt()))))
    a = content(300, 260, nxt(), 4).astype(np.uint8)
    add("rgba_w260h300.png", png_bytes(Image.fromarray(a, "RGBA")))
    add("grey_w333h222.png", png_bytes(Image.fromarray(rgb8(222, 333, nxt())[:, :, 0])))
    a = content(150, 190, nxt(), 2).astype(np.uint8)
    add("la_w190h150.png", png_bytes(Image.fromarray(a, "LA")))
    p = Image.fromarray(rgb8(210, 180, nxt())).quantize(200)
    add("pal_w180h210.png", png_bytes(p))
    p = Image.fromarray(rgb8(99, 301, nxt())).quantize(64)
    add("pal_trns_w301h99.png", png_bytes(p, transparency=5))
    g16 = (content(140, 170, nxt(), 1)[:, :, 0] * 1.6).astype(np.uint16)  # 0..408: clipping shows
    add("grey16_lowrange_w170h140.png", png_bytes(Image.fromarray(g16, "I;16")))
    e = Image.Exif()
    e[0x0112] = 6
    add("png_exif_o6.png", png_bytes(Image.fromarray(rgb8(100, 160, nxt())), exif=e.tobytes()))

    # --- PNG through the hand-written encoder: every colour type / depth
    h, w = 123, 97
    base = content(h, w, nxt(), 4)
    n16 = np.random.RandomState(7).randint(0, 256, (h, w, 4))
    wide = (base * 256 + n16).astype(np.uint16)
    add("hand_rgb8_filters.png", write_png(base[:, :, :3].astype(np.uint8), 8, 2, seed=1, idat_pieces=3))
    add("hand_rgb16.png", write_png(wide[:, :, :3], 16, 2, seed=2))
    add("hand_rgba16.png", write_png(wide, 16, 6, seed=3))
    add("hand_la16.png", write_png(wide[:, :, :2], 16, 4, seed=4))
    add("hand_grey16_full.png", write_png(wide[:, :, 0], 16, 0, seed=0))
    add("hand_rgb8_trns.png", write_png(base[:, :, :3].astype(np.uint8), 8, 2, trns=b"\0\x10\0\x20\0\x30"))
    add("hand_grey8_trns.png", write_png(base[:, :, 0].astype(np.uint8), 8, 0, trns=b"\0\x80"))
    for bd in (1, 2, 4):
        g = (base[:, :, 1] / 256 * (1 << bd)).astype(np.uint8)
        add("hand_grey%d_w97.png" % bd, write_png(g, bd, 0, seed=bd))
    idx = (base[:, :, 0] / 256 * 16).astype(np.uint8)
    pal16 = np.random.RandomState(3).randint(0, 256, (16, 3))
    add("hand_pal4.png", write_png(idx, 4, 3, palette=pal16, seed=1))
    add("hand_pal4_short_palette.png", write_png(idx, 4, 3, palette=pal16[:9], seed=2))  # indices 9..15: grey
    idx2 = (base[:, :, 2] / 256 * 4).astype(np.uint8)
    add("hand_pal2_trns.png", write_png(idx2, 2, 3, palette=pal16[:4], trns=b"\x00\x40\x80", seed=3))
    add("hand_pal1.png", write_png((base[:, :, 3] > 128).astype(np.uint8), 1, 3, palette=[[200, 30, 60],
                                                                                       [10, 220, 90]]))
    idx8 = base[:, :, 1].astype(np.uint8)
    add("hand_pal8_short_trns.png", write_png(idx8, 8, 3, palette=np.random.RandomState(4).randint(0, 256, (150, 3)),
                                              trns=bytes(range(0, 250, 2))))
    # interlaced (Adam7), several types, including sizes where passes are empty
    add("hand_interlaced_rgb8_w500h700.png", write_png(rgb8(700, 500, nxt()), 8, 2, interlace=True, seed=2))
    add("hand_interlaced_rgba16.png", write_png(wide, 16, 6, interlace=True, seed=4))
    add("hand_interlaced_grey2.png", write_png((base[:, :, 1] / 64).astype(np.uint8), 2, 0, interlace=True))
    add("hand_interlaced_pal4.png", write_png(idx, 4, 3, palette=pal16[:12], interlace=True, seed=1))
    add("hand_interlaced_la8.png", write_png(base[:, :, :2].astype(np.uint8), 8, 4, interlace=True, seed=3))
    add("hand_interlaced_w3h5.png", write_png(rgb8(5, 3, nxt()), 8, 2, interlace=True))
    add("hand_interlaced_w1h1.png", write_png(rgb8(1, 1, nxt()), 8, 2, interlace=True))
    add("hand_interlaced_grey16_w37h391.png", write_png((content(391, 37, nxt(), 1)[:, :, 0] * 1.3)
                                                        .astype(np.uint16), 16, 0, interlace=True))
    # PNG EXIF / text orientation, as Pillow's getexif finds it
    px = rgb8(80, 140, nxt())
    e8 = exif_block([(0x0112, S, 1, short_val(8))])[6:]
    add("hand_exif_after_idat_o8.png", write_png(px, 8, 2, after=png_chunk(b"eXIf", e8)))
    add("hand_exif_le_o7.png", write_png(px, 8, 2, before=png_chunk(
        b"eXIf", exif_block([(0x0112, S, 1, short_val(7, "<"))], "<")[6:])))
    add("hand_raw_profile_ztxt_o5.png", write_png(px, 8, 2, before=text_chunk(
        b"zTXt", b"Raw profile type exif", raw_profile(exif_block([(0x0112, S, 1, short_val(5))])))))
    add("hand_raw_profile_text_o3.png", write_png(px, 8, 2, after=text_chunk(
        b"tEXt", b"Raw profile type exif", raw_profile(exif_block([(0x0112, S, 1, short_val(3, "<"))], "<")))))
    add("hand_xmp_itxt_o6.png", write_png(px, 8, 2, before=text_chunk(b"iTXt", b"XML:com.adobe.xmp",
                                                                       xmp_packet(6))))
    add("hand_xmp_itxt_z_elem_o8.png", write_png(px, 8, 2, before=text_chunk(
        b"iTXt", b"XML:com.adobe.xmp", xmp_packet(8, attr=False), compress=True)))
    # eXIf with an Orientation of 1 wins over XMP; eXIf without the tag does not
    e_no = exif_block([(0x010F, 2, 4, b"abc\0")])[6:]
    e_one = exif_block([(0x0112, S, 1, short_val(1))])[6:]
    xmp6 = text_chunk(b"iTXt", b"XML:com.adobe.xmp", xmp_packet(6))
    add("hand_exif1_xmp6_o1.png", write_png(px, 8, 2, before=png_chunk(b"eXIf", e_one) + xmp6))
    add("hand_exif_notag_xmp6_o6.png", write_png(px, 8, 2, before=png_chunk(b"eXIf", e_no) + xmp6))
    add("hand_pal_exif_o6.png", write_png(idx, 4, 3, palette=pal16, before=png_chunk(
        b"eXIf", exif_block([(0x0112, S, 1, short_val(6))])[6:])))
    # a wrong CRC on the image data: Pillow does not check it, neither do we
    good = write_png(rgb8(40, 50, nxt()), 8, 2)
    i = good.index(b"IDAT") + 4 + struct.unpack(">I", good[good.index(b"IDAT") - 4:good.index(b"IDAT")])[0]
    add("hand_bad_idat_crc.png", good[:i] + bytes(b ^ 0x5A for b in good[i:i + 4]) + good[i + 4:])
    return files


def make_all(outdir):
    os.makedirs(outdir, exist_ok=True)
    paths = []
    for name, data in build():
        p = os.path.join(outdir, name)
        with open(p, "wb") as f:
            f.write(data)
        paths.append(p)
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    ps = make_all(sys.argv[1])
    print("%d images written to %s" % (len(ps), sys.argv[1]))
