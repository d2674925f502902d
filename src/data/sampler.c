// Samplers (plain random, P x K identity) with exact resume, and the per-step
// heterogeneous / homogeneous batch plan. Semantics in sampler.h.
#include "data/sampler.h"
#include "base/error.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t below(ufo_rng *r, uint64_t bound) {
    uint64_t threshold = (0 - bound) % bound;   // 2^64 mod bound
    for (;;) {
        uint64_t x = ufo_rng_next(r);
        if (x >= threshold) return x % bound;
    }
}

static void shuffle(ufo_rng *r, int *a, int m) {
    for (int i = m - 1; i > 0; i--) {
        int j = (int)below(r, (uint64_t)i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static uint64_t fnv_u64(uint64_t h, uint64_t v) {
    for (int i = 0; i < 8; i++) h = (h ^ ((v >> (8 * i)) & 0xff)) * 0x100000001b3ull;
    return h;
}

void ufo_sampler_free(ufo_sampler *s) {
    if (!s) return;
    free(s->perm_);
    free(s->cls_start_);
    free(s->cls_items_);
    free(s->avl_);
    free(s->queue_);
    free(s->qoff_);
    free(s->qhead_);
    free(s->qlen_);
    free(s->registered_);
    memset(s, 0, sizeof *s);
}

static void start_epoch(ufo_sampler *s) {
    s->epoch_rng = s->rng;
    s->pos = 0;
    if (s->kind == UFO_SAMPLER_RANDOM) {
        for (int i = 0; i < s->n; i++) s->perm_[i] = i;
        shuffle(&s->rng, s->perm_, s->n);
    } else {
        int m = 0;
        for (int c = 0; c < s->num_classes; c++)
            if (s->cls_start_[c + 1] > s->cls_start_[c]) s->avl_[m++] = c;
        s->n_avl_ = m;
        memset(s->registered_, 0, (size_t)s->num_classes);
    }
}

int ufo_sampler_init_random(ufo_sampler *s, int n, int batch, uint64_t seed) {
    memset(s, 0, sizeof *s);
    if (n < 1) return ufo_errorf("random sampler over %d images", n);
    if (batch < 1) return ufo_errorf("random sampler: batch %d (must be >= 1)", batch);
    s->kind = UFO_SAMPLER_RANDOM;
    s->n = n;
    s->batch = batch;
    s->perm_ = malloc((size_t)n * sizeof *s->perm_);
    if (!s->perm_) return ufo_errorf("out of memory (random sampler over %d images)", n);
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv_u64(h, (uint64_t)s->kind);
    h = fnv_u64(h, (uint64_t)n);
    h = fnv_u64(h, (uint64_t)batch);
    s->fingerprint = h;
    ufo_rng_seed(&s->rng, seed);
    start_epoch(s);
    return 0;
}

int ufo_sampler_init_pk(ufo_sampler *s, const int *label, int n, int num_classes, int P, int K, uint64_t seed) {
    memset(s, 0, sizeof *s);
    if (n < 1 || !label) return ufo_errorf("P x K sampler over %d images", n);
    if (num_classes < 1) return ufo_errorf("P x K sampler: %d classes", num_classes);
    if (P < 1 || K < 1 || P > INT_MAX / K) return ufo_errorf("P x K sampler: P = %d, K = %d (both must be >= 1)", P, K);
    for (int i = 0; i < n; i++)
        if (label[i] < 0 || label[i] >= num_classes)
            return ufo_errorf("P x K sampler: image %d has class %d, outside [0, %d)", i, label[i], num_classes);
    s->kind = UFO_SAMPLER_PK;
    s->n = n;
    s->P = P;
    s->K = K;
    s->batch = P * K;
    s->num_classes = num_classes;
    size_t C = (size_t)num_classes;
    s->cls_start_ = calloc(C + 1, sizeof *s->cls_start_);
    s->cls_items_ = malloc((size_t)n * sizeof *s->cls_items_);
    s->avl_ = malloc(C * sizeof *s->avl_);
    s->qoff_ = malloc((C + 1) * sizeof *s->qoff_);
    s->qhead_ = calloc(C, sizeof *s->qhead_);
    s->qlen_ = calloc(C, sizeof *s->qlen_);
    s->registered_ = calloc(C, 1);
    if (!s->cls_start_ || !s->cls_items_ || !s->avl_ || !s->qoff_ || !s->qhead_ || !s->qlen_ || !s->registered_) {
        ufo_sampler_free(s);
        return ufo_errorf("out of memory (P x K sampler over %d images)", n);
    }
    // Counting sort: images grouped by class, ascending within a class.
    for (int i = 0; i < n; i++) s->cls_start_[label[i] + 1]++;
    for (size_t c = 0; c < C; c++) s->cls_start_[c + 1] += s->cls_start_[c];
    int *fill = malloc(C * sizeof *fill);
    if (!fill) {
        ufo_sampler_free(s);
        return ufo_errorf("out of memory (P x K sampler)");
    }
    memcpy(fill, s->cls_start_, C * sizeof *fill);
    for (int i = 0; i < n; i++) s->cls_items_[fill[label[i]]++] = i;
    free(fill);
    size_t q = 0;
    int ids = 0;
    for (size_t c = 0; c < C; c++) {
        int cnt = s->cls_start_[c + 1] - s->cls_start_[c];
        s->qoff_[c] = q;
        if (cnt > 0) {
            ids++;
            q += (size_t)(cnt > K ? cnt : K);
        }
    }
    s->qoff_[C] = q;
    s->n_ids = ids;
    if (ids < P) {
        ufo_sampler_free(s);
        return ufo_errorf("P x K sampler: %d identities per batch but the set has only %d identities with images", P, ids);
    }
    s->queue_ = malloc((q ? q : 1) * sizeof *s->queue_);
    if (!s->queue_) {
        ufo_sampler_free(s);
        return ufo_errorf("out of memory (P x K sampler queues)");
    }
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv_u64(h, (uint64_t)s->kind);
    h = fnv_u64(h, (uint64_t)n);
    h = fnv_u64(h, (uint64_t)s->batch);
    h = fnv_u64(h, (uint64_t)P);
    h = fnv_u64(h, (uint64_t)K);
    h = fnv_u64(h, (uint64_t)num_classes);
    for (int i = 0; i < n; i++) h = fnv_u64(h, (uint64_t)(uint32_t)label[i]);
    s->fingerprint = h;
    ufo_rng_seed(&s->rng, seed);
    start_epoch(s);
    return 0;
}

// One P x K draw within the current epoch (the caller checked n_avl_ >= P).
static void pk_draw(ufo_sampler *s, int *out) {
    int P = s->P, K = s->K, m = s->n_avl_;
    int *avl = s->avl_;
    for (int j = 0; j < P; j++) {
        int r = j + (int)below(&s->rng, (uint64_t)(m - j));
        int t = avl[j];
        avl[j] = avl[r];
        avl[r] = t;
    }
    int o = 0;
    for (int j = 0; j < P; j++) {
        int c = avl[j];
        int *qu = s->queue_ + s->qoff_[c];
        if (!s->registered_[c]) {
            const int *items = s->cls_items_ + s->cls_start_[c];
            int cnt = s->cls_start_[c + 1] - s->cls_start_[c];
            if (cnt >= K) {
                memcpy(qu, items, (size_t)cnt * sizeof *qu);
                shuffle(&s->rng, qu, cnt);
                s->qlen_[c] = cnt;
            } else {
                for (int k = 0; k < K; k++) qu[k] = items[below(&s->rng, (uint64_t)cnt)];
                s->qlen_[c] = K;
            }
            s->qhead_[c] = 0;
            s->registered_[c] = 1;
        }
        for (int k = 0; k < K; k++) out[o++] = qu[s->qhead_[c]++];
    }
    for (int j = P - 1; j >= 0; j--) {
        int c = avl[j];
        if (s->qlen_[c] - s->qhead_[c] < K) avl[j] = avl[--m];
    }
    s->n_avl_ = m;
    s->pos++;
}

int ufo_sampler_next(ufo_sampler *s, int *out) {
    if (s->kind == UFO_SAMPLER_RANDOM) {
        for (int b = 0; b < s->batch; b++) {
            if (s->pos >= (uint64_t)s->n) {
                s->epoch++;
                start_epoch(s);
            }
            out[b] = s->perm_[s->pos++];
        }
        return 0;
    }
    if (s->kind != UFO_SAMPLER_PK) return ufo_errorf("sampler is not initialised");
    if (s->n_avl_ < s->P) {
        s->epoch++;
        start_epoch(s);
    }
    pk_draw(s, out);
    return 0;
}

void ufo_sampler_get_state(const ufo_sampler *s, ufo_sampler_state *st) {
    memcpy(st->rng, s->epoch_rng.s, sizeof st->rng);
    st->epoch = s->epoch;
    st->pos = s->pos;
    st->fingerprint = s->fingerprint;
}

// Re-runs the epoch start from st's rng and replays st->pos; -1 (no error set) if it does not fit.
static int apply_state(ufo_sampler *s, const ufo_sampler_state *st, int *scratch) {
    memcpy(s->rng.s, st->rng, sizeof st->rng);
    s->epoch = st->epoch;
    start_epoch(s);
    if (s->kind == UFO_SAMPLER_RANDOM) {
        if (st->pos > (uint64_t)s->n) return -1;
        s->pos = st->pos;
        return 0;
    }
    for (uint64_t k = 0; k < st->pos; k++) {
        if (s->n_avl_ < s->P) return -1;
        pk_draw(s, scratch);
    }
    return 0;
}

int ufo_sampler_set_state(ufo_sampler *s, const ufo_sampler_state *st) {
    if (s->kind != UFO_SAMPLER_RANDOM && s->kind != UFO_SAMPLER_PK) return ufo_errorf("sampler is not initialised");
    if (st->fingerprint != s->fingerprint)
        return ufo_errorf("sampler state was saved for other data (fingerprint %016llx, this sampler %016llx)",
                          (unsigned long long)st->fingerprint, (unsigned long long)s->fingerprint);
    if (!(st->rng[0] | st->rng[1] | st->rng[2] | st->rng[3]))
        return ufo_errorf("sampler state has an all-zero random state");
    // P x K: a draw takes P * K queue entries, and an epoch's queues hold qoff_[C] in all.
    if (s->kind == UFO_SAMPLER_PK && st->pos > s->qoff_[s->num_classes] / (uint64_t)s->batch)
        return ufo_errorf("sampler state: %llu draws do not fit one epoch of this data", (unsigned long long)st->pos);
    ufo_sampler_state old;
    ufo_sampler_get_state(s, &old);
    int *scratch = s->kind == UFO_SAMPLER_PK ? malloc((size_t)s->batch * sizeof *scratch) : NULL;
    if (s->kind == UFO_SAMPLER_PK && !scratch) return ufo_errorf("out of memory restoring a sampler");
    int rc = apply_state(s, st, scratch);
    if (rc != 0) {
        apply_state(s, &old, scratch);   // was valid: succeeds
        rc = ufo_errorf("sampler state: position %llu does not fit epoch %llu of this data", (unsigned long long)st->pos,
                        (unsigned long long)st->epoch);
    }
    free(scratch);
    return rc;
}

void ufo_sampler_state_to_words(const ufo_sampler_state *st, uint64_t w[UFO_SAMPLER_STATE_WORDS]) {
    for (int i = 0; i < 4; i++) w[i] = st->rng[i];
    w[4] = st->epoch;
    w[5] = st->pos;
    w[6] = st->fingerprint;
}

void ufo_sampler_state_from_words(ufo_sampler_state *st, const uint64_t w[UFO_SAMPLER_STATE_WORDS]) {
    for (int i = 0; i < 4; i++) st->rng[i] = w[i];
    st->epoch = w[4];
    st->pos = w[5];
    st->fingerprint = w[6];
}

// ------------------------------------------------------------------ batch plan

#define PLAN_MAGIC 0x55464f504c414e00ull   // "UFOPLAN\0"

static uint64_t gcd_u64(uint64_t a, uint64_t b) {
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

// Classes that have images (labels outside [0, C) are left to the sampler to refuse).
static int count_identities(const int *label, int n, int C) {
    if (!label || n < 1 || C < 1) return 0;
    unsigned char *seen = calloc((size_t)C, 1);
    if (!seen) return 0;
    int ids = 0;
    for (int i = 0; i < n; i++)
        if (label[i] >= 0 && label[i] < C && !seen[label[i]]) seen[label[i]] = 1, ids++;
    free(seen);
    return ids;
}

void ufo_batch_plan_free(ufo_batch_plan *p) {
    if (!p) return;
    for (int t = 0; t < p->n_tasks && t < UFO_MAX_TASKS; t++) ufo_sampler_free(&p->sampler[t]);
    free(p->draw_);
    memset(p, 0, sizeof *p);
}

int ufo_batch_plan_init(ufo_batch_plan *p, const ufo_task_spec *tasks, int n_tasks, ufo_batch_mix mix, uint64_t seed) {
    memset(p, 0, sizeof *p);
    if (n_tasks < 1 || n_tasks > UFO_MAX_TASKS) return ufo_errorf("batch plan: %d tasks (1 to %d)", n_tasks, UFO_MAX_TASKS);
    if (mix != UFO_MIX_HETEROGENEOUS && mix != UFO_MIX_HOMOGENEOUS) return ufo_errorf("batch plan: unknown batch mix %d", (int)mix);
    long long B = 0;
    uint64_t g = 0;
    for (int t = 0; t < n_tasks; t++) {
        const ufo_task_spec *ts = &tasks[t];
        const char *nm = ts->name ? ts->name : "task";
        if (ts->count < 1) return ufo_errorf("%s: %d images per batch (must be >= 1)", nm, ts->count);
        if (ts->K < 0) return ufo_errorf("%s: K = %d (0 for plain random, else >= 1)", nm, ts->K);
        if (ts->K > 0 && ts->count % ts->K != 0)
            return ufo_errorf("%s: %d images per batch is not a multiple of K = %d", nm, ts->count, ts->K);
        B += ts->count;
        g = gcd_u64(g, (uint64_t)ts->count);
        p->count[t] = ts->count;
    }
    if (B > INT_MAX / 2) return ufo_errorf("batch plan: %lld images per step is too many", B);
    p->mix = mix;
    p->n_tasks = n_tasks;
    p->batch = (int)B;
    p->period_ = (uint64_t)B / g;
    for (int t = 0; t < n_tasks; t++) {
        const ufo_task_spec *ts = &tasks[t];
        const char *nm = ts->name ? ts->name : "task";
        int rows = mix == UFO_MIX_HETEROGENEOUS ? ts->count : (int)B;
        uint64_t sd = seed + 0x9e3779b97f4a7c15ull * (uint64_t)(t + 1);
        int rc;
        if (ts->K == 0) rc = ufo_sampler_init_random(&p->sampler[t], ts->n, rows, sd);
        else if (rows % ts->K != 0)
            rc = ufo_errorf("homogeneous batches of %d images are not a multiple of K = %d", rows, ts->K);
        else {
            int P = rows / ts->K;
            if (mix == UFO_MIX_HOMOGENEOUS) {
                int ids = count_identities(ts->label, ts->n, ts->num_classes);
                if (ids > 0 && P > ids) P = ids;   // more draws per step instead (ufo_batch_plan_next)
            }
            rc = ufo_sampler_init_pk(&p->sampler[t], ts->label, ts->n, ts->num_classes, P, ts->K, sd);
        }
        if (rc != 0) {
            ufo_error_wrap("%s", nm);
            ufo_batch_plan_free(p);
            return -1;
        }
    }
    if (mix == UFO_MIX_HOMOGENEOUS && !(p->draw_ = malloc((size_t)B * sizeof *p->draw_))) {
        ufo_batch_plan_free(p);
        return ufo_errorf("out of memory (batch plan of %lld rows)", B);
    }
    return 0;
}

// Homogeneous: B rows of one task. A P x K sampler smaller than B (few
// identities) is drawn repeatedly; the last draw keeps only the groups needed.
static int homogeneous_rows(ufo_batch_plan *p, int t, int *index) {
    ufo_sampler *s = &p->sampler[t];
    int r = 0;
    if (s->batch == p->batch) return ufo_sampler_next(s, index);   // the usual case: one draw
    while (r < p->batch) {
        if (ufo_sampler_next(s, p->draw_) != 0) return -1;
        int take = s->batch < p->batch - r ? s->batch : p->batch - r;
        memcpy(index + r, p->draw_, (size_t)take * sizeof *index);
        r += take;
    }
    return 0;
}

// Smooth weighted round-robin: the task of the next homogeneous step.
static int swrr_pick(ufo_batch_plan *p) {
    int best = 0;
    for (int t = 0; t < p->n_tasks; t++) {
        p->credit_[t] += p->count[t];
        if (p->credit_[t] > p->credit_[best]) best = t;
    }
    p->credit_[best] -= p->batch;
    return best;
}

int ufo_batch_plan_next(ufo_batch_plan *p, int *task, int *index, int *task_start) {
    if (p->n_tasks < 1) return ufo_errorf("batch plan is not initialised");
    if (p->mix == UFO_MIX_HETEROGENEOUS) {
        int r = 0;
        for (int t = 0; t < p->n_tasks; t++) {
            if (task_start) task_start[t] = r;
            if (ufo_sampler_next(&p->sampler[t], index + r) != 0) return -1;
            for (int k = 0; k < p->count[t]; k++) task[r + k] = t;
            r += p->count[t];
        }
        if (task_start) task_start[p->n_tasks] = r;
    } else {
        int t0 = swrr_pick(p);
        if (homogeneous_rows(p, t0, index) != 0) return -1;
        for (int k = 0; k < p->batch; k++) task[k] = t0;
        if (task_start)
            for (int t = 0; t <= p->n_tasks; t++) task_start[t] = t <= t0 ? 0 : p->batch;
    }
    p->step++;
    return 0;
}

size_t ufo_batch_plan_state_words(const ufo_batch_plan *p) {
    return 2 + (size_t)UFO_SAMPLER_STATE_WORDS * (size_t)p->n_tasks;
}

void ufo_batch_plan_save(const ufo_batch_plan *p, uint64_t *w) {
    w[0] = PLAN_MAGIC | (uint64_t)p->mix << 4 | (uint64_t)p->n_tasks;
    w[1] = p->step;
    for (int t = 0; t < p->n_tasks; t++) {
        ufo_sampler_state st;
        ufo_sampler_get_state(&p->sampler[t], &st);
        ufo_sampler_state_to_words(&st, w + 2 + (size_t)UFO_SAMPLER_STATE_WORDS * (size_t)t);
    }
}

int ufo_batch_plan_restore(ufo_batch_plan *p, const uint64_t *w, size_t n_words) {
    if (p->n_tasks < 1) return ufo_errorf("batch plan is not initialised");
    size_t need = ufo_batch_plan_state_words(p);
    if (n_words != need) return ufo_errorf("batch plan state has %zu words, expected %zu (%d tasks)", n_words, need, p->n_tasks);
    uint64_t head = PLAN_MAGIC | (uint64_t)p->mix << 4 | (uint64_t)p->n_tasks;
    if (w[0] != head) {
        if ((w[0] & ~0xffull) != PLAN_MAGIC) return ufo_errorf("batch plan state: bad magic");
        return ufo_errorf("batch plan state was saved for %s batches of %d tasks, this run has %s batches of %d tasks",
                          (w[0] >> 4 & 0xf) ? "homogeneous" : "heterogeneous", (int)(w[0] & 0xf),
                          p->mix ? "homogeneous" : "heterogeneous", p->n_tasks);
    }
    uint64_t *old = malloc(need * sizeof *old);
    if (!old) return ufo_errorf("out of memory restoring the batch plan");
    ufo_batch_plan_save(p, old);
    int rc = 0;
    char msg[512] = "";
    for (int t = 0; t < p->n_tasks && rc == 0; t++) {
        ufo_sampler_state st;
        ufo_sampler_state_from_words(&st, w + 2 + (size_t)UFO_SAMPLER_STATE_WORDS * (size_t)t);
        if ((rc = ufo_sampler_set_state(&p->sampler[t], &st)) != 0) {
            ufo_error_wrap("task %d", t);
            snprintf(msg, sizeof msg, "%s", ufo_error());
        }
    }
    if (rc != 0) {
        for (int t = 0; t < p->n_tasks; t++) {
            ufo_sampler_state st;
            ufo_sampler_state_from_words(&st, old + 2 + (size_t)UFO_SAMPLER_STATE_WORDS * (size_t)t);
            ufo_sampler_set_state(&p->sampler[t], &st);
        }
        free(old);
        return ufo_errorf("%s", msg);
    }
    free(old);
    // The round-robin credits are periodic (zero every period_ steps): replay step mod period.
    p->step = w[1];
    memset(p->credit_, 0, sizeof p->credit_);
    if (p->mix == UFO_MIX_HOMOGENEOUS)
        for (uint64_t k = 0; k < p->step % p->period_; k++) swrr_pick(p);
    return 0;
}
