// Image module, library level: decoding of small embedded JPEG/PNG files
// against Pillow's pixels, and hostile input: every truncation, single-byte
// corruptions at every offset, bad EXIF offsets/counts, zero and huge
// dimensions. Everything must end in 0 or -1 with a message naming the input,
// never a crash or a leak (this test also runs under ASan + UBSan).
#include "check.h"
#include "image/image.h"
#include "image/image_internal.h"
#include "base/error.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

// Inputs and expected pixels, generated once with Pillow 9.4 from the helpers
// in tools/make_test_images.py: Image.open -> exif_transpose -> convert("RGB")
// (and .resize(..., BICUBIC) for resize_*).
static const unsigned char jpeg_rgb_o6[809] = {
    255, 216, 255, 224, 0, 16, 74, 70, 73, 70, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
    255, 225, 0, 34, 69, 120, 105, 102, 0, 0, 77, 77, 0, 42, 0, 0, 0, 8, 0, 1,
    1, 18, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 255, 219, 0, 67,
    0, 3, 2, 2, 3, 2, 2, 3, 3, 3, 3, 4, 3, 3, 4, 5, 8, 5, 5, 4,
    4, 5, 10, 7, 7, 6, 8, 12, 10, 12, 12, 11, 10, 11, 11, 13, 14, 18, 16, 13,
    14, 17, 14, 11, 11, 16, 22, 16, 17, 19, 20, 21, 21, 21, 12, 15, 23, 24, 22, 20,
    24, 18, 20, 21, 20, 255, 219, 0, 67, 1, 3, 4, 4, 5, 4, 5, 9, 5, 5, 9,
    20, 13, 11, 13, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 255, 192, 0, 17, 8, 0,
    8, 0, 16, 3, 1, 34, 0, 2, 17, 1, 3, 17, 1, 255, 196, 0, 31, 0, 0, 1,
    5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5,
    6, 7, 8, 9, 10, 11, 255, 196, 0, 181, 16, 0, 2, 1, 3, 3, 2, 4, 3, 5,
    5, 4, 4, 0, 0, 1, 125, 1, 2, 3, 0, 4, 17, 5, 18, 33, 49, 65, 6, 19,
    81, 97, 7, 34, 113, 20, 50, 129, 145, 161, 8, 35, 66, 177, 193, 21, 82, 209, 240, 36,
    51, 98, 114, 130, 9, 10, 22, 23, 24, 25, 26, 37, 38, 39, 40, 41, 42, 52, 53, 54,
    55, 56, 57, 58, 67, 68, 69, 70, 71, 72, 73, 74, 83, 84, 85, 86, 87, 88, 89, 90,
    99, 100, 101, 102, 103, 104, 105, 106, 115, 116, 117, 118, 119, 120, 121, 122, 131, 132, 133, 134,
    135, 136, 137, 138, 146, 147, 148, 149, 150, 151, 152, 153, 154, 162, 163, 164, 165, 166, 167, 168,
    169, 170, 178, 179, 180, 181, 182, 183, 184, 185, 186, 194, 195, 196, 197, 198, 199, 200, 201, 202,
    210, 211, 212, 213, 214, 215, 216, 217, 218, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 241,
    242, 243, 244, 245, 246, 247, 248, 249, 250, 255, 196, 0, 31, 1, 0, 3, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
    10, 11, 255, 196, 0, 181, 17, 0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0,
    1, 2, 119, 0, 1, 2, 3, 17, 4, 5, 33, 49, 6, 18, 65, 81, 7, 97, 113, 19,
    34, 50, 129, 8, 20, 66, 145, 161, 177, 193, 9, 35, 51, 82, 240, 21, 98, 114, 209, 10,
    22, 36, 52, 225, 37, 241, 23, 24, 25, 26, 38, 39, 40, 41, 42, 53, 54, 55, 56, 57,
    58, 67, 68, 69, 70, 71, 72, 73, 74, 83, 84, 85, 86, 87, 88, 89, 90, 99, 100, 101,
    102, 103, 104, 105, 106, 115, 116, 117, 118, 119, 120, 121, 122, 130, 131, 132, 133, 134, 135, 136,
    137, 138, 146, 147, 148, 149, 150, 151, 152, 153, 154, 162, 163, 164, 165, 166, 167, 168, 169, 170,
    178, 179, 180, 181, 182, 183, 184, 185, 186, 194, 195, 196, 197, 198, 199, 200, 201, 202, 210, 211,
    212, 213, 214, 215, 216, 217, 218, 226, 227, 228, 229, 230, 231, 232, 233, 234, 242, 243, 244, 245,
    246, 247, 248, 249, 250, 255, 218, 0, 12, 3, 1, 0, 2, 17, 3, 17, 0, 63, 0, 242,
    239, 28, 252, 15, 213, 62, 22, 106, 87, 87, 58, 254, 129, 47, 141, 254, 29, 59, 200, 246,
    158, 56, 176, 210, 98, 215, 47, 157, 73, 146, 96, 215, 107, 36, 165, 66, 71, 2, 74, 207,
    36, 106, 152, 242, 114, 202, 11, 238, 173, 61, 55, 192, 150, 175, 240, 210, 211, 93, 240, 173,
    229, 156, 122, 173, 254, 162, 32, 210, 244, 189, 26, 81, 37, 142, 189, 106, 28, 171, 180, 182,
    66, 73, 85, 8, 62, 98, 146, 2, 237, 218, 121, 61, 1, 69, 126, 127, 197, 184, 122, 120,
    58, 114, 246, 42, 214, 127, 125, 148, 158, 171, 103, 126, 93, 86, 218, 187, 37, 165, 190, 211,
    37, 225, 92, 163, 27, 153, 79, 3, 136, 162, 165, 8, 219, 126, 182, 77, 217, 244, 106, 86,
    213, 90, 218, 251, 188, 182, 86, 255, 217,
};
static const int jpeg_rgb_o6_w = 8, jpeg_rgb_o6_h = 16;
static const unsigned char jpeg_rgb_o6_rgb[384] = {
    170, 67, 156, 231, 172, 220, 209, 235, 200, 181, 236, 178, 169, 197, 174, 0, 18, 0, 0, 38,
    0, 86, 178, 101, 209, 123, 188, 255, 213, 254, 176, 173, 166, 118, 143, 114, 0, 13, 0, 0,
    17, 0, 1, 71, 8, 28, 112, 34, 243, 190, 210, 251, 195, 224, 132, 70, 119, 80, 45, 77,
    0, 14, 0, 147, 206, 148, 3, 67, 0, 34, 101, 21, 254, 223, 221, 174, 131, 148, 106, 42,
    94, 31, 0, 23, 0, 14, 0, 113, 172, 104, 60, 121, 43, 0, 59, 0, 255, 241, 243, 204,
    185, 189, 19, 4, 9, 3, 0, 0, 47, 68, 29, 89, 131, 68, 95, 156, 78, 0, 52, 0,
    135, 126, 121, 10, 6, 0, 0, 8, 0, 185, 200, 167, 83, 102, 57, 61, 97, 36, 97, 160,
    81, 0, 49, 0, 249, 244, 225, 6, 1, 0, 5, 3, 0, 166, 171, 141, 104, 120, 81, 46,
    86, 26, 102, 174, 90, 0, 37, 0, 26, 18, 0, 24, 12, 0, 106, 84, 61, 215, 200, 171,
    80, 89, 46, 59, 97, 36, 89, 162, 80, 0, 44, 0, 17, 0, 0, 110, 78, 63, 156, 104,
    82, 200, 156, 121, 55, 49, 0, 94, 124, 60, 84, 152, 77, 0, 44, 0, 37, 0, 0, 168,
    116, 94, 142, 70, 45, 128, 73, 32, 49, 50, 0, 120, 162, 78, 52, 116, 40, 0, 53, 0,
    234, 169, 111, 255, 186, 137, 137, 56, 27, 92, 44, 0, 80, 113, 8, 137, 206, 89, 37, 99,
    14, 21, 80, 12, 206, 111, 45, 255, 203, 139, 206, 137, 80, 215, 189, 112, 130, 172, 46, 115,
    191, 57, 0, 39, 0, 57, 125, 42, 190, 53, 11, 255, 159, 95, 236, 203, 96, 203, 216, 85,
    183, 216, 85, 47, 106, 0, 0, 58, 0, 103, 202, 93, 188, 41, 0, 192, 78, 7, 213, 168,
    51, 164, 159, 31, 126, 133, 21, 3, 45, 0, 13, 116, 0, 63, 196, 55, 250, 118, 33, 161,
    36, 0, 163, 52, 0, 134, 52, 0, 63, 23, 0, 24, 52, 0, 61, 180, 38, 21, 187, 17,
    255, 172, 68, 224, 95, 4, 188, 46, 0, 129, 11, 0, 113, 51, 12, 113, 134, 59, 76, 204,
    55, 0, 135, 0,
};
static const unsigned char jpeg_grey_prog[447] = {
    255, 216, 255, 224, 0, 16, 74, 70, 73, 70, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
    255, 219, 0, 67, 0, 5, 3, 4, 4, 4, 3, 5, 4, 4, 4, 5, 5, 5, 6, 7,
    12, 8, 7, 7, 7, 7, 15, 11, 11, 9, 12, 17, 15, 18, 18, 17, 15, 17, 17, 19,
    22, 28, 23, 19, 20, 26, 21, 17, 17, 24, 33, 24, 26, 29, 29, 31, 31, 31, 19, 23,
    34, 36, 34, 30, 36, 28, 30, 31, 30, 255, 194, 0, 11, 8, 0, 10, 0, 12, 1, 1,
    17, 0, 255, 196, 0, 22, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 5, 6, 8, 255, 218, 0, 8, 1, 1, 0, 0, 0, 1, 13, 155, 76, 243,
    255, 196, 0, 26, 16, 1, 1, 0, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 3, 4, 0, 5, 1, 2, 6, 255, 218, 0, 8, 1, 1, 0, 1, 5, 2, 177, 57,
    130, 174, 251, 168, 3, 60, 225, 157, 26, 102, 101, 22, 255, 196, 0, 34, 16, 0, 2, 1,
    4, 2, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 1, 0, 4, 17, 33,
    19, 49, 145, 18, 20, 34, 65, 161, 255, 218, 0, 8, 1, 1, 0, 6, 63, 2, 184, 3,
    82, 95, 194, 201, 143, 112, 205, 183, 61, 199, 223, 238, 49, 213, 8, 185, 108, 185, 207, 200,
    75, 136, 74, 32, 115, 168, 142, 188, 85, 181, 195, 214, 45, 116, 6, 152, 113, 146, 243, 70,
    10, 105, 172, 125, 83, 161, 44, 87, 255, 196, 0, 27, 16, 1, 0, 2, 3, 1, 1, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 17, 33, 0, 49, 81, 65, 97, 255, 218, 0,
    8, 1, 1, 0, 1, 63, 33, 49, 109, 131, 214, 138, 141, 84, 179, 182, 220, 1, 0, 178,
    72, 92, 80, 248, 99, 197, 35, 41, 149, 145, 40, 42, 215, 155, 37, 83, 13, 240, 207, 255,
    218, 0, 8, 1, 1, 0, 0, 0, 16, 223, 255, 196, 0, 25, 16, 1, 1, 1, 1, 1,
    1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 17, 33, 0, 49, 129, 255, 218, 0,
    8, 1, 1, 0, 1, 63, 16, 146, 57, 195, 210, 184, 41, 32, 209, 0, 64, 98, 253, 39,
    46, 134, 143, 132, 10, 149, 156, 39, 45, 132, 230, 5, 18, 230, 231, 15, 244, 192, 59, 69,
    160, 120, 7, 195, 191, 255, 217,
};
static const int jpeg_grey_prog_w = 12, jpeg_grey_prog_h = 10;
static const unsigned char jpeg_grey_prog_rgb[360] = {
    217, 217, 217, 150, 150, 150, 71, 71, 71, 24, 24, 24, 22, 22, 22, 30, 30, 30, 6, 6,
    6, 165, 165, 165, 103, 103, 103, 246, 246, 246, 240, 240, 240, 94, 94, 94, 62, 62, 62, 0,
    0, 0, 47, 47, 47, 128, 128, 128, 139, 139, 139, 159, 159, 159, 117, 117, 117, 210, 210, 210,
    251, 251, 251, 85, 85, 85, 212, 212, 212, 223, 223, 223, 6, 6, 6, 15, 15, 15, 235, 235,
    235, 255, 255, 255, 230, 230, 230, 232, 232, 232, 243, 243, 243, 17, 17, 17, 140, 140, 140, 0,
    0, 0, 47, 47, 47, 220, 220, 220, 195, 195, 195, 0, 0, 0, 23, 23, 23, 48, 48, 48,
    0, 0, 0, 25, 25, 25, 64, 64, 64, 160, 160, 160, 170, 170, 170, 182, 182, 182, 255, 255,
    255, 167, 167, 167, 255, 255, 255, 169, 169, 169, 4, 4, 4, 13, 13, 13, 5, 5, 5, 135,
    135, 135, 37, 37, 37, 26, 26, 26, 199, 199, 199, 14, 14, 14, 186, 186, 186, 216, 216, 216,
    249, 249, 249, 106, 106, 106, 97, 97, 97, 0, 0, 0, 6, 6, 6, 0, 0, 0, 160, 160,
    160, 0, 0, 0, 118, 118, 118, 247, 247, 247, 102, 102, 102, 0, 0, 0, 255, 255, 255, 99,
    99, 99, 7, 7, 7, 178, 178, 178, 254, 254, 254, 0, 0, 0, 8, 8, 8, 0, 0, 0,
    67, 67, 67, 66, 66, 66, 115, 115, 115, 4, 4, 4, 252, 252, 252, 180, 180, 180, 23, 23,
    23, 9, 9, 9, 96, 96, 96, 93, 93, 93, 4, 4, 4, 0, 0, 0, 0, 0, 0, 75,
    75, 75, 112, 112, 112, 21, 21, 21, 158, 158, 158, 255, 255, 255, 200, 200, 200, 84, 84, 84,
    60, 60, 60, 49, 49, 49, 104, 104, 104, 213, 213, 213, 0, 0, 0, 2, 2, 2, 17, 17,
    17, 132, 132, 132, 0, 0, 0, 114, 114, 114, 213, 213, 213, 252, 252, 252, 247, 247, 247, 248,
    248, 248, 255, 255, 255, 238, 238, 238, 80, 80, 80, 19, 19, 19, 3, 3, 3, 6, 6, 6,
};
static const unsigned char jpeg_cmyk[547] = {
    255, 216, 255, 238, 0, 14, 65, 100, 111, 98, 101, 0, 100, 0, 0, 0, 0, 0, 255, 219,
    0, 67, 0, 3, 2, 2, 3, 2, 2, 3, 3, 3, 3, 4, 3, 3, 4, 5, 8, 5,
    5, 4, 4, 5, 10, 7, 7, 6, 8, 12, 10, 12, 12, 11, 10, 11, 11, 13, 14, 18,
    16, 13, 14, 17, 14, 11, 11, 16, 22, 16, 17, 19, 20, 21, 21, 21, 12, 15, 23, 24,
    22, 20, 24, 18, 20, 21, 20, 255, 192, 0, 20, 8, 0, 8, 0, 8, 4, 67, 17, 0,
    77, 17, 0, 89, 17, 0, 75, 17, 0, 255, 196, 0, 31, 0, 0, 1, 5, 1, 1, 1,
    1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
    10, 11, 255, 196, 0, 181, 16, 0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0,
    0, 1, 125, 1, 2, 3, 0, 4, 17, 5, 18, 33, 49, 65, 6, 19, 81, 97, 7, 34,
    113, 20, 50, 129, 145, 161, 8, 35, 66, 177, 193, 21, 82, 209, 240, 36, 51, 98, 114, 130,
    9, 10, 22, 23, 24, 25, 26, 37, 38, 39, 40, 41, 42, 52, 53, 54, 55, 56, 57, 58,
    67, 68, 69, 70, 71, 72, 73, 74, 83, 84, 85, 86, 87, 88, 89, 90, 99, 100, 101, 102,
    103, 104, 105, 106, 115, 116, 117, 118, 119, 120, 121, 122, 131, 132, 133, 134, 135, 136, 137, 138,
    146, 147, 148, 149, 150, 151, 152, 153, 154, 162, 163, 164, 165, 166, 167, 168, 169, 170, 178, 179,
    180, 181, 182, 183, 184, 185, 186, 194, 195, 196, 197, 198, 199, 200, 201, 202, 210, 211, 212, 213,
    214, 215, 216, 217, 218, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 241, 242, 243, 244, 245,
    246, 247, 248, 249, 250, 255, 218, 0, 14, 4, 67, 0, 77, 0, 89, 0, 75, 0, 0, 63,
    0, 250, 155, 246, 115, 248, 235, 161, 126, 210, 190, 48, 208, 60, 113, 107, 122, 154, 118, 169,
    167, 105, 87, 218, 91, 105, 210, 97, 225, 147, 237, 79, 97, 35, 180, 50, 2, 10, 176, 107,
    46, 99, 109, 196, 249, 155, 129, 192, 32, 250, 199, 237, 225, 240, 166, 219, 227, 101, 166, 167,
    160, 232, 122, 182, 157, 167, 120, 201, 228, 205, 166, 159, 226, 27, 241, 4, 26, 177, 10, 209,
    165, 189, 164, 173, 194, 220, 52, 172, 168, 33, 98, 161, 139, 130, 29, 66, 176, 30, 131, 224,
    47, 219, 35, 65, 248, 255, 0, 226, 221, 59, 84, 240, 230, 191, 166, 232, 95, 18, 52, 235,
    57, 236, 45, 52, 45, 103, 80, 88, 109, 245, 100, 187, 107, 82, 99, 178, 145, 202, 133, 185,
    121, 173, 98, 85, 129, 137, 200, 144, 21, 114, 21, 177, 222, 248, 71, 75, 208, 127, 104, 13,
    67, 68, 209, 141, 214, 133, 225, 109, 118, 206, 210, 217, 53, 127, 5, 207, 122, 185, 178, 62,
    68, 17, 223, 38, 151, 108, 210, 52, 250, 60, 214, 151, 41, 43, 170, 136, 128, 145, 225, 180,
    117, 156, 198, 29, 7, 255, 217,
};
static const int jpeg_cmyk_w = 8, jpeg_cmyk_h = 8;
static const unsigned char jpeg_cmyk_rgb[192] = {
    22, 22, 21, 166, 172, 175, 235, 189, 223, 254, 151, 255, 1, 28, 5, 93, 23, 88, 0, 0,
    0, 167, 0, 165, 247, 251, 254, 168, 135, 144, 53, 39, 50, 40, 22, 34, 11, 96, 15, 233,
    73, 207, 183, 32, 171, 2, 0, 2, 247, 248, 238, 255, 255, 250, 93, 96, 99, 140, 107, 129,
    32, 107, 49, 12, 3, 9, 252, 46, 191, 96, 11, 76, 4, 7, 4, 225, 233, 239, 253, 255,
    243, 233, 220, 228, 1, 3, 2, 80, 28, 46, 89, 19, 52, 240, 0, 144, 2, 5, 2, 138,
    219, 91, 21, 24, 13, 255, 255, 255, 231, 250, 250, 157, 41, 81, 38, 5, 18, 241, 7, 108,
    0, 0, 0, 98, 209, 78, 49, 83, 37, 9, 7, 4, 221, 228, 222, 248, 254, 244, 242, 245,
    233, 232, 8, 65, 10, 64, 9, 11, 40, 5, 100, 177, 40, 119, 148, 32, 110, 78, 33, 235,
    238, 239, 238, 238, 239, 240, 230, 235, 3, 248, 0, 5, 41, 4, 3, 10, 0, 3, 3, 0,
    8, 6, 1, 91, 39, 0, 188, 28, 0, 225, 220, 226,
};
static const unsigned char png_rgba16_interlaced[359] = {
    137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 7,
    0, 0, 0, 5, 16, 6, 0, 0, 1, 174, 13, 26, 13, 0, 0, 1, 46, 73, 68, 65,
    84, 120, 156, 1, 35, 1, 220, 254, 0, 14, 232, 0, 77, 219, 85, 8, 190, 0, 78, 174,
    243, 207, 144, 32, 239, 53, 0, 11, 210, 245, 39, 18, 102, 255, 77, 2, 193, 0, 77, 0,
    77, 0, 77, 0, 76, 170, 0, 77, 12, 70, 0, 77, 249, 187, 0, 77, 83, 169, 0, 77,
    1, 82, 63, 250, 2, 247, 74, 155, 78, 173, 14, 255, 235, 252, 163, 101, 255, 0, 6, 164,
    129, 251, 253, 135, 108, 178, 0, 90, 9, 24, 0, 77, 20, 99, 180, 21, 137, 128, 24, 5,
    43, 37, 52, 106, 142, 216, 0, 77, 187, 4, 0, 177, 175, 184, 126, 43, 89, 46, 45, 128,
    76, 0, 217, 5, 178, 0, 77, 197, 176, 7, 138, 255, 77, 0, 77, 1, 9, 11, 0, 77,
    0, 77, 9, 96, 118, 161, 126, 206, 180, 156, 45, 218, 88, 19, 250, 38, 75, 100, 230, 100,
    2, 22, 159, 220, 118, 216, 219, 202, 9, 129, 161, 130, 50, 76, 100, 202, 19, 45, 47, 136,
    12, 1, 0, 228, 175, 0, 0, 77, 2, 221, 2, 246, 0, 77, 0, 77, 4, 90, 4, 204,
    8, 216, 94, 33, 60, 234, 193, 200, 38, 87, 138, 174, 76, 209, 190, 122, 34, 255, 92, 207,
    184, 163, 19, 69, 235, 113, 210, 227, 63, 132, 0, 77, 13, 105, 105, 120, 85, 253, 208, 103,
    62, 141, 1, 27, 0, 185, 253, 255, 77, 191, 96, 15, 204, 15, 115, 33, 208, 220, 226, 214,
    129, 92, 60, 229, 71, 101, 11, 11, 103, 222, 136, 8, 51, 0, 0, 245, 153, 254, 25, 251,
    83, 0, 0, 220, 209, 205, 55, 221, 193, 17, 24, 29, 230, 223, 245, 57, 145, 250, 137, 42,
    240, 120, 227, 225, 4, 5, 40, 0, 0, 0, 0, 73, 69, 78, 68, 174, 66, 96, 130,
};
static const int png_rgba16_interlaced_w = 7, png_rgba16_interlaced_h = 5;
static const unsigned char png_rgba16_interlaced_rgb[105] = {
    14, 0, 219, 177, 184, 43, 76, 0, 12, 128, 0, 5, 78, 243, 144, 197, 7, 255, 249, 0,
    83, 0, 2, 2, 0, 4, 4, 94, 60, 193, 138, 76, 190, 92, 184, 19, 210, 63, 0, 105,
    85, 208, 6, 129, 253, 9, 0, 0, 0, 9, 0, 127, 126, 180, 180, 137, 24, 215, 120, 255,
    52, 142, 0, 27, 185, 255, 42, 200, 32, 0, 36, 5, 11, 2, 13, 0, 0, 8, 220, 205,
    229, 249, 172, 30, 11, 245, 18, 31, 220, 216, 82, 250, 247, 0, 0, 0, 2, 0, 0, 4,
    0, 0, 255, 249, 243,
};
static const unsigned char png_pal4_exif_o8[169] = {
    137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 9,
    0, 0, 0, 4, 4, 3, 0, 0, 0, 174, 33, 8, 253, 0, 0, 0, 15, 80, 76, 84,
    69, 255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 99, 199, 1, 2, 3, 99, 170, 4, 120,
    0, 0, 0, 2, 116, 82, 78, 83, 0, 128, 155, 43, 78, 24, 0, 0, 0, 33, 73, 68,
    65, 84, 120, 156, 99, 96, 96, 224, 103, 184, 192, 200, 16, 194, 246, 251, 55, 147, 224, 30,
    71, 182, 0, 230, 239, 149, 135, 118, 105, 2, 0, 72, 104, 7, 175, 148, 169, 21, 51, 0,
    0, 0, 26, 101, 88, 73, 102, 73, 73, 42, 0, 8, 0, 0, 0, 1, 0, 18, 1, 3,
    0, 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 162, 194, 3, 27, 0, 0, 0,
    0, 73, 69, 78, 68, 174, 66, 96, 130,
};
static const int png_pal4_exif_o8_w = 4, png_pal4_exif_o8_h = 9;
static const unsigned char png_pal4_exif_o8_rgb[108] = {
    13, 13, 13, 5, 5, 5, 10, 10, 10, 15, 15, 15, 255, 0, 0, 5, 5, 5, 11, 11,
    11, 15, 15, 15, 255, 0, 0, 5, 5, 5, 5, 5, 5, 14, 14, 14, 15, 15, 15, 10,
    10, 10, 11, 11, 11, 15, 15, 15, 255, 0, 0, 5, 5, 5, 9, 9, 9, 255, 0, 0,
    255, 0, 0, 1, 2, 3, 255, 0, 0, 255, 0, 0, 255, 0, 0, 5, 5, 5, 0, 255,
    0, 255, 0, 0, 255, 0, 0, 255, 0, 0, 0, 255, 0, 15, 15, 15, 255, 0, 0, 255,
    0, 0, 0, 255, 0, 15, 15, 15,
};
static const unsigned char resize_o6_5x20[300] = {
    193, 103, 180, 215, 227, 206, 181, 226, 182, 21, 42, 21, 50, 121, 59, 219, 142, 208, 203, 205,
    197, 91, 118, 89, 0, 20, 0, 27, 105, 35, 245, 183, 223, 179, 145, 169, 42, 43, 40, 41,
    81, 42, 16, 91, 14, 247, 198, 214, 146, 82, 130, 31, 18, 30, 91, 150, 89, 20, 85, 10,
    228, 195, 198, 106, 52, 91, 12, 4, 8, 84, 140, 73, 25, 86, 18, 248, 231, 233, 64, 45,
    54, 13, 19, 4, 90, 137, 70, 37, 94, 31, 120, 110, 107, 36, 38, 30, 104, 120, 85, 77,
    119, 54, 39, 95, 33, 115, 110, 100, 18, 22, 14, 141, 156, 118, 70, 114, 49, 40, 94, 35,
    121, 116, 103, 42, 35, 26, 140, 146, 112, 69, 115, 50, 40, 93, 35, 15, 6, 0, 114, 92,
    71, 150, 143, 107, 68, 112, 46, 35, 93, 33, 46, 25, 20, 158, 113, 91, 132, 107, 65, 81,
    119, 52, 34, 90, 33, 68, 33, 29, 158, 95, 70, 99, 68, 26, 88, 130, 56, 22, 80, 20,
    172, 117, 86, 154, 79, 51, 78, 59, 1, 99, 156, 60, 20, 81, 12, 255, 184, 123, 178, 104,
    66, 106, 105, 21, 100, 168, 54, 25, 84, 14, 226, 143, 79, 229, 171, 108, 180, 191, 83, 79,
    142, 33, 32, 90, 27, 219, 97, 48, 241, 198, 100, 196, 221, 88, 52, 108, 10, 57, 137, 54,
    195, 58, 9, 216, 169, 56, 163, 175, 45, 24, 78, 0, 47, 160, 40, 199, 62, 6, 176, 93,
    15, 117, 86, 10, 22, 69, 2, 39, 181, 29, 226, 104, 28, 163, 40, 0, 100, 23, 0, 58,
    98, 23, 34, 185, 25, 247, 148, 44, 189, 49, 0, 121, 26, 6, 109, 147, 56, 28, 165, 22,
};
static const unsigned char resize_o6_19x3[171] = {
    222, 176, 205, 220, 173, 201, 209, 166, 193, 189, 152, 177, 158, 127, 149, 119, 95, 113, 99, 85,
    95, 99, 95, 96, 91, 95, 88, 66, 77, 63, 45, 60, 41, 50, 73, 45, 66, 100, 60, 70,
    112, 63, 57, 109, 49, 41, 103, 35, 32, 96, 28, 25, 91, 25, 25, 88, 26, 117, 98, 81,
    118, 94, 76, 113, 88, 70, 106, 80, 61, 103, 72, 54, 96, 59, 42, 110, 75, 52, 147, 118,
    88, 159, 139, 101, 122, 117, 70, 80, 92, 35, 74, 100, 34, 86, 125, 49, 89, 139, 59, 86,
    145, 66, 74, 138, 62, 42, 99, 36, 12, 60, 9, 7, 44, 4, 204, 89, 27, 209, 94, 32,
    217, 109, 47, 223, 122, 60, 217, 124, 58, 205, 121, 49, 192, 120, 44, 175, 119, 41, 158, 118,
    37, 139, 118, 32, 120, 118, 28, 100, 117, 28, 78, 115, 31, 59, 114, 29, 39, 110, 22, 28,
    114, 16, 34, 136, 26, 46, 157, 38, 50, 166, 43,
};
static const unsigned char resize_o6_8x7[168] = {
    199, 110, 178, 247, 195, 238, 186, 183, 175, 139, 165, 136, 65, 84, 67, 26, 51, 27, 0, 54,
    1, 53, 138, 59, 250, 216, 223, 209, 169, 187, 92, 41, 80, 37, 12, 32, 5, 21, 1, 116,
    169, 107, 50, 113, 38, 9, 69, 5, 194, 187, 177, 41, 36, 33, 4, 5, 0, 143, 152, 126,
    85, 104, 62, 58, 97, 36, 102, 168, 87, 0, 43, 0, 42, 30, 23, 63, 40, 28, 117, 80,
    60, 197, 167, 135, 69, 70, 27, 76, 111, 48, 86, 157, 77, 0, 41, 0, 150, 92, 54, 227,
    170, 128, 157, 81, 49, 135, 87, 39, 78, 101, 11, 131, 191, 81, 35, 91, 22, 21, 77, 14,
    202, 70, 19, 236, 145, 80, 220, 173, 76, 193, 190, 73, 151, 179, 55, 48, 107, 13, 3, 71,
    0, 80, 184, 69, 241, 124, 40, 188, 61, 0, 181, 70, 7, 135, 52, 2, 92, 50, 7, 51,
    78, 21, 59, 182, 38, 20, 170, 17,
};

// ------------------------------------------------------------------ helpers

static int contains(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

// Decodes and checks the invariants every outcome must satisfy: 0 with a
// sane image, or -1 with an error line that names the input.
static int decode_checked(const unsigned char *buf, size_t n, const char *name, ufo_image *img) {
    ufo_error_clear();
    int rc = ufo_image_decode(buf, n, name, img);
    if (rc == 0) {
        CHECK(img->rgb && img->w > 0 && img->h > 0, "%s: success without pixels", name);
    } else {
        CHECK(rc == -1, "%s: rc %d", name, rc);
        CHECK(img->rgb == NULL && img->w == 0 && img->h == 0, "%s: failure left an image", name);
        CHECK(contains(ufo_error(), name), "%s: error does not name the input: %s", name, ufo_error());
    }
    return rc;
}

typedef struct {
    const char *name;
    const unsigned char *data;
    size_t n;
    int w, h;
    const unsigned char *rgb;
    size_t tail;  // cuts this close to the end may be accepted (as by Pillow)
} sample;

static void check_valid(const sample *s) {
    ufo_image img;
    int rc = decode_checked(s->data, s->n, s->name, &img);
    CHECK(rc == 0, "%s: %s", s->name, ufo_error());
    if (rc) return;
    CHECK(img.w == s->w && img.h == s->h, "%s: %dx%d, want %dx%d", s->name, img.w, img.h, s->w, s->h);
    if (img.w == s->w && img.h == s->h)
        CHECK(memcmp(img.rgb, s->rgb, (size_t)s->w * s->h * 3) == 0, "%s: pixels differ from Pillow", s->name);
    ufo_image_free(&img);
    CHECK(img.rgb == NULL, "free clears");
}

// Every prefix: must fail cleanly, except a cut inside the last `tail` bytes
// (the EOI marker; the IEND chunk or, for the PNG whose eXIf follows the image
// data, that chunk too), which Pillow accepts as well. An accepted cut gives
// the full image, or the unrotated one when the EXIF itself was cut off.
static void check_truncations(const sample *s) {
    int bad = 0;
    for (size_t cut = 0; cut < s->n; cut++) {
        unsigned char *copy = malloc(cut ? cut : 1);  // exact size: ASan sees overreads
        memcpy(copy, s->data, cut);
        ufo_image img;
        int rc = decode_checked(copy, cut, s->name, &img);
        if (rc == 0) {
            if (cut + s->tail < s->n) {
                bad++;
                fprintf(stderr, "%s: cut at %zu of %zu accepted\n", s->name, cut, s->n);
            } else if (img.w == s->w && img.h == s->h) {
                if (memcmp(img.rgb, s->rgb, (size_t)s->w * s->h * 3) != 0) bad++;
            } else if (!(s->tail > 12 && img.w == s->h && img.h == s->w)) {
                bad++;
            }
            ufo_image_free(&img);
        } else if (cut >= 3) {
            const char *e = ufo_error();
            CHECK(contains(e, "truncated") || contains(e, "corrupt") || contains(e, "not a JPEG or PNG"),
                  "%s cut at %zu: unexpected message: %s", s->name, cut, e);
        }
        free(copy);
    }
    CHECK(bad == 0, "%s: %d truncated inputs accepted or decoded wrongly", s->name, bad);
}

// Single-byte corruptions at every offset (and a few values): never a crash,
// never a leak, always the invariants above (ASan/UBSan builds check the rest).
static void check_mutations(const sample *s) {
    static const unsigned char vals[] = {0x00, 0xFF, 0x80, 0x7F, 0x01};
    unsigned char *copy = malloc(s->n);
    for (size_t i = 0; i < s->n; i++) {
        for (size_t v = 0; v < sizeof vals; v++) {
            memcpy(copy, s->data, s->n);
            if (copy[i] == vals[v]) continue;
            copy[i] = vals[v];
            ufo_image img;
            if (decode_checked(copy, s->n, s->name, &img) == 0) {
                // a decodable mutant must also resize
                ufo_image r;
                CHECK(ufo_image_resize_bicubic(&img, 7, 5, &r) == 0, "%s: resize of a mutant", s->name);
                ufo_image_free(&r);
                ufo_image_free(&img);
            }
        }
    }
    free(copy);
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

// PNG with the IHDR size replaced (CRC fixed up, so only the size is wrong).
static unsigned char *png_with_size(const sample *s, uint32_t w, uint32_t h) {
    unsigned char *c = malloc(s->n);
    memcpy(c, s->data, s->n);
    put_be32(c + 16, w);
    put_be32(c + 20, h);
    put_be32(c + 29, (uint32_t)crc32(0, c + 12, 17));
    return c;
}

// JPEG with the SOF0/SOF2 size replaced.
static unsigned char *jpeg_with_size(const sample *s, unsigned w, unsigned h) {
    unsigned char *c = malloc(s->n);
    memcpy(c, s->data, s->n);
    for (size_t i = 2; i + 9 < s->n;) {
        if (c[i] != 0xFF) break;
        unsigned m = c[i + 1], len = (unsigned)c[i + 2] << 8 | c[i + 3];
        if (m == 0xC0 || m == 0xC1 || m == 0xC2) {
            c[i + 5] = (unsigned char)(h >> 8), c[i + 6] = (unsigned char)h;
            c[i + 7] = (unsigned char)(w >> 8), c[i + 8] = (unsigned char)w;
            return c;
        }
        i += 2 + len;
    }
    free(c);
    return NULL;
}

static void check_sizes(const sample *png, const sample *jpg) {
    static const uint32_t bad[][2] = {{0, 5}, {5, 0}, {0, 0}, {65536, 1}, {1, 65536}, {60000, 60000},
                                      {0x7FFFFFFF, 0x7FFFFFFF}, {0x80000000u, 1}, {0xFFFFFFFFu, 0xFFFFFFFFu}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char *c = png_with_size(png, bad[i][0], bad[i][1]);
        ufo_image img;
        int rc = decode_checked(c, png->n, "bad-size.png", &img);
        CHECK(rc == -1, "png %ux%u accepted", bad[i][0], bad[i][1]);
        free(c);
    }
    static const unsigned jbad[][2] = {{0, 16}, {8, 0}, {65535, 65535}, {65500, 65500}, {30000, 30000}};
    for (size_t i = 0; i < sizeof jbad / sizeof jbad[0]; i++) {
        unsigned char *c = jpeg_with_size(jpg, jbad[i][0], jbad[i][1]);
        CHECK(c != NULL, "no SOF found");
        if (!c) continue;
        ufo_image img;
        int rc = decode_checked(c, jpg->n, "bad-size.jpg", &img);
        CHECK(rc == -1, "jpeg %ux%u accepted", jbad[i][0], jbad[i][1]);
        if (jbad[i][0] == 30000) CHECK(contains(ufo_error(), "too large"), "message: %s", ufo_error());
        free(c);
    }
    // A plausible size that is merely bigger than the data. JPEG: libjpeg hits
    // the EOI marker and fills the rest with grey, as in Pillow (accepted).
    unsigned char *c = jpeg_with_size(jpg, 3000, 2000);
    ufo_image img;
    if (decode_checked(c, jpg->n, "grown.jpg", &img) == 0) {
        CHECK(img.w * img.h == 3000 * 2000, "grown jpeg size %dx%d", img.w, img.h);
        ufo_image_free(&img);
    }
    free(c);
    c = png_with_size(png, 3000, 2000);
    CHECK(decode_checked(c, png->n, "grown.png", &img) == -1, "grown png accepted");
    free(c);
    // Limits (as the fuzz target lowers them)
    ufo_image_set_limits(4, 1000);
    CHECK(decode_checked(jpg->data, jpg->n, "limited.jpg", &img) == -1 && contains(ufo_error(), "too large"),
          "limit not applied: %s", ufo_error());
    ufo_image_set_limits(0, 0);
    CHECK(decode_checked(jpg->data, jpg->n, "unlimited.jpg", &img) == 0, "limits not restored");
    ufo_image_free(&img);
}

// ------------------------------------------------------------------ EXIF

static size_t tiff(unsigned char *b, int le, uint32_t ifd, int count) {
    memcpy(b, le ? "II*\0" : "MM\0*", 4);
    for (int i = 0; i < 4; i++) b[4 + i] = (unsigned char)(le ? ifd >> (8 * i) : ifd >> (24 - 8 * i));
    b[8] = (unsigned char)(le ? count : count >> 8);
    b[9] = (unsigned char)(le ? count >> 8 : count);
    return 10;
}
static size_t entry(unsigned char *b, int le, unsigned tag, unsigned typ, uint32_t cnt, uint32_t val) {
    unsigned char e[12];
    e[le ? 1 : 0] = (unsigned char)(tag >> 8), e[le ? 0 : 1] = (unsigned char)tag;
    e[le ? 3 : 2] = (unsigned char)(typ >> 8), e[le ? 2 : 3] = (unsigned char)typ;
    for (int i = 0; i < 4; i++) e[4 + i] = (unsigned char)(le ? cnt >> (8 * i) : cnt >> (24 - 8 * i));
    if (typ == 3 && cnt <= 2) {  // SHORT: value in the first two bytes
        e[8 + (le ? 1 : 0)] = (unsigned char)(val >> 8), e[8 + (le ? 0 : 1)] = (unsigned char)val;
        e[10] = e[11] = 0;
    } else {
        for (int i = 0; i < 4; i++) e[8 + i] = (unsigned char)(le ? val >> (8 * i) : val >> (24 - 8 * i));
    }
    memcpy(b, e, 12);
    return 12;
}

static void check_exif(void) {
    unsigned char b[256];
    for (int le = 0; le < 2; le++) {
        for (int o = 1; o <= 8; o++) {
            size_t n = tiff(b, le, 8, 1);
            n += entry(b + n, le, 0x0112, 3, 1, (uint32_t)o);
            CHECK(ufo_exif_orientation(b, n) == o, "le %d o %d", le, o);
            // every prefix: no overread (ASan), absent or the value
            for (size_t k = 0; k < n; k++) {
                unsigned char *c = malloc(k ? k : 1);
                memcpy(c, b, k);
                int r = ufo_exif_orientation(c, k);
                CHECK(r == -1, "prefix %zu of %zu gave %d", k, n, r);
                free(c);
            }
        }
        size_t n = tiff(b, le, 8, 1);
        n += entry(b + n, le, 0x0112, 3, 1, 6);
        unsigned char ex[300];
        memcpy(ex, "Exif\0\0", 6);
        memcpy(ex + 6, b, n);
        CHECK(ufo_exif_orientation(ex, n + 6) == 6, "Exif prefix");
        // IFD offset past the end, at the end, huge
        uint32_t offs[] = {(uint32_t)n, (uint32_t)n + 1, 1000, 0xFFFFFFF0u, 0xFFFFFFFFu};
        for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
            tiff(b, le, offs[i], 1);
            CHECK(ufo_exif_orientation(b, n) == -1, "ifd offset %u", offs[i]);
        }
        // entry count larger than the data: the entries present still count
        tiff(b, le, 8, 0xFFFF);
        CHECK(ufo_exif_orientation(b, n) == 6, "huge count");
        // out-of-line value with bad offsets / huge counts stops the IFD
        uint32_t vo[] = {0xFFFFFFFFu, 0xFFFFFFF8u, 200, 34 - 4, 34 - 7};  // the IFD below is 34 bytes
        for (size_t i = 0; i < sizeof vo / sizeof vo[0]; i++) {
            size_t m = tiff(b, le, 8, 2);
            m += entry(b + m, le, 0x010F, 5, 1, vo[i]);  // RATIONAL, 8 bytes: out of line
            m += entry(b + m, le, 0x0112, 3, 1, 3);
            CHECK(ufo_exif_orientation(b, m) == -1, "bad value offset %u", vo[i]);
        }
        size_t m = tiff(b, le, 8, 1);
        m += entry(b + m, le, 0x0112, 3, 0xFFFFFFFFu, 8);
        CHECK(ufo_exif_orientation(b, m) == -1, "count 2^32-1");
        m = tiff(b, le, 8, 1);
        m += entry(b + m, le, 0x0112, 4, 0x40000000u, 8);
        CHECK(ufo_exif_orientation(b, m) == -1, "count 2^30 LONG");
        // IFD pointing into its own header / overlapping
        m = tiff(b, le, 0, 1);
        CHECK(ufo_exif_orientation(b, 10) <= 8, "ifd at 0");
        m = tiff(b, le, 4, 1);
        CHECK(ufo_exif_orientation(b, 10) <= 8, "ifd at 4");
        // RATIONAL 12/2 -> 6, 13/2 -> present but unusable, 6/0 -> unusable
        uint32_t rat[][2] = {{12, 2}, {13, 2}, {6, 0}};
        int want[] = {6, 0, 0};
        for (int i = 0; i < 3; i++) {
            size_t k = tiff(b, le, 8, 1);
            k += entry(b + k, le, 0x0112, 5, 1, 26);
            k += 4;  // next-IFD pointer
            for (int j = 0; j < 2; j++)
                for (int q = 0; q < 4; q++) b[k + 4 * j + q] = (unsigned char)(le ? rat[i][j] >> (8 * q) : rat[i][j] >> (24 - 8 * q));
            CHECK(ufo_exif_orientation(b, k + 8) == want[i], "rational %u/%u", rat[i][0], rat[i][1]);
        }
        // BYTE type: bytes in Pillow, never a match
        m = tiff(b, le, 8, 1);
        m += entry(b + m, le, 0x0112, 1, 1, le ? 6u : 6u << 24);
        CHECK(ufo_exif_orientation(b, m) == 0, "BYTE type");
    }
    CHECK(ufo_exif_orientation(NULL, 0) == -1, "NULL");
    CHECK(ufo_exif_orientation((const unsigned char *)"Exif\0\0", 6) == -1, "empty");
    CHECK(ufo_exif_orientation((const unsigned char *)"II+\0\x08\0\0\0\0\0", 10) == -1, "BigTIFF");
    // text forms
    const char *raw = "\nexif\n      22\n4578696600004d4d002a00000008000101120003000000010006\n0000";
    CHECK(ufo_exif_orientation_raw_profile(raw, strlen(raw)) == 6, "raw profile");
    const char *raw_split = "\nexif\n 22\n4578696600004d4d002a0000000800010112000300000001000\n60000";
    CHECK(ufo_exif_orientation_raw_profile(raw_split, strlen(raw_split)) == 6, "raw profile, digit pair split by a newline");
    const char *raw_bad = "\nexif\n 22\n4578696600004d4d002a000000080001011200030000000100 6";
    CHECK(ufo_exif_orientation_raw_profile(raw_bad, strlen(raw_bad)) == -1, "raw profile, bad hex");
    CHECK(ufo_exif_orientation_raw_profile("\nexif\n", 6) == -1, "raw profile, short");
    CHECK(ufo_exif_orientation_raw_profile("", 0) == -1, "raw profile, empty");
    const char *x1 = "<x tiff:Orientation=\"6\"/>", *x2 = "<tiff:Orientation>8</tiff:Orientation>",
               *x3 = "tiff:Orientation tiff:Orientation=\"9\"", *x4 = "tiff:Orientation=\"", *x5 = "tiff:Orientation";
    CHECK(ufo_xmp_orientation(x1, strlen(x1)) == 6, "xmp attr");
    CHECK(ufo_xmp_orientation(x2, strlen(x2)) == 8, "xmp element");
    CHECK(ufo_xmp_orientation(x3, strlen(x3)) == 0, "xmp 9");
    CHECK(ufo_xmp_orientation(x4, strlen(x4)) == -1, "xmp cut");
    CHECK(ufo_xmp_orientation(x5, strlen(x5)) == -1, "xmp cut 2");
}

// ------------------------------------------------------------------ resize / chw

static void check_resize(const sample *s) {
    ufo_image img, r;
    if (decode_checked(s->data, s->n, s->name, &img) != 0) return;
    struct { int w, h; const unsigned char *want; } cases[] = {
        {5, 20, resize_o6_5x20}, {19, 3, resize_o6_19x3}, {8, 7, resize_o6_8x7}};
    for (int i = 0; i < 3; i++) {
        CHECK(ufo_image_resize_bicubic(&img, cases[i].w, cases[i].h, &r) == 0, "resize");
        CHECK(r.w == cases[i].w && r.h == cases[i].h, "resize size");
        CHECK(memcmp(r.rgb, cases[i].want, (size_t)r.w * r.h * 3) == 0, "resize %dx%d differs from Pillow",
              cases[i].w, cases[i].h);
        ufo_image_free(&r);
    }
    CHECK(ufo_image_resize_bicubic(&img, img.w, img.h, &r) == 0 &&
              memcmp(r.rgb, img.rgb, (size_t)img.w * img.h * 3) == 0, "same size is a copy");
    ufo_image_free(&r);
    CHECK(ufo_image_resize_bicubic(&img, 0, 5, &r) == -1 && r.rgb == NULL, "zero width");
    CHECK(ufo_image_resize_bicubic(&img, 5, -1, &r) == -1, "negative height");
    CHECK(ufo_image_resize_bicubic(&img, 1 << 20, 5, &r) == -1, "huge width");
    ufo_image empty = {0, 0, NULL};
    CHECK(ufo_image_resize_bicubic(&empty, 5, 5, &r) == -1, "empty source");
    // extreme ratios both ways
    CHECK(ufo_image_resize_bicubic(&img, 1, 1, &r) == 0, "to 1x1");
    ufo_image_free(&r);
    CHECK(ufo_image_resize_bicubic(&img, 1000, 2, &r) == 0, "to 1000x2");
    ufo_image_free(&r);

    float *chw = malloc(sizeof(float) * 3 * img.w * img.h);
    ufo_image_to_chw(&img, chw);
    int okc = 1;
    for (int y = 0; y < img.h; y++)
        for (int x = 0; x < img.w; x++)
            for (int c = 0; c < 3; c++) {
                float v = ((float)img.rgb[(y * img.w + x) * 3 + c] - 127.5f) / 127.5f;
                if (chw[(c * img.h + y) * img.w + x] != v) okc = 0;
            }
    CHECK(okc, "to_chw layout/values");
    ufo_image one = {1, 1, (uint8_t[]){0, 255, 128}};
    float o3[3];
    ufo_image_to_chw(&one, o3);
    CHECK(o3[0] == -1.0f && o3[1] == 1.0f && o3[2] == 0.5f / 127.5f, "to_chw endpoints");
    free(chw);
    ufo_image_free(&img);
}

static void check_misc(void) {
    ufo_image img;
    CHECK(decode_checked((const unsigned char *)"GIF89a....", 10, "x.gif", &img) == -1 &&
              contains(ufo_error(), "not a JPEG or PNG image"), "garbage: %s", ufo_error());
    CHECK(decode_checked(NULL, 0, "empty", &img) == -1, "NULL buffer");
    CHECK(decode_checked((const unsigned char *)"\xFF\xD8\xFF", 3, "tiny.jpg", &img) == -1, "magic only jpeg");
    CHECK(decode_checked((const unsigned char *)"\x89PNG\r\n\x1a\n", 8, "tiny.png", &img) == -1, "magic only png");
    CHECK(ufo_image_load("/nonexistent/dir/x.jpg", &img) == -1 && contains(ufo_error(), "/nonexistent/dir/x.jpg"),
          "missing file: %s", ufo_error());
    CHECK(ufo_image_load("tests", &img) == -1, "directory");
    float out[3];
    CHECK(ufo_preprocess_file("/nonexistent.png", 1, 1, out) == -1, "preprocess missing");
    ufo_image_free(NULL);
}

int main(void) {
    sample S[] = {
        {"rgb_o6.jpg", jpeg_rgb_o6, sizeof jpeg_rgb_o6, jpeg_rgb_o6_w, jpeg_rgb_o6_h, jpeg_rgb_o6_rgb, 2},
        {"grey_prog.jpg", jpeg_grey_prog, sizeof jpeg_grey_prog, jpeg_grey_prog_w, jpeg_grey_prog_h, jpeg_grey_prog_rgb, 2},
        {"cmyk.jpg", jpeg_cmyk, sizeof jpeg_cmyk, jpeg_cmyk_w, jpeg_cmyk_h, jpeg_cmyk_rgb, 2},
        {"rgba16_interlaced.png", png_rgba16_interlaced, sizeof png_rgba16_interlaced, png_rgba16_interlaced_w,
         png_rgba16_interlaced_h, png_rgba16_interlaced_rgb, 12},
        {"pal4_exif_o8.png", png_pal4_exif_o8, sizeof png_pal4_exif_o8, png_pal4_exif_o8_w, png_pal4_exif_o8_h,
         png_pal4_exif_o8_rgb, 12 + 38},
    };
    const int ns = (int)(sizeof S / sizeof S[0]);
    for (int i = 0; i < ns; i++) check_valid(&S[i]);
    for (int i = 0; i < ns; i++) check_truncations(&S[i]);
    for (int i = 0; i < ns; i++) check_mutations(&S[i]);
    check_sizes(&S[3], &S[0]);
    check_exif();
    check_resize(&S[0]);
    check_misc();
    return check_summary("test_image");
}
