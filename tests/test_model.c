// Model structure: parameter counts from SPEC section 1, save/load round
// trip, pos_embed resampling identities, config validation.
#include "check.h"
#include "base/error.h"
#include "model/vit_io.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long long backbone_params(const char *preset, int img) {
    vit_config c;
    if (vit_config_preset(preset, img, 16, &c)) return -1;
    vit_param *t;
    size_t total;
    int n = vit_param_table(&c, 0xf, &t, &total);
    long long count = 0;
    for (int i = 0; i < n; i++)
        if (t[i].kind < P_BN_W) count += (long long)t[i].numel;
    free(t);
    return count;
}

static void test_param_counts(void) {
    // SPEC: 303,690,752 in the ViT-L/16-384 backbone. timm's ViT-B/16-224 is
    // 86,567,656 with its 1000-class head (768*1000 + 1000), so 85,798,656 without.
    CHECK(backbone_params("large", 384) == 303690752LL, "%lld", backbone_params("large", 384));
    CHECK(backbone_params("base", 224) == 85798656LL, "%lld", backbone_params("base", 224));
}

static void test_config_errors(void) {
    vit_config c;
    CHECK(vit_config_preset("huge", 224, 16, &c) != 0 && strstr(ufo_error(), "huge"));
    CHECK(vit_config_preset("tiny", 100, 16, &c) != 0 && strstr(ufo_error(), "multiple"));
    CHECK(vit_config_preset("tiny", 224, 16, &c) == 0 && c.dim == 192 && c.heads == 3 && c.mlp_hidden == 768);
    c.heads = 5;
    CHECK(vit_config_check(&c) != 0 && strstr(ufo_error(), "divisible"));
}

static void test_save_load(void) {
    vit_config c;
    vit_config_preset("tiny", 32, 16, &c);
    c.depth = 2;
    vit_model m, m2;
    CHECK(vit_alloc(&m, &c, (1u << UFO_TASK_FACE) | (1u << UFO_TASK_PRODUCT)) == 0);
    vit_init_random(&m, 42);
    const char *path = "test_model_roundtrip.safetensors";
    CHECK(vit_save(&m, path, UFO_F32) == 0, "%s", ufo_error());
    vit_load_options o = {0};
    CHECK(vit_load(&m2, path, &o) == 0, "%s", ufo_error());
    CHECK(m2.cfg.dim == c.dim && m2.cfg.depth == 2 && m2.cfg.heads == 3 && m2.head_mask == m.head_mask);
    CHECK(m2.n_floats == m.n_floats && memcmp(m.params, m2.params, m.n_floats * 4) == 0);
    vit_free(&m2);
    // bf16 file: every value rounded once
    CHECK(vit_save(&m, path, UFO_BF16) == 0);
    CHECK(vit_load(&m2, path, &o) == 0);
    double maxrel = check_max_rel_err(m2.params, m.params, (long)m.n_floats);
    CHECK(maxrel < 1e-2, "bf16 rel err %g", maxrel);
    vit_free(&m2);
    // resampled at load: grid 2 -> 3
    o.img_size = 48;
    CHECK(vit_load(&m2, path, &o) == 0 && m2.cfg.img_size == 48 && vit_tokens(&m2.cfg) == 10);
    vit_free(&m2);
    unlink(path);
    vit_free(&m);
}

static void test_resample(void) {
    // Same size: the identity. A constant grid stays constant at any size.
    int dim = 3, g0 = 4;
    float src[(1 + 16) * 3], dst[(1 + 49) * 3], same[(1 + 16) * 3];
    for (int i = 0; i < (1 + 16) * 3; i++) src[i] = (float)(i % 7) - 2.5f;
    vit_resample_pos_embed(same, src, g0, g0, dim);
    CHECK(memcmp(same, src, sizeof src) == 0);
    for (int i = 3; i < (1 + 16) * 3; i++) src[i] = 1.25f;
    vit_resample_pos_embed(dst, src, g0, 7, dim);
    int ok = dst[0] == src[0] && dst[1] == src[1] && dst[2] == src[2];
    for (int i = 3; i < 50 * 3; i++) ok &= fabsf(dst[i] - 1.25f) < 1e-6f;
    CHECK(ok);
}

static void test_missing_file(void) {
    vit_model m;
    CHECK(vit_load(&m, "no/such/model.safetensors", NULL) != 0 && strstr(ufo_error(), "no/such/model"));
}

int main(void) {
    test_param_counts();
    test_config_errors();
    test_save_load();
    test_resample();
    test_missing_file();
    return check_summary("test_model");
}
