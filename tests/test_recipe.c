// Recipes: defaults are the seed's, files override them, every mistake names
// the file, the line and the key, and the printed recipe loads back unchanged.
#include "check.h"
#include "base/error.h"
#include "train/recipe.h"
#include <string.h>
#include <unistd.h>

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static int load_text(const char *text, ufo_recipe *r) {
    const char *path = "test_recipe_tmp.ini";
    write_file(path, text);
    ufo_recipe_defaults(r);
    int rc = ufo_recipe_load(r, path);
    unlink(path);
    return rc;
}

int main(void) {
    ufo_recipe r, r2;
    ufo_recipe_defaults(&r);
    CHECK(r.img_size == 384 && r.batch[0] == 1024 && r.batch[1] == 512 && r.lr == 0.2 && r.steps == 100000);
    CHECK(r.cos_s[0] == 50 && r.cos_m[0] == 0.3 && r.triplet[0] == 0 && r.triplet[3] == 1 && r.drop_path == 0.2);

    CHECK(load_text("# comment\n[model]\npreset = base ; trailing\nimg_size=224\n\n[optim]\nlr = 0.05\n", &r) == 0,
          "%s", ufo_error());
    CHECK(!strcmp(r.preset, "base") && r.img_size == 224 && r.lr == 0.05 && r.steps == 100000);

    CHECK(load_text("[optim]\nlr = 0.1\nlearning_rate = 2\n", &r) != 0);
    CHECK(strstr(ufo_error(), "test_recipe_tmp.ini:3") && strstr(ufo_error(), "learning_rate"), "%s", ufo_error());
    CHECK(load_text("[optim]\n\n\nsteps = many\n", &r) != 0 && strstr(ufo_error(), ":4:") && strstr(ufo_error(), "steps"),
          "%s", ufo_error());
    CHECK(load_text("[nonsense]\n", &r) != 0 && strstr(ufo_error(), "nonsense"), "%s", ufo_error());
    CHECK(load_text("lr = 1\n", &r) != 0 && strstr(ufo_error(), "section"), "%s", ufo_error());
    CHECK(load_text("[data]\nbatch_mix = sometimes\n", &r) != 0 && strstr(ufo_error(), "heterogeneous"), "%s", ufo_error());
    CHECK(load_text("[run]\nrecompute = maybe\n", &r) != 0 && strstr(ufo_error(), "true or false"), "%s", ufo_error());
    CHECK(load_text("[optim]\nlr = -1\n", &r) != 0, "negative lr accepted");
    ufo_recipe_defaults(&r);
    CHECK(ufo_recipe_load(&r, "no/such/recipe.ini") != 0 && strstr(ufo_error(), "no/such/recipe.ini"));

    ufo_recipe_defaults(&r);
    CHECK(ufo_recipe_set(&r, "optim.steps=300") == 0 && r.steps == 300);
    CHECK(ufo_recipe_set(&r, "optim.nothing=3") != 0 && ufo_recipe_set(&r, "steps") != 0);

    // print -> load is the identity (every field printed, every printed field loadable)
    const char *path = "test_recipe_print.ini";
    FILE *f = fopen(path, "w");
    ufo_recipe_set(&r, "data.person=Market1501");
    ufo_recipe_set(&r, "run.eval_datasets=LFW,SOP");
    ufo_recipe_print(&r, f);
    fclose(f);
    ufo_recipe_defaults(&r2);
    CHECK(ufo_recipe_load(&r2, path) == 0, "%s", ufo_error());
    CHECK(memcmp(&r, &r2, sizeof r) == 0, "printed recipe does not load back identically");
    unlink(path);

    // The shipped recipes load.
    ufo_recipe_defaults(&r);
    CHECK(ufo_recipe_load(&r, "recipes/allinone_vitlarge.ini") == 0, "%s", ufo_error());
    CHECK(r.steps == 100000 && !strcmp(r.precision, "bf16") && r.recompute == 1);
    return check_summary("test_recipe");
}
