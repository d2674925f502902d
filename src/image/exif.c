// EXIF Orientation (tag 0x0112 in IFD0), read the way Pillow 9.4 reads it:
// Image.getexif -> TiffImagePlugin.ImageFileDirectory_v2.load, then
// ImageOps.exif_transpose's dict lookup of the value. Hostile input: every
// offset and count is checked against the buffer; nothing is allocated.
//
// Pillow details matched here:
//  - header must be one of II*\0, MM\0*, II\0*, MM*\0 (TiffImagePlugin's
//    PREFIXES; the two odd ones are accepted by Pillow too); BigTIFF and
//    anything shorter than 8 bytes are treated as "no EXIF" (Pillow raises);
//  - entries are read until the first one whose 12 bytes or whose out-of-line
//    data lie past the end (Pillow stops there, keeping what it read);
//  - entries of an unknown type or with count 0 are skipped; a later entry for
//    the same tag replaces an earlier one;
//  - the value is the first element (Orientation is specified with length 1);
//    integer and float types count when integral, (S)RATIONAL n/d when d != 0
//    and d divides n (Python's Fraction compares and hashes equal to the int);
//    BYTE, ASCII and UNDEFINED come back as bytes/str and never match.
#include "image/image_internal.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rd16(const uint8_t *p, int be) { return be ? (uint32_t)p[0] << 8 | p[1] : (uint32_t)p[1] << 8 | p[0]; }
static uint32_t rd32(const uint8_t *p, int be) {
    return be ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
              : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}
static uint64_t rd64(const uint8_t *p, int be) {
    return be ? (uint64_t)rd32(p, 1) << 32 | rd32(p + 4, 1) : (uint64_t)rd32(p + 4, 0) << 32 | rd32(p, 0);
}

// Bytes per element of TIFF type `typ` as Pillow's _load_dispatch knows it; 0: unknown.
static unsigned type_size(unsigned typ) {
    switch (typ) {
    case 1: case 2: case 6: case 7: return 1;  // BYTE ASCII SBYTE UNDEFINED
    case 3: case 8: return 2;                  // SHORT SSHORT
    case 4: case 9: case 11: case 13: return 4; // LONG SLONG FLOAT IFD
    case 5: case 10: case 12: case 16: return 8; // RATIONAL SRATIONAL DOUBLE LONG8
    default: return 0;
    }
}

static int from_double(double v) {
    if (!isfinite(v) || v != floor(v) || v < 1 || v > 8) return 0;
    return (int)v;
}
static int from_int(int64_t v) { return v >= 1 && v <= 8 ? (int)v : 0; }

// Value of the first element, as exif_transpose would see it: 1..8, else 0.
static int orientation_value(unsigned typ, const uint8_t *p, int be) {
    switch (typ) {
    case 3: return from_int(rd16(p, be));
    case 4: case 13: return from_int(rd32(p, be));
    case 6: return from_int((int8_t)p[0]);
    case 8: return from_int((int16_t)rd16(p, be));
    case 9: return from_int((int32_t)rd32(p, be));
    case 16: { uint64_t v = rd64(p, be); return v <= 8 ? from_int((int64_t)v) : 0; }
    case 11: {
        uint32_t u = rd32(p, be);
        float f;
        memcpy(&f, &u, sizeof f);
        return from_double(f);
    }
    case 12: {
        uint64_t u = rd64(p, be);
        double d;
        memcpy(&d, &u, sizeof d);
        return from_double(d);
    }
    case 5: {
        uint32_t n = rd32(p, be), d = rd32(p + 4, be);
        if (d == 0 || n % d) return 0;
        return from_int(n / d);
    }
    case 10: {
        int64_t n = (int32_t)rd32(p, be), d = (int32_t)rd32(p + 4, be);
        if (d == 0 || n % d) return 0;
        return from_int(n / d);
    }
    default: return 0;  // bytes or str in Pillow: never equal to an int
    }
}

int ufo_exif_orientation(const uint8_t *data, size_t n) {
    if (!data) return -1;
    if (n >= 6 && memcmp(data, "Exif\0\0", 6) == 0) {
        data += 6;
        n -= 6;
    }
    if (n < 8) return -1;
    int be;
    if (memcmp(data, "MM\0*", 4) == 0 || memcmp(data, "MM*\0", 4) == 0) be = 1;
    else if (memcmp(data, "II*\0", 4) == 0 || memcmp(data, "II\0*", 4) == 0) be = 0;
    else return -1;  // not a TIFF header (incl. BigTIFF): Pillow raises, we ignore
    uint64_t pos = rd32(data + 4, be);
    if (pos + 2 > n) return -1;
    unsigned count = rd16(data + pos, be);
    pos += 2;
    int result = -1;
    for (unsigned i = 0; i < count; i++) {
        if (pos + 12 > n) break;
        const uint8_t *e = data + pos;
        pos += 12;
        unsigned tag = rd16(e, be), typ = rd16(e + 2, be);
        uint64_t cnt = rd32(e + 4, be);
        unsigned unit = type_size(typ);
        if (!unit) continue;
        uint64_t size = cnt * unit;  // < 2^35: no overflow
        const uint8_t *val = e + 8;
        if (size > 4) {
            uint64_t off = rd32(e + 8, be);
            if (off > n || size > n - off) break;  // Pillow: "Truncated File Read" ends the IFD
            val = data + off;
        } else if (size == 0) {
            continue;
        }
        if (tag == 0x0112) result = orientation_value(typ, val, be);
    }
    return result;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
static int is_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// Pillow: bytes.fromhex("".join(text.split("\n")[3:])), then Exif.load.
// Offsets in the TIFF structure are absolute, so the whole dump is decoded
// (at most half the text's length).
int ufo_exif_orientation_raw_profile(const char *text, size_t n) {
    if (!text) return -1;
    size_t i = 0;
    for (int nl = 0; nl < 3; nl++) {
        const char *p = memchr(text + i, '\n', n - i);
        if (!p) return -1;  // fewer than 4 lines: empty data, no EXIF
        i = (size_t)(p - text) + 1;
    }
    uint8_t *buf = malloc((n - i) / 2 + 1);
    if (!buf) return -1;
    size_t m = 0;
    int ok = 1;
    while (i < n) {
        int c = (unsigned char)text[i];
        if (c == '\n' || is_space(c)) {  // newlines are removed, other whitespace skipped between pairs
            i++;
            continue;
        }
        int hi = hexval(c);
        // the second digit must follow directly (after removed newlines)
        size_t j = i + 1;
        while (j < n && text[j] == '\n') j++;
        int lo = j < n ? hexval((unsigned char)text[j]) : -1;
        if (hi < 0 || lo < 0) {
            ok = 0;  // Pillow raises ValueError; we treat it as no EXIF
            break;
        }
        buf[m++] = (uint8_t)(hi << 4 | lo);
        i = j + 1;
    }
    int r = ok && m ? ufo_exif_orientation(buf, m) : -1;
    free(buf);
    return r;
}

// re.search(r'tiff:Orientation(="|>)([0-9])', xmp)
int ufo_xmp_orientation(const char *text, size_t n) {
    static const char key[] = "tiff:Orientation";
    const size_t k = sizeof key - 1;
    if (!text) return -1;
    for (size_t i = 0; i + k < n; i++) {
        if (text[i] != 't' || memcmp(text + i, key, k) != 0) continue;
        size_t j = i + k;
        if (j < n && text[j] == '>') j += 1;
        else if (j + 1 < n && text[j] == '=' && text[j + 1] == '"') j += 2;
        else continue;
        if (j < n && text[j] >= '0' && text[j] <= '9') {
            int v = text[j] - '0';
            return v >= 1 && v <= 8 ? v : 0;
        }
    }
    return -1;
}
