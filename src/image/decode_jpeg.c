// JPEG -> RGB8 with libjpeg(-turbo), set up exactly as Pillow 9.4's
// JpegDecode.c does it: default integer slow DCT, fancy upsampling, no
// scaling or draft mode, libjpeg's own colour-space guess. 1 component -> L,
// 3 -> RGB, 4 -> CMYK read with Adobe (inverted) polarity as Pillow's
// "CMYK;I" rawmode does, then Pillow's cmyk2rgb.
//
// Errors never exit(): error_exit longjmps back here. Warnings are silent as
// in Pillow, except libjpeg's "premature end of data" (the source ran dry and
// libjpeg padded the image), which Pillow reports as "image file is
// truncated" and so do we -- unless it only happens after the last scanline
// (e.g. a missing EOI marker), which Pillow accepts as well.
#include "image/image_internal.h"
#include "base/error.h"
#include <stdio.h>  // before jpeglib.h, which uses FILE
#include <jpeglib.h>
#include <jerror.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    int eof;                        // JWRN_JPEG_EOF seen
    char msg[JMSG_LENGTH_MAX];
} jerr_ctx;

static void on_error_exit(j_common_ptr cinfo) {
    jerr_ctx *e = (jerr_ctx *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jb, 1);
}

static void on_emit_message(j_common_ptr cinfo, int level) {
    jerr_ctx *e = (jerr_ctx *)cinfo->err;
    if (level < 0) {
        if (cinfo->err->msg_code == JWRN_JPEG_EOF) e->eof = 1;
        cinfo->err->num_warnings++;
    }
}

static void on_output_message(j_common_ptr cinfo) { (void)cinfo; }

// Everything that must survive a longjmp lives here (not in locals).
typedef struct {
    struct jpeg_decompress_struct cinfo;
    jerr_ctx err;
    struct jpeg_progress_mgr progress;
    uint8_t *rgb;
    uint8_t *row;
} jpeg_job;

// A progressive JPEG of a few KB can hold thousands of scans, each one a pass
// over the whole coefficient buffer: cap them (real files have about 10; the
// limit is TurboJPEG 3's default scan limit, 500).
#define MAX_SCANS 500
static void on_progress(j_common_ptr cinfo) {
    jpeg_job *J = (jpeg_job *)cinfo;  // cinfo is the first member
    if (J->cinfo.input_scan_number > MAX_SCANS) {
        snprintf(J->err.msg, sizeof J->err.msg, "more than %d progressive scans", MAX_SCANS);
        longjmp(J->err.jb, 1);
    }
}

// Pillow's first "Exif\0" APP1 (later ones are ignored), read before the
// first scan as Pillow's marker loop stops at SOS.
static int jpeg_orientation(j_decompress_ptr cinfo) {
    for (jpeg_saved_marker_ptr m = cinfo->marker_list; m; m = m->next) {
        if (m->marker != JPEG_APP0 + 1 || m->data_length < 5 || memcmp(m->data, "Exif\0", 5) != 0) continue;
        int o = ufo_exif_orientation(m->data, m->data_length);
        return o >= 1 ? o : 1;
    }
    return 1;
}

static int decode(jpeg_job *J, const uint8_t *buf, size_t n, const char *name, ufo_image *img, int *orientation) {
    struct jpeg_decompress_struct *cinfo = &J->cinfo;
    if (setjmp(J->err.jb)) {
        if (J->err.eof)
            return ufo_errorf("%s: truncated JPEG: image file is truncated (%s)", name, J->err.msg);
        return ufo_errorf("%s: corrupt JPEG: %s", name, J->err.msg);
    }
    jpeg_create_decompress(cinfo);
    J->progress.progress_monitor = on_progress;
    cinfo->progress = &J->progress;
    jpeg_mem_src(cinfo, buf, (unsigned long)n);
    jpeg_save_markers(cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(cinfo, TRUE);
    if (J->err.eof) return ufo_errorf("%s: truncated JPEG: image file is truncated (in the header)", name);
    int nc = cinfo->num_components;
    if (nc != 1 && nc != 3 && nc != 4)
        return ufo_errorf("%s: unsupported JPEG: %d colour components (Pillow reads 1, 3 or 4)", name, nc);
    if (ufo_image_check_size(name, "JPEG", (long)cinfo->image_width, (long)cinfo->image_height)) return -1;
    *orientation = jpeg_orientation(cinfo);

    cinfo->out_color_space = nc == 1 ? JCS_GRAYSCALE : nc == 3 ? JCS_RGB : JCS_CMYK;
    cinfo->dct_method = JDCT_ISLOW;
    cinfo->do_fancy_upsampling = TRUE;
    cinfo->scale_num = cinfo->scale_denom = 1;
    jpeg_start_decompress(cinfo);  // progressive: reads every scan now
    if (J->err.eof) return ufo_errorf("%s: truncated JPEG: image file is truncated", name);
    int w = (int)cinfo->output_width, h = (int)cinfo->output_height, oc = cinfo->output_components;
    if (oc != (nc == 1 ? 1 : nc == 3 ? 3 : 4))
        return ufo_errorf("%s: corrupt JPEG: unexpected %d output components", name, oc);
    J->rgb = malloc((size_t)w * h * 3);
    J->row = malloc((size_t)w * oc);
    if (!J->rgb || !J->row) return ufo_errorf("%s: out of memory decoding a %dx%d JPEG", name, w, h);
    while ((int)cinfo->output_scanline < h) {
        int y = (int)cinfo->output_scanline;
        uint8_t *dst = J->rgb + (size_t)y * w * 3;
        JSAMPROW rp = oc == 3 ? dst : J->row;
        if (jpeg_read_scanlines(cinfo, &rp, 1) != 1)
            return ufo_errorf("%s: corrupt JPEG: decoder stopped at row %d of %d", name, y, h);
        if (J->err.eof) return ufo_errorf("%s: truncated JPEG: image file is truncated at row %d of %d", name, y, h);
        if (oc == 1) ufo_row_grey_to_rgb(J->row, dst, w);
        else if (oc == 4) ufo_row_cmyk_inverted_to_rgb(J->row, dst, w);
    }
    // Trailing garbage or a missing EOI after the last row: Pillow accepts it.
    jpeg_finish_decompress(cinfo);
    img->w = w;
    img->h = h;
    img->rgb = J->rgb;
    J->rgb = NULL;
    return 0;
}

int ufo_decode_jpeg(const uint8_t *buf, size_t n, const char *name, ufo_image *img, int *orientation) {
    img->w = img->h = 0;
    img->rgb = NULL;
    *orientation = 1;
    jpeg_job *J = calloc(1, sizeof *J);
    if (!J) return ufo_errorf("%s: out of memory", name);
    J->cinfo.err = jpeg_std_error(&J->err.pub);
    J->err.pub.error_exit = on_error_exit;
    J->err.pub.emit_message = on_emit_message;
    J->err.pub.output_message = on_output_message;
    int rc = decode(J, buf, n, name, img, orientation);
    jpeg_destroy_decompress(&J->cinfo);
    free(J->rgb);
    free(J->row);
    free(J);
    return rc;
}
