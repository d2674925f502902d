// Learning rate: linear warmup from 0, then cosine decay to min_lr.
//
// lr(step) is the rate used by the update of step `step` (0-based, 0 <= step < total):
//
//   W = warmup_steps, T = cosine_steps (0: total - W - 1, so that lr(total-1) == min_lr)
//   step <  W:  lr = base * step / W
//   step >= W:  lr = min + (base - min) * (1 + cos(pi * min(step - W, T) / T)) / 2
//
// Where it comes from. UFO's training (OneForAll solver/build.py) builds
//   paddle.optimizer.lr.LinearWarmup(CosineAnnealingDecay(base, T_max, eta_min),
//                                    warmup_steps=W, start_lr=0, end_lr=base)
// stepped once per iteration, whose closed form is exactly the two lines above
// (LinearWarmup: (end - start) * step / W + start, so the first update runs at
// lr 0; after warmup it steps the cosine with epoch = step - W). fast-reid's
// WarmupLR with warmup_factor 0 gives the same warmup. The one difference is
// T: UFO passes T_max = max_iters (the whole run), so its cosine never gets
// down to eta_min (with W = 10% it ends at min + 0.024 (base - min)); SPEC
// section 4 says "cosine decay to 0.02 x base", so by default T = total - W - 1
// and the last step runs at exactly min_lr. cosine_steps = total reproduces
// UFO's schedule. Defaults (SPEC): W = 10% of total (rounded down), min = 0.02 base.
#pragma once

typedef struct {
    double base_lr, min_lr;
    long total_steps, warmup_steps;
    long cosine_steps;   // T above; 0: total_steps - warmup_steps - 1 (at least 1)
} ufo_lr_schedule;

// base_lr = base, min_lr = 0.02 * base, warmup = total / 10, cosine_steps = 0.
void ufo_lr_schedule_default(ufo_lr_schedule *s, double base, long total);
// lr(step) as above; steps past W + T give min_lr, negative steps 0.
double ufo_lr_at(const ufo_lr_schedule *s, long step);
