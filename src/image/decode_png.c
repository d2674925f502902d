// PNG -> RGB8 with libpng, giving the pixels Pillow 9.4 gives for
// Image.open(f).convert("RGB"). libpng is asked only to unpack sub-byte pixels
// and to de-interlace; the Pillow semantics are applied here:
//   grey 1-bit      mode "1"  -> 0 / 255
//   grey 2/4-bit    mode "L"  -> v * 85 / v * 17
//   grey 16-bit     mode "I"  -> the 16-bit value clipped to 255 (not >> 8!)
//   grey+alpha 8    mode "LA" -> L, alpha dropped
//   grey+alpha 16   mode RGBA via rawmode "LA;16B" -> high byte of L
//   RGB / RGBA 16   high bytes, alpha dropped (no compositing)
//   palette         PLTE entry; an index past the PLTE is Pillow's default
//                   palette entry, grey (i, i, i); tRNS is ignored
// Chunk CRCs are checked before the image data and ignored from there on, as
// Pillow does. EXIF orientation as Pillow's PngImageFile.getexif finds it: the eXIf chunk,
// else a "Raw profile type exif" text chunk; if neither has the tag, the XMP
// packet's tiff:Orientation (iTXt "XML:com.adobe.xmp").
#include "image/image_internal.h"
#include "base/error.h"
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *buf;
    size_t n, pos;
    int truncated;
    char msg[256];
    png_structp png;
    png_infop info;
    uint8_t *raw;   // one row, or the whole image when interlaced
    uint8_t *rgb;
} png_job;

static void on_error(png_structp png, png_const_charp msg) {
    png_job *J = png_get_error_ptr(png);
    snprintf(J->msg, sizeof J->msg, "%s", msg ? msg : "error");
    png_longjmp(png, 1);
}
static void on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

// libpng allocates (and zeroes) a chunk's declared length before reading it,
// and only warns when the length is over its limit, so a 300-byte file could
// cost 2 GB. No legitimate allocation is bigger than the input itself or than
// a few MB (rows of at most 65535 * 8 bytes, text/ICC decompressed up to the
// chunk_malloc_max set below); refusing one makes libpng drop that chunk or
// fail cleanly.
static png_voidp on_malloc(png_structp png, png_alloc_size_t size) {
    png_job *J = png_get_mem_ptr(png);
    size_t cap = (J->n > (4u << 20) ? J->n : (4u << 20)) + (64u << 10);
    return size > cap ? NULL : malloc(size);
}
static void on_free(png_structp png, png_voidp p) { (void)png, free(p); }

static void on_read(png_structp png, png_bytep out, size_t len) {
    png_job *J = png_get_io_ptr(png);
    if (len > J->n - J->pos) {
        J->truncated = 1;
        png_error(png, "premature end of data");
    }
    memcpy(out, J->buf + J->pos, len);
    J->pos += len;
}

static int png_orientation(png_job *J) {
    int o = -1;
    png_uint_32 ne = 0;
    png_bytep exif = NULL;
#ifdef PNG_eXIf_SUPPORTED
    if (png_get_eXIf_1(J->png, J->info, &ne, &exif) & PNG_INFO_eXIf) o = ufo_exif_orientation(exif, ne);
#endif
    png_textp text = NULL;
    int nt = 0;
    png_get_text(J->png, J->info, &text, &nt);
    const png_text *raw = NULL, *xmp = NULL;
    for (int i = 0; i < nt; i++) {  // later chunks win, as in Pillow's info dict
        if (!text[i].key || !text[i].text) continue;
        if (strcmp(text[i].key, "Raw profile type exif") == 0) raw = &text[i];
        else if (strcmp(text[i].key, "XML:com.adobe.xmp") == 0) xmp = &text[i];
    }
    size_t rl = 0, xl = 0;
    if (raw) rl = raw->compression >= PNG_ITXT_COMPRESSION_NONE ? raw->itxt_length : raw->text_length;
    if (xmp) xl = xmp->compression >= PNG_ITXT_COMPRESSION_NONE ? xmp->itxt_length : xmp->text_length;
    if (!exif && raw) o = ufo_exif_orientation_raw_profile(raw->text, rl);
    if (o < 0 && xmp) o = ufo_xmp_orientation(xmp->text, xl);
    return o >= 1 ? o : 1;
}

static void row_to_rgb(const uint8_t *s, uint8_t *d, int w, int ct, int bd, const png_color *pal, int npal) {
    switch (ct) {
    case PNG_COLOR_TYPE_GRAY:
        for (int x = 0; x < w; x++) {
            int v;
            if (bd == 16) v = s[2 * x] ? 255 : s[2 * x + 1];
            else if (bd == 8) v = s[x];
            else if (bd == 4) v = s[x] * 17;
            else if (bd == 2) v = s[x] * 85;
            else v = s[x] ? 255 : 0;
            d[3 * x] = d[3 * x + 1] = d[3 * x + 2] = (uint8_t)v;
        }
        break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: {
        int step = bd == 16 ? 4 : 2;
        for (int x = 0; x < w; x++) d[3 * x] = d[3 * x + 1] = d[3 * x + 2] = s[step * x];
        break;
    }
    case PNG_COLOR_TYPE_RGB:
    case PNG_COLOR_TYPE_RGB_ALPHA: {
        int ch = ct == PNG_COLOR_TYPE_RGB ? 3 : 4, b = bd == 16 ? 2 : 1;
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) d[3 * x + c] = s[(x * ch + c) * b];
        break;
    }
    case PNG_COLOR_TYPE_PALETTE:
        for (int x = 0; x < w; x++) {
            int i = s[x];
            if (i < npal) {
                d[3 * x] = pal[i].red;
                d[3 * x + 1] = pal[i].green;
                d[3 * x + 2] = pal[i].blue;
            } else {
                d[3 * x] = d[3 * x + 1] = d[3 * x + 2] = (uint8_t)i;
            }
        }
        break;
    }
}

// Pillow reads the chunks after the image data in PngImageFile.load_end: a
// chunk there whose data is cut short (anything but IEND) raises "Truncated
// File Read", while a cut inside a chunk header or CRC, or a chunk type that
// is not 4 word characters, just ends the scan. libpng's png_read_end is more
// lenient (we ignore its errors), so the same walk is done here.
static int is_word(uint8_t c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
static int tail_truncated(const uint8_t *b, size_t n) {
    size_t p = 8;
    int seen_idat = 0;
    while (p + 8 <= n) {
        uint32_t len = (uint32_t)b[p] << 24 | (uint32_t)b[p + 1] << 16 | (uint32_t)b[p + 2] << 8 | b[p + 3];
        const uint8_t *t = b + p + 4;
        if (!is_word(t[0]) || !is_word(t[1]) || !is_word(t[2]) || !is_word(t[3])) return 0;
        if (memcmp(t, "IEND", 4) == 0) return 0;
        if (memcmp(t, "IDAT", 4) == 0) seen_idat = 1;
        if (len > n - p - 8) return seen_idat && memcmp(t, "IDAT", 4) != 0;
        p += 12 + (size_t)len;  // the CRC may be cut: the next header read then fails
    }
    return 0;
}

static int decode(png_job *J, const char *name, ufo_image *img, int *orientation) {
    if (setjmp(png_jmpbuf(J->png))) {
        if (J->truncated) return ufo_errorf("%s: truncated PNG: image file is truncated (%s)", name, J->msg);
        return ufo_errorf("%s: corrupt PNG: %s", name, J->msg);
    }
    png_set_read_fn(J->png, J, on_read);
    // Limits before any allocation: libpng checks IHDR against these (our
    // own check below gives the clearer message).
    png_set_user_limits(J->png, 0x7fffffffL, 0x7fffffffL);
    // Decompressed text/ICC is capped at 2 MB (Pillow's cap for text is 1 MB);
    // a longer chunk is dropped with a warning.
    png_set_chunk_malloc_max(J->png, 2u << 20);
    // CRCs as Pillow checks them: every chunk before the image data (a bad
    // one is "broken PNG file"), none from the image data on.
    png_set_crc_action(J->png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
    png_read_info(J->png, J->info);
    png_set_crc_action(J->png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
    png_uint_32 w32, h32;
    int bd, ct, il;
    png_get_IHDR(J->png, J->info, &w32, &h32, &bd, &ct, &il, NULL, NULL);
    if (ufo_image_check_size(name, "PNG", (long)w32, (long)h32)) return -1;
    int w = (int)w32, h = (int)h32;
    png_colorp pal = NULL;
    int npal = 0;
    if (ct == PNG_COLOR_TYPE_PALETTE) png_get_PLTE(J->png, J->info, &pal, &npal);
    png_color palette[256];
    if (npal > 256) npal = 256;
    if (npal) memcpy(palette, pal, (size_t)npal * sizeof *pal);
    if (bd < 8) png_set_packing(J->png);
    int passes = png_set_interlace_handling(J->png);
    png_read_update_info(J->png, J->info);
    size_t rowbytes = png_get_rowbytes(J->png, J->info);
    int chans = png_get_channels(J->png, J->info);
    if (rowbytes < (size_t)w * chans * (bd == 16 ? 2 : 1))
        return ufo_errorf("%s: corrupt PNG: unexpected row size", name);
    J->rgb = malloc((size_t)w * h * 3);
    J->raw = malloc(passes > 1 ? rowbytes * h : rowbytes);
    if (!J->rgb || !J->raw) return ufo_errorf("%s: out of memory decoding a %dx%d PNG", name, w, h);
    if (passes > 1) {
        // Adam7: libpng combines the passes into the full-size rows in place.
        memset(J->raw, 0, rowbytes * h);
        for (int p = 0; p < passes; p++)
            for (int y = 0; y < h; y++) png_read_row(J->png, J->raw + rowbytes * y, NULL);
        for (int y = 0; y < h; y++)
            row_to_rgb(J->raw + rowbytes * y, J->rgb + (size_t)y * w * 3, w, ct, bd, palette, npal);
    } else {
        for (int y = 0; y < h; y++) {
            png_read_row(J->png, J->raw, NULL);
            row_to_rgb(J->raw, J->rgb + (size_t)y * w * 3, w, ct, bd, palette, npal);
        }
    }
    if (tail_truncated(J->buf, J->n))
        return ufo_errorf("%s: truncated PNG: image file is truncated (in a chunk after the image data)", name);
    img->w = w;
    img->h = h;
    img->rgb = J->rgb;
    J->rgb = NULL;
    // Chunks after the image data (eXIf, text) count for the orientation, but
    // like Pillow's load_end a damaged or missing tail is not an error.
    if (!setjmp(png_jmpbuf(J->png))) png_read_end(J->png, J->info);
    *orientation = png_orientation(J);
    return 0;
}

int ufo_decode_png(const uint8_t *buf, size_t n, const char *name, ufo_image *img, int *orientation) {
    img->w = img->h = 0;
    img->rgb = NULL;
    *orientation = 1;
    png_job *J = calloc(1, sizeof *J);
    if (!J) return ufo_errorf("%s: out of memory", name);
    J->buf = buf;
    J->n = n;
    J->png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, J, on_error, on_warning, J, on_malloc, on_free);
    if (J->png) J->info = png_create_info_struct(J->png);
    int rc;
    if (!J->png || !J->info) rc = ufo_errorf("%s: out of memory", name);
    else rc = decode(J, name, img, orientation);
    png_destroy_read_struct(J->png ? &J->png : NULL, J->info ? &J->info : NULL, NULL);
    if (rc != 0) {
        free(img->rgb);
        img->rgb = NULL;
        img->w = img->h = 0;
    }
    free(J->rgb);
    free(J->raw);
    free(J);
    return rc;
}
