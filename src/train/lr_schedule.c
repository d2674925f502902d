// Warmup + cosine learning rate (see lr_schedule.h).
#include "train/lr_schedule.h"
#include <math.h>

void ufo_lr_schedule_default(ufo_lr_schedule *s, double base, long total) {
    s->base_lr = base;
    s->min_lr = 0.02 * base;
    s->total_steps = total;
    s->warmup_steps = total / 10;
    s->cosine_steps = 0;
}

double ufo_lr_at(const ufo_lr_schedule *s, long step) {
    if (step < 0) return 0.0;
    const long W = s->warmup_steps > 0 ? s->warmup_steps : 0;
    if (step < W) return s->base_lr * (double)step / (double)W;
    long T = s->cosine_steps > 0 ? s->cosine_steps : s->total_steps - W - 1;
    if (T < 1) T = 1;
    long t = step - W;
    if (t > T) t = T;
    return s->min_lr + (s->base_lr - s->min_lr) * (1.0 + cos(M_PI * (double)t / (double)T)) / 2.0;
}
