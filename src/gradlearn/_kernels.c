/* The compiled CPU kernels behind gradlearn.compiled (see that module for what each
 * computes, why, and what it measured). Plain C on contiguous arrays, called through
 * ctypes, which releases the GIL; every kernel exists for float (_f32) and double (_f64).
 * Built at install as an optional extension: without a C compiler gradlearn runs its
 * NumPy paths. Only IEEE arithmetic (no -ffast-math): NaN and infinity behave as in
 * NumPy; the sums of dot products are vectorised through OpenMP SIMD reductions. */

#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int64_t i64;

/* ---- The team: helper threads that share one kernel call's chunks with its caller ----
 *
 * gradlearn.parallel hands slices to Python worker threads, which costs about 50 us a
 * section (the worker's wake-up, and the GIL around each slice's Python). That is the
 * time of a whole memory-bound kernel (a 4 MB ReLU), so those kernels split here instead.
 * A call is cut into a fixed number of chunks (by size, never by thread count); the caller
 * and the helpers take chunks from one counter until none is left, so a helper that wakes
 * late costs nothing but its share, and a reduction that keeps one partial per chunk and
 * adds them in chunk order gives the same bits on any number of threads.
 *
 * Helpers are started at the first call that asks for them; after a call each looks for
 * the next one for SPINS pauses (a few microseconds), then sleeps on a condition variable.
 * Spinning longer cost more than it saved: a helper that spun 100 us after each call took
 * the core of the Python worker running the next convolution (ResNet-20 no faster than
 * without the team; with SPINS, 9% faster). One call runs at a time: a call made while
 * another runs (from another thread) computes its chunks alone. A forked
 * child starts helpers of its own. */

#include <pthread.h>
#include <stdatomic.h>

#define MAX_HELPERS 63

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#else
#define CPU_RELAX() ((void)0)
#endif
#define SPINS 64

typedef void (*chunk_fn)(const void *args, i64 chunk);
typedef struct {
    chunk_fn fn;
    const void *args;
    i64 chunks;
    _Atomic i64 next, done; /* the next chunk to take; chunks finished */
} job_t;

static pthread_mutex_t team_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t team_wake = PTHREAD_COND_INITIALIZER;
static int team_helpers;                  /* started (under team_lock) */
static int team_sleepers;                 /* waiting on team_wake (under team_lock) */
static _Atomic unsigned long team_calls;  /* bumped by every shared call: wakes the helpers */
static job_t *_Atomic team_job;           /* the call being shared; NULL between calls */
static _Atomic int team_seats;            /* helpers that may still join it */
static _Atomic int team_users;            /* helpers looking at team_job */
static atomic_flag team_busy = ATOMIC_FLAG_INIT;

static _Atomic i64 team_helped; /* chunks computed by helpers, ever (for the tests) */

static i64 take_chunks(job_t *job) { /* returns how many it computed */
    i64 i, taken = 0;
    while ((i = atomic_fetch_add(&job->next, 1)) < job->chunks) {
        job->fn(job->args, i);
        atomic_fetch_add(&job->done, 1);
        taken++;
    }
    return taken;
}

i64 team_chunks_helped(void) { return atomic_load(&team_helped); }

static void *helper_main(void *unused) {
    (void)unused;
    unsigned long seen = atomic_load(&team_calls);
    for (;;) {
        for (int spins = 0; atomic_load(&team_calls) == seen; spins++) {
            if (spins == SPINS) {
                pthread_mutex_lock(&team_lock);
                team_sleepers++;
                while (atomic_load(&team_calls) == seen) pthread_cond_wait(&team_wake, &team_lock);
                team_sleepers--;
                pthread_mutex_unlock(&team_lock);
                break;
            }
            CPU_RELAX();
        }
        seen = atomic_load(&team_calls);
        atomic_fetch_add(&team_users, 1); /* before reading team_job: the caller waits for 0 */
        job_t *job = atomic_load(&team_job);
        if (job && atomic_fetch_sub(&team_seats, 1) > 0) atomic_fetch_add(&team_helped, take_chunks(job));
        atomic_fetch_sub(&team_users, 1);
    }
    return NULL;
}

static void team_after_fork_in_child(void) { /* the child has none of the parent's threads */
    pthread_mutex_init(&team_lock, NULL);
    pthread_cond_init(&team_wake, NULL);
    team_helpers = team_sleepers = 0;
    atomic_store(&team_job, NULL);
    atomic_store(&team_users, 0);
    atomic_flag_clear(&team_busy);
}

static void start_helpers(int wanted) { /* under team_lock; fewer if a thread cannot start */
    static int fork_handler;
    if (!fork_handler) fork_handler = pthread_atfork(NULL, NULL, team_after_fork_in_child) == 0;
    while (team_helpers < wanted) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, helper_main, NULL) != 0) break;
        pthread_detach(thread);
        team_helpers++;
    }
}

/* fn(args, i) for every chunk i in [0, chunks), on up to `threads` threads (the caller
 * and threads - 1 helpers), returning when all are done. */
static void run_chunks(chunk_fn fn, const void *args, i64 chunks, i64 threads) {
    if (threads < 2 || chunks < 2 || atomic_flag_test_and_set(&team_busy)) {
        for (i64 i = 0; i < chunks; i++) fn(args, i);
        return;
    }
    int helpers = (int)(threads - 1 < MAX_HELPERS ? threads - 1 : MAX_HELPERS);
    job_t job = {fn, args, chunks, 0, 0};
    atomic_store(&team_seats, helpers);
    atomic_store(&team_job, &job);
    atomic_fetch_add(&team_calls, 1);
    pthread_mutex_lock(&team_lock);
    if (team_helpers < helpers) start_helpers(helpers);
    if (team_sleepers) pthread_cond_broadcast(&team_wake);
    pthread_mutex_unlock(&team_lock);
    take_chunks(&job);
    while (atomic_load(&job.done) < chunks) CPU_RELAX();
    atomic_store(&team_job, NULL);
    while (atomic_load(&team_users) > 0) CPU_RELAX(); /* nobody holds &job now */
    atomic_flag_clear(&team_busy);
}

static i64 chunks_of(i64 size, i64 per_chunk) { return size > 0 ? (size + per_chunk - 1) / per_chunk : 0; }

#define CHUNK 16384 /* elements per chunk of an element-wise kernel (64 kB of floats) */

/* BatchNorm's (rows, C) arrays go in chunks of whole rows. */
static i64 rows_per_chunk(i64 c_all) { return c_all < CHUNK ? CHUNK / c_all : 1; }

/* A per-channel reduction over the chunks of rows: fn's chunk k adds into its own partial
 * sums, partial + k * partial_stride(c_all) (c_all sums, then c_all of a second kind;
 * zeroed here). Each chunk's partials start on a cache line of their own: sharing one line
 * between two threads' chunks made a 4 MB sum 2.7x slower on two threads than on one.
 * They are added to first and second in chunk order, so the result does not depend on
 * which thread took which chunk. -1 when the partials cannot be allocated. */
static i64 partial_stride(i64 c_all) { return (2 * c_all + 7) / 8 * 8; } /* whole 64-byte lines */

static int reduce_rows(chunk_fn fn, const void *args, double **partial, i64 rows, i64 c_all,
                       double *first, double *second, i64 threads) {
    i64 chunks = chunks_of(rows, rows_per_chunk(c_all)), stride = partial_stride(c_all);
    size_t bytes = (size_t)(chunks * stride + 8) * sizeof(double);
    double *p;
    if (posix_memalign((void **)&p, 64, bytes) != 0) return -1;
    memset(p, 0, bytes);
    *partial = p;
    run_chunks(fn, args, chunks, threads);
    for (i64 k = 0; k < chunks; k++)
        for (i64 c = 0; c < c_all; c++) {
            first[c] += p[k * stride + c];
            second[c] += p[k * stride + c_all + c];
        }
    free(p);
    return 0;
}

/* One step of a 2x2 tile's first maximum in row-major order and its index, applied to the
 * 2nd, 3rd and 4th value in turn: a larger value, or a NaN while the best is not one, takes
 * its place, so a NaN counts as the maximum (the first NaN). Written as conditions inside
 * selects, which the compiler turns into vector blends (a helper function taking pointers
 * was not vectorised: 10 against 0.6 ms for 64x32x32x32 channels-last). */
#define TAKE(v, k)                                                                              \
    where = ((v) > best || ((v) != (v) && best == best)) ? (k) : where;                         \
    best = where == (k) ? (v) : best;

#define DEFINE_KERNELS(T, S)                                                                    \
                                                                                                \
/* 2x2 tiles, channels-last: x (N, h, wd, C) -> y, first (N, ho, wo, C); the inner loop runs \
 * over the contiguous channels, so it is vectorised (for floats whose channels are a       \
 * multiple of 8, max_pool_2x2_channels_last_f32 below takes them 8 at a time instead). */  \
static void max_pool_2x2_channels_last_any_##S(const T *x, T *y, uint8_t *first, i64 n_all, i64 h, i64 wd, \
                                    i64 c_all, i64 ho, i64 wo) {                                \
    for (i64 n = 0; n < n_all; n++)                                                             \
        for (i64 a = 0; a < ho; a++)                                                            \
            for (i64 b = 0; b < wo; b++) {                                                      \
                const T *p0 = x + ((n * h + 2 * a) * wd + 2 * b) * c_all, *p1 = p0 + c_all;     \
                const T *p2 = p0 + wd * c_all, *p3 = p2 + c_all;                                \
                T *out = y + ((n * ho + a) * wo + b) * c_all;                                   \
                uint8_t *f = first + ((n * ho + a) * wo + b) * c_all;                           \
                for (i64 c = 0; c < c_all; c++) {                                               \
                    T best = p0[c], v1 = p1[c], v2 = p2[c], v3 = p3[c];                         \
                    int where = 0;                                                              \
                    TAKE(v1, 1) TAKE(v2, 2) TAKE(v3, 3)                                         \
                    out[c] = best;                                                              \
                    f[c] = (uint8_t)where;                                                      \
                }                                                                               \
            }                                                                                   \
}                                                                                               \
                                                                                                \
/* 2x2 tiles in C order, one tile at a time: x as rows of tile pairs (rows, 2, 2*wo) -> y, \
 * first (rows, wo); rows = N*C*ho. Scalar: the float kernel below vectorises it. */          \
static void max_pool_2x2_scalar_##S(const T *x, T *y, uint8_t *first, i64 rows, i64 wo) {      \
    for (i64 q = 0; q < rows; q++) {                                                            \
        const T *top = x + q * 4 * wo, *bottom = top + 2 * wo;                                  \
        for (i64 b = 0; b < wo; b++) {                                                          \
            T best = top[2 * b], v1 = top[2 * b + 1], v2 = bottom[2 * b], v3 = bottom[2 * b + 1]; \
            int where = 0;                                                                      \
            TAKE(v1, 1) TAKE(v2, 2) TAKE(v3, 3)                                                 \
            y[q * wo + b] = best;                                                               \
            first[q * wo + b] = (uint8_t)where;                                                 \
        }                                                                                       \
    }                                                                                           \
}                                                                                               \
                                                                                                \
static void max_pool_2x2_grad_scalar_##S(const T *dy, const uint8_t *first, T *dx, i64 rows, i64 wo) { \
    for (i64 q = 0; q < rows; q++) {                                                            \
        T *top = dx + q * 4 * wo, *bottom = top + 2 * wo;                                       \
        for (i64 b = 0; b < wo; b++) {                                                          \
            T g = dy[q * wo + b];                                                               \
            int k = first[q * wo + b];                                                          \
            top[2 * b] = k == 0 ? g : 0;                                                        \
            top[2 * b + 1] = k == 1 ? g : 0;                                                    \
            bottom[2 * b] = k == 2 ? g : 0;                                                     \
            bottom[2 * b + 1] = k == 3 ? g : 0;                                                 \
        }                                                                                       \
    }                                                                                           \
}                                                                                               \
                                                                                                \
static void max_pool_2x2_channels_last_grad_any_##S(const T *dy, const uint8_t *first, T *dx, i64 n_all, \
                                         i64 h, i64 wd, i64 c_all, i64 ho, i64 wo) {            \
    for (i64 n = 0; n < n_all; n++)                                                             \
        for (i64 a = 0; a < ho; a++)                                                            \
            for (i64 b = 0; b < wo; b++) {                                                      \
                T *restrict d0 = dx + ((n * h + 2 * a) * wd + 2 * b) * c_all;                   \
                T *restrict d1 = d0 + c_all, *restrict d2 = d0 + wd * c_all, *restrict d3 = d2 + c_all; \
                const T *restrict g = dy + ((n * ho + a) * wo + b) * c_all;                     \
                const uint8_t *restrict k = first + ((n * ho + a) * wo + b) * c_all;            \
                _Pragma("omp simd") /* GCC found the four stores "complicated": 7.6 -> 0.7 ms */ \
                for (i64 c = 0; c < c_all; c++) {                                               \
                    d0[c] = k[c] == 0 ? g[c] : 0;                                               \
                    d1[c] = k[c] == 1 ? g[c] : 0;                                               \
                    d2[c] = k[c] == 2 ? g[c] : 0;                                               \
                    d3[c] = k[c] == 3 ? g[c] : 0;                                               \
                }                                                                               \
            }                                                                                   \
}                                                                                               \
                                                                                                \
/* The kernels below run their chunks on the team (run_chunks): `threads` is how many           \
 * threads may share a call (1: the caller alone).                                              \
                                                                                                \
 * SGD with momentum and L2 decay, in place, one pass over the flat vectors (the same           \
 * formulas as the GPU's kernel): d = g + decay * w; b = momentum * b + d; w -= lr * b. */      \
typedef struct { T *w, *b; const T *g; T decay, momentum, lr; i64 size; } sgd_args_##S;         \
static void sgd_momentum_chunk_##S(const void *args, i64 chunk) {                               \
    const sgd_args_##S *a = args;                                                               \
    T *restrict w = a->w, *restrict b = a->b;                                                   \
    const T *restrict g = a->g;                                                                 \
    i64 stop = (chunk + 1) * CHUNK < a->size ? (chunk + 1) * CHUNK : a->size;                   \
    for (i64 i = chunk * CHUNK; i < stop; i++) {                                                \
        T d = g[i] + a->decay * w[i];                                                           \
        b[i] = a->momentum * b[i] + d;                                                          \
        w[i] = w[i] - a->lr * b[i];                                                             \
    }                                                                                           \
}                                                                                               \
void sgd_momentum_##S(T *w, T *b, const T *g, double decay, double momentum, double lr, i64 size, i64 threads) { \
    sgd_args_##S args = {w, b, g, (T)decay, (T)momentum, (T)lr, size};                          \
    run_chunks(sgd_momentum_chunk_##S, &args, chunks_of(size, CHUNK), threads);                 \
}                                                                                               \
                                                                                                \
/* y = max(x, 0), a NaN staying NaN; dx = dy where y > 0, else 0; out = a + b. */               \
typedef struct { const T *a, *b; T *out; i64 size; } pair_args_##S;                             \
static void relu_chunk_##S(const void *args, i64 chunk) {                                       \
    const pair_args_##S *p = args;                                                              \
    const T *restrict x = p->a;                                                                 \
    T *restrict y = p->out;                                                                     \
    i64 stop = (chunk + 1) * CHUNK < p->size ? (chunk + 1) * CHUNK : p->size;                   \
    for (i64 i = chunk * CHUNK; i < stop; i++) y[i] = !(x[i] <= 0) ? x[i] : 0;                  \
}                                                                                               \
void relu_##S(const T *x, T *y, i64 size, i64 threads) {                                        \
    pair_args_##S args = {x, NULL, y, size};                                                    \
    run_chunks(relu_chunk_##S, &args, chunks_of(size, CHUNK), threads);                         \
}                                                                                               \
                                                                                                \
static void relu_grad_chunk_##S(const void *args, i64 chunk) {                                  \
    const pair_args_##S *p = args;                                                              \
    const T *restrict dy = p->a, *restrict y = p->b;                                            \
    T *restrict dx = p->out;                                                                    \
    i64 stop = (chunk + 1) * CHUNK < p->size ? (chunk + 1) * CHUNK : p->size;                   \
    for (i64 i = chunk * CHUNK; i < stop; i++) dx[i] = y[i] > 0 ? dy[i] : 0;                    \
}                                                                                               \
void relu_grad_##S(const T *dy, const T *y, T *dx, i64 size, i64 threads) {                     \
    pair_args_##S args = {dy, y, dx, size};                                                     \
    run_chunks(relu_grad_chunk_##S, &args, chunks_of(size, CHUNK), threads);                    \
}                                                                                               \
                                                                                                \
static void add_chunk_##S(const void *args, i64 chunk) {                                        \
    const pair_args_##S *p = args;                                                              \
    const T *restrict a = p->a, *restrict b = p->b;                                             \
    T *restrict out = p->out;                                                                   \
    i64 stop = (chunk + 1) * CHUNK < p->size ? (chunk + 1) * CHUNK : p->size;                   \
    for (i64 i = chunk * CHUNK; i < stop; i++) out[i] = a[i] + b[i];                            \
}                                                                                               \
void add_##S(const T *a, const T *b, T *out, i64 size, i64 threads) {                           \
    pair_args_##S args = {a, b, out, size};                                                     \
    run_chunks(add_chunk_##S, &args, chunks_of(size, CHUNK), threads);                          \
}                                                                                               \
                                                                                                \
/* BatchNorm on (rows, C) arrays (channels-last), channels innermost, in chunks of rows;        \
 * sums in double (reduce_rows). Each reads x - centre (the batch mean; zeros where the         \
 * source is already centred): subtracting before scaling keeps the digits that                 \
 * x * scale - mu * scale would cancel when the mean is large against the spread. */            \
typedef struct {                                                                                \
    const T *x, *dy, *centre, *scale, *shift, *k_const, *k_centred;                             \
    T *out;                                                                                     \
    double *partial;                                                                            \
    i64 rows, c_all;                                                                            \
} bn_args_##S;                                                                                  \
                                                                                                \
static void bn_rows_##S(const bn_args_##S *a, i64 chunk, i64 *start, i64 *stop) {               \
    i64 per_chunk = rows_per_chunk(a->c_all);                                                   \
    *start = chunk * per_chunk;                                                                 \
    *stop = *start + per_chunk < a->rows ? *start + per_chunk : a->rows;                        \
}                                                                                               \
                                                                                                \
/* Per channel: the sum of x - shift and of its square (the shift, any one value of the         \
 * channel, keeps E[(x-s)^2] - E[x-s]^2 from cancelling likewise). */                           \
static void bn_sums_chunk_##S(const void *args, i64 chunk) {                                    \
    const bn_args_##S *a = args;                                                                \
    i64 c_all = a->c_all, start, stop;                                                          \
    bn_rows_##S(a, chunk, &start, &stop);                                                       \
    double *restrict sum = a->partial + partial_stride(c_all) * chunk, *restrict sum_squares = sum + c_all; \
    const T *restrict x = a->x, *restrict shift = a->shift;                                     \
    for (i64 r = start; r < stop; r++)                                                          \
        for (i64 c = 0; c < c_all; c++) {                                                       \
            double d = (double)x[r * c_all + c] - (double)shift[c];                             \
            sum[c] += d;                                                                        \
            sum_squares[c] += d * d;                                                            \
        }                                                                                       \
}                                                                                               \
int bn_sums_##S(const T *x, const T *shift, double *sum, double *sum_squares, i64 rows, i64 c_all, i64 threads) { \
    bn_args_##S args = {.x = x, .shift = shift, .rows = rows, .c_all = c_all};                  \
    return reduce_rows(bn_sums_chunk_##S, &args, &args.partial, rows, c_all, sum, sum_squares, threads); \
}                                                                                               \
                                                                                                \
static void bn_scale_shift_chunk_##S(const void *args, i64 chunk) {                             \
    const bn_args_##S *a = args;                                                                \
    i64 c_all = a->c_all, start, stop;                                                          \
    bn_rows_##S(a, chunk, &start, &stop);                                                       \
    const T *restrict x = a->x, *restrict centre = a->centre, *restrict scale = a->scale, *restrict shift = a->shift; \
    T *restrict out = a->out;                                                                   \
    for (i64 r = start; r < stop; r++)                                                          \
        for (i64 c = 0; c < c_all; c++)                                                         \
            out[r * c_all + c] = (x[r * c_all + c] - centre[c]) * scale[c] + shift[c];          \
}                                                                                               \
void bn_scale_shift_##S(const T *source, const T *centre, const T *scale, const T *shift, T *out, \
                        i64 rows, i64 c_all, i64 threads) {                                     \
    bn_args_##S args = {.x = source, .centre = centre, .scale = scale, .shift = shift, .out = out, .rows = rows, .c_all = c_all}; \
    run_chunks(bn_scale_shift_chunk_##S, &args, chunks_of(rows, rows_per_chunk(c_all)), threads); \
}                                                                                               \
                                                                                                \
static void bn_grad_sums_chunk_##S(const void *args, i64 chunk) {                               \
    const bn_args_##S *a = args;                                                                \
    i64 c_all = a->c_all, start, stop;                                                          \
    bn_rows_##S(a, chunk, &start, &stop);                                                       \
    double *restrict sum_dy = a->partial + partial_stride(c_all) * chunk, *restrict sum_dy_centred = sum_dy + c_all; \
    const T *restrict dy = a->dy, *restrict x = a->x, *restrict centre = a->centre;             \
    for (i64 r = start; r < stop; r++)                                                          \
        for (i64 c = 0; c < c_all; c++) {                                                       \
            T g = dy[r * c_all + c];                                                            \
            sum_dy[c] += (double)g;                                                             \
            sum_dy_centred[c] += (double)(g * (x[r * c_all + c] - centre[c]));                  \
        }                                                                                       \
}                                                                                               \
int bn_grad_sums_##S(const T *dy, const T *source, const T *centre, double *sum_dy, double *sum_dy_centred, \
                     i64 rows, i64 c_all, i64 threads) {                                        \
    bn_args_##S args = {.x = source, .dy = dy, .centre = centre, .rows = rows, .c_all = c_all}; \
    return reduce_rows(bn_grad_sums_chunk_##S, &args, &args.partial, rows, c_all, sum_dy, sum_dy_centred, threads); \
}                                                                                               \
                                                                                                \
static void bn_input_grad_chunk_##S(const void *args, i64 chunk) {                              \
    const bn_args_##S *a = args;                                                                \
    i64 c_all = a->c_all, start, stop;                                                          \
    bn_rows_##S(a, chunk, &start, &stop);                                                       \
    const T *restrict dy = a->dy, *restrict x = a->x, *restrict centre = a->centre, *restrict scale = a->scale; \
    const T *restrict k_const = a->k_const, *restrict k_centred = a->k_centred;                 \
    T *restrict dx = a->out;                                                                    \
    for (i64 r = start; r < stop; r++)                                                          \
        for (i64 c = 0; c < c_all; c++)                                                         \
            dx[r * c_all + c] = dy[r * c_all + c] * scale[c] - k_const[c] - (x[r * c_all + c] - centre[c]) * k_centred[c]; \
}                                                                                               \
void bn_input_grad_##S(const T *dy, const T *source, const T *centre, const T *scale, const T *k_const, \
                       const T *k_centred, T *dx, i64 rows, i64 c_all, i64 threads) {           \
    bn_args_##S args = {.x = source, .dy = dy, .centre = centre, .scale = scale, .k_const = k_const, \
                        .k_centred = k_centred, .out = dx, .rows = rows, .c_all = c_all};       \
    run_chunks(bn_input_grad_chunk_##S, &args, chunks_of(rows, rows_per_chunk(c_all)), threads); \
}

DEFINE_KERNELS(float, f32)
DEFINE_KERNELS(double, f64)

/* Cross-entropy of logits x (n, c) with class indices t, per row i: m = max_j x[i, j],
 * s = sum_j exp(x[i, j] - m), loss_i = log s - (x[i, t_i] - m); grad[i, j] = scale *
 * (exp(x[i, j] - m) / s - [j == t_i]). *total = sum_i loss_i (in double). One pass of
 * scalar exp per row, for the few classes where NumPy's dozen calls cost more than the
 * arithmetic. A NaN logit makes its row's loss and gradient NaN (through s, or m), as
 * NumPy's max does. Returns 0, or 1 + the first row whose index is not in [0, c)
 * (nothing else is then meaningful). */
#define DEFINE_CROSS_ENTROPY(T, S, EXP, LOG)                                                    \
i64 cross_entropy_##S(const T *x, const int64_t *t, T *grad, double *total, i64 n, i64 c, double scale) { \
    double sum_loss = 0;                                                                        \
    for (i64 i = 0; i < n; i++) {                                                               \
        const T *row = x + i * c;                                                               \
        T *g = grad + i * c;                                                                    \
        if (t[i] < 0 || t[i] >= c) return i + 1;                                                \
        T m = row[0];                                                                           \
        for (i64 j = 1; j < c; j++) m = row[j] > m ? row[j] : m;                                \
        T s = 0;                                                                                \
        for (i64 j = 0; j < c; j++) {                                                           \
            g[j] = EXP(row[j] - m);                                                             \
            s += g[j];                                                                          \
        }                                                                                       \
        T k = (T)scale / s;                                                                     \
        for (i64 j = 0; j < c; j++) g[j] *= k;                                                  \
        g[t[i]] -= (T)scale;                                                                    \
        sum_loss += (double)(LOG(s) - (row[t[i]] - m));                                         \
    }                                                                                           \
    *total = sum_loss;                                                                          \
    return 0;                                                                                   \
}

DEFINE_CROSS_ENTROPY(float, f32, expf, logf)
DEFINE_CROSS_ENTROPY(double, f64, exp, log)

/* 2x2 max-pool of a C-order (N, C, H, W) array: 8 tiles of a row at a time. The tiles'
 * left and right columns are the even and odd values of two loaded vectors (a shuffle
 * splits them); each tile keeps the first maximum in row-major order, by TAKE's rule
 * written as vector selects: the pair maxima of its top and bottom rows, then the larger
 * (the top's on a tie). The scalar loop took 13 ns a tile, most of it mispredicted
 * branches (random data: which value is largest is a coin toss). A row's last vector may
 * reach past the row (into the next ones): its extra lanes are computed and not stored;
 * the last rows of the array, whose vectors would read past its end, take the scalar loop. */
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef uint8_t v8u __attribute__((vector_size(8)));

static inline v8f select8(v8i take, v8f yes, v8f no) { return (v8f)((take & (v8i)yes) | (~take & (v8i)no)); }
static inline v8i takes8(v8f v, v8f best) { return (v > best) | ((v != v) & (best == best)); } /* TAKE's test */
static inline v8f load8(const float *p) { v8f v; memcpy(&v, p, sizeof v); return v; }

/* 8 tiles at once, their values top-left a0, top-right a1, bottom-left c0, bottom-right c1:
 * each tile's first maximum in row-major order (*best) and its index 0-3 (the result). */
static inline v8u tile_first_max8(v8f a0, v8f a1, v8f c0, v8f c1, v8f *best) {
    v8i upper = takes8(a1, a0), lower = takes8(c1, c0);
    v8f top_max = select8(upper, a1, a0), bottom_max = select8(lower, c1, c0);
    v8i take_lower = takes8(bottom_max, top_max);
    *best = select8(take_lower, bottom_max, top_max);
    return __builtin_convertvector((take_lower & (2 - lower)) | (~take_lower & -upper), v8u); /* true is -1 */
}

/* How many leading rows (row_len elements each, `rows` in all) can read `reach` elements
 * from their start without passing the end of the array. */
static i64 rows_within(i64 rows, i64 row_len, i64 reach) {
    i64 total = rows * row_len;
    if (total < reach) return 0;
    i64 count = (total - reach) / row_len + 1;
    return count < rows ? count : rows;
}

void max_pool_2x2_f32(const float *x, float *y, uint8_t *first, i64 rows, i64 wo) {
    const v8i even = {0, 2, 4, 6, 8, 10, 12, 14}, odd = {1, 3, 5, 7, 9, 11, 13, 15};
    i64 last = wo > 0 ? (wo - 1) / 8 * 8 : 0; /* the first tile of a row's last vector */
    i64 vector_rows = wo > 0 ? rows_within(rows, 4 * wo, 2 * wo + 2 * last + 16) : rows;
    for (i64 q = 0; q < vector_rows; q++) {
        const float *top = x + q * 4 * wo, *bottom = top + 2 * wo;
        for (i64 b = 0; b < wo; b += 8) {
            v8f t0 = load8(top + 2 * b), t1 = load8(top + 2 * b + 8);
            v8f u0 = load8(bottom + 2 * b), u1 = load8(bottom + 2 * b + 8);
            v8f a0 = __builtin_shuffle(t0, t1, even), a1 = __builtin_shuffle(t0, t1, odd);
            v8f c0 = __builtin_shuffle(u0, u1, even), c1 = __builtin_shuffle(u0, u1, odd);
            v8f best;
            v8u codes = tile_first_max8(a0, a1, c0, c1, &best);
            i64 n = wo - b < 8 ? wo - b : 8;
            memcpy(y + q * wo + b, &best, (size_t)n * sizeof(float));
            memcpy(first + q * wo + b, &codes, (size_t)n);
        }
    }
    max_pool_2x2_scalar_f32(x + vector_rows * 4 * wo, y + vector_rows * wo, first + vector_rows * wo, rows - vector_rows, wo);
}

/* Its gradient: each tile's dE/dy to the input its code names, zeros to the other three;
 * the codes become lane masks, and the even and odd lanes are interleaved back. */
void max_pool_2x2_grad_f32(const float *dy, const uint8_t *first, float *dx, i64 rows, i64 wo) {
    const v8i low = {0, 8, 1, 9, 2, 10, 3, 11}, high = {4, 12, 5, 13, 6, 14, 7, 15};
    i64 last = wo > 0 ? (wo - 1) / 8 * 8 : 0;
    i64 vector_rows = wo > 0 ? rows_within(rows, wo, last + 8) : rows; /* reading dy and first */
    const v8f zero = {0};
    for (i64 q = 0; q < vector_rows; q++) {
        float *top = dx + q * 4 * wo, *bottom = top + 2 * wo;
        for (i64 b = 0; b < wo; b += 8) {
            v8f g = load8(dy + q * wo + b);
            v8u codes;
            memcpy(&codes, first + q * wo + b, sizeof codes);
            v8i k = __builtin_convertvector(codes, v8i);
            v8f d0 = select8(k == 0, g, zero), d1 = select8(k == 1, g, zero);
            v8f d2 = select8(k == 2, g, zero), d3 = select8(k == 3, g, zero);
            v8f out[4] = {__builtin_shuffle(d0, d1, low), __builtin_shuffle(d0, d1, high),
                          __builtin_shuffle(d2, d3, low), __builtin_shuffle(d2, d3, high)};
            i64 n = 2 * (wo - b < 8 ? wo - b : 8); /* values of each input row */
            memcpy(top + 2 * b, out, (size_t)n * sizeof(float));
            memcpy(bottom + 2 * b, out + 2, (size_t)n * sizeof(float));
        }
    }
    max_pool_2x2_grad_scalar_f32(dy + vector_rows * wo, first + vector_rows * wo, dx + vector_rows * 4 * wo, rows - vector_rows, wo);
}

/* The channels-last max-pool for floats, 8 channels at a time as vectors where the
 * channels are a multiple of 8, choosing by TAKE's rule as selects. GCC vectorises the
 * generic loops 32 channels at a time (their uint8 codes set the width) and runs fewer, as
 * 16, as scalar code, whose branches on random data mispredict: the gradient took 0.50
 * against 0.06 ms for 128x16x10x10 on one core. */
void max_pool_2x2_channels_last_f32(const float *x, float *y, uint8_t *first, i64 n_all, i64 h, i64 wd,
                                    i64 c_all, i64 ho, i64 wo) {
    if (c_all % 8) {
        max_pool_2x2_channels_last_any_f32(x, y, first, n_all, h, wd, c_all, ho, wo);
        return;
    }
    for (i64 n = 0; n < n_all; n++)
        for (i64 a = 0; a < ho; a++)
            for (i64 b = 0; b < wo; b++) {
                const float *p0 = x + ((n * h + 2 * a) * wd + 2 * b) * c_all, *p1 = p0 + c_all;
                const float *p2 = p0 + wd * c_all, *p3 = p2 + c_all;
                i64 tile = ((n * ho + a) * wo + b) * c_all;
                for (i64 c = 0; c < c_all; c += 8) {
                    v8f a0 = load8(p0 + c), a1 = load8(p1 + c), c0 = load8(p2 + c), c1 = load8(p3 + c);
                    v8f best;
                    v8u codes = tile_first_max8(a0, a1, c0, c1, &best);
                    memcpy(y + tile + c, &best, sizeof best);
                    memcpy(first + tile + c, &codes, sizeof codes);
                }
            }
}

void max_pool_2x2_channels_last_f64(const double *x, double *y, uint8_t *first, i64 n_all, i64 h, i64 wd,
                                    i64 c_all, i64 ho, i64 wo) {
    max_pool_2x2_channels_last_any_f64(x, y, first, n_all, h, wd, c_all, ho, wo);
}

void max_pool_2x2_channels_last_grad_f32(const float *dy, const uint8_t *first, float *dx, i64 n_all, i64 h,
                                         i64 wd, i64 c_all, i64 ho, i64 wo) {
    if (c_all % 8) {
        max_pool_2x2_channels_last_grad_any_f32(dy, first, dx, n_all, h, wd, c_all, ho, wo);
        return;
    }
    const v8f zero = {0};
    for (i64 n = 0; n < n_all; n++)
        for (i64 a = 0; a < ho; a++)
            for (i64 b = 0; b < wo; b++) {
                float *d0 = dx + ((n * h + 2 * a) * wd + 2 * b) * c_all, *d1 = d0 + c_all;
                float *d2 = d0 + wd * c_all, *d3 = d2 + c_all;
                i64 tile = ((n * ho + a) * wo + b) * c_all;
                for (i64 c = 0; c < c_all; c += 8) {
                    v8f g = load8(dy + tile + c);
                    v8u codes;
                    memcpy(&codes, first + tile + c, sizeof codes);
                    v8i k = __builtin_convertvector(codes, v8i);
                    v8f out[4] = {select8(k == 0, g, zero), select8(k == 1, g, zero), select8(k == 2, g, zero),
                                  select8(k == 3, g, zero)};
                    memcpy(d0 + c, &out[0], sizeof(v8f));
                    memcpy(d1 + c, &out[1], sizeof(v8f));
                    memcpy(d2 + c, &out[2], sizeof(v8f));
                    memcpy(d3 + c, &out[3], sizeof(v8f));
                }
            }
}

void max_pool_2x2_channels_last_grad_f64(const double *dy, const uint8_t *first, double *dx, i64 n_all, i64 h,
                                         i64 wd, i64 c_all, i64 ho, i64 wo) {
    max_pool_2x2_channels_last_grad_any_f64(dy, first, dx, n_all, h, wd, c_all, ho, wo);
}

void max_pool_2x2_f64(const double *x, double *y, uint8_t *first, i64 rows, i64 wo) {
    max_pool_2x2_scalar_f64(x, y, first, rows, wo);
}

void max_pool_2x2_grad_f64(const double *dy, const uint8_t *first, double *dx, i64 rows, i64 wo) {
    max_pool_2x2_grad_scalar_f64(dy, first, dx, rows, wo);
}

/* Register-blocked direct convolution on channels-last (pixel-major) arrays, for Conv2d's
 * pixel-major path (gradlearn.compiled says what it measured). One vector V holds LANES
 * consecutive output channels (VBYTES above: with AVX-512 16 floats or 8 doubles; GCC's
 * vector extension). A tile keeps up to TILE_PIXELS x 2 vectors of sums in registers over
 * every tap and input channel, so each weight vector loaded serves TILE_PIXELS output pixels
 * (forward) and each dE/dy vector TILE_ROWS input channels (weight gradient); each value of
 * x broadcast serves 2 vectors of output channels when their count is a multiple of 2
 * vectors (1.3-1.7x faster for 32 and 64 channels). When the kernel is not dilated along
 * the width, its kw taps of one row are kw*C consecutive values of x and of w, and are
 * summed as one run of "channels". */
#define INLINE static inline __attribute__((always_inline))

/* The vector width the machine has (the build is -march=native), and tiles that fit its
 * registers: 32 of 64 bytes with AVX-512, 16 of 32 or 16 bytes otherwise. (64-byte vectors on
 * an AVX2 build ran 2-9 GFLOP/s: GCC lowers them to memory; 32-byte ones as below run as
 * written.) Python reads the width from vector_bytes(). */
#if defined(__AVX512F__)
#define VBYTES 64
#define TILE_PIXELS 8 /* forward tile: 8 pixels x 2 vectors = 16 sums */
#define TILE_ROWS 12  /* weight-gradient tile: 12 rows x 2 vectors = 24 sums */
#else
#if defined(__AVX__)
#define VBYTES 32
#else
#define VBYTES 16
#endif
#define TILE_PIXELS 4
#define TILE_ROWS 6
#endif

int vector_bytes(void) { return VBYTES; }

#define SAMPLES_PER_CHUNK 4 /* the team's chunks of a convolution's forward and scattered dE/dx */

#define DEFINE_CONV_CL(T, S, LANES)                                                             \
typedef T V_##S __attribute__((vector_size(VBYTES)));                                           \
typedef T VU_##S __attribute__((vector_size(VBYTES), aligned(sizeof(T))));                      \
                                                                                                \
/* pb pixels of an output row (x advancing by step values per pixel, y by ystep) x nv*LANES \
 * channels: y[p*ystep] (+)= bias + sum_{i, j, c} x0[i*row + j*col + p*step + c] *           \
 * w[((i*kwr + j)*cr + c)*q]; added to y when `add`. */                                         \
INLINE void conv_cl_tile_##S(const T *restrict x0, const T *restrict w, const T *restrict bias, \
                             T *restrict y, i64 cr, i64 q, i64 kh, i64 kwr, i64 step, i64 row,  \
                             i64 col, i64 ystep, const int pb, const int nv, const int add) {   \
    V_##S acc[8][2];                                                                            \
    _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++) {                                      \
        V_##S start = bias ? *(const VU_##S *)(bias + v * LANES) : (V_##S){0};                  \
        _Pragma("GCC unroll 8") for (int p = 0; p < pb; p++) acc[p][v] = start;                 \
    }                                                                                           \
    for (i64 i = 0; i < kh; i++)                                                                \
        for (i64 j = 0; j < kwr; j++) {                                                         \
            const T *xs = x0 + i * row + j * col;                                               \
            const T *ws = w + (i * kwr + j) * cr * q;                                           \
            for (i64 c = 0; c < cr; c++) {                                                      \
                V_##S wv[2];                                                                    \
                _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++) wv[v] = *(const VU_##S *)(ws + c * q + v * LANES); \
                _Pragma("GCC unroll 8") for (int p = 0; p < pb; p++) {                          \
                    T xv = xs[p * step + c];                                                    \
                    _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++) acc[p][v] += xv * wv[v]; \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
    _Pragma("GCC unroll 8") for (int p = 0; p < pb; p++)                                        \
        _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++) {                                  \
            VU_##S *out = (VU_##S *)(y + p * ystep + v * LANES);                                \
            *out = add ? *out + acc[p][v] : acc[p][v];                                          \
        }                                                                                       \
}                                                                                               \
                                                                                                \
/* One output row of wo pixels, ystep apart, in tiles of 8 pixels (then 4, 2, 1) x nv       \
 * vectors of channels (all q of them), written or (`add`) added. */                           \
INLINE void conv_cl_row_##S(const T *xr, const T *w, const T *bias, T *yr, i64 cr, i64 q, i64 kh, \
                            i64 kwr, i64 step, i64 row, i64 col, i64 wo, i64 ystep, const int nv, \
                            const int add) {                                                    \
    for (i64 o = 0; o < q; o += LANES * nv) {                                                   \
        const T *bo = bias ? bias + o : NULL;                                                   \
        i64 b = 0;                                                                              \
        for (; b + TILE_PIXELS <= wo; b += TILE_PIXELS)                                         \
            conv_cl_tile_##S(xr + b * step, w + o, bo, yr + b * ystep + o, cr, q, kh, kwr, step, row, col, ystep, TILE_PIXELS, nv, add); \
        if (b + 4 <= wo) {                                                                      \
            conv_cl_tile_##S(xr + b * step, w + o, bo, yr + b * ystep + o, cr, q, kh, kwr, step, row, col, ystep, 4, nv, add); \
            b += 4;                                                                             \
        }                                                                                       \
        if (b + 2 <= wo) {                                                                      \
            conv_cl_tile_##S(xr + b * step, w + o, bo, yr + b * ystep + o, cr, q, kh, kwr, step, row, col, ystep, 2, nv, add); \
            b += 2;                                                                             \
        }                                                                                       \
        if (b < wo)                                                                             \
            conv_cl_tile_##S(xr + b * step, w + o, bo, yr + b * ystep + o, cr, q, kh, kwr, step, row, col, ystep, 1, nv, add); \
    }                                                                                           \
}                                                                                               \
                                                                                                \
/* Sample n of x (N, h, wd, c), zero-padded to (hp, wp) with the image at (top, left): x's   \
 * own sample when there is no padding, else a copy in `pad` (hp*wp*c values, whose border    \
 * stays zero: calloc'd, and only the image is rewritten). One sample at a time, so the       \
 * copy is in cache when the tiles read it. */                                                  \
static const T *conv_cl_sample_##S(const T *x, i64 n, i64 h, i64 wd, i64 c, T *pad, i64 top,     \
                                   i64 left, i64 wp) {                                          \
    if (!pad) return x + n * h * wd * c;                                                        \
    for (i64 r = 0; r < h; r++)                                                                 \
        memcpy(pad + ((r + top) * wp + left) * c, x + (n * h + r) * wd * c, (size_t)(wd * c) * sizeof(T)); \
    return pad;                                                                                 \
}                                                                                               \
                                                                                                \
/* y (N, ho, wo, q) = correlation of x (N, h, wd, c) zero-padded to (hp, wp) (image at (top,  \
 * left)) with w (kh, kw, c, q), plus bias (q,) unless NULL; stride (sh, sw), dilation         \
 * (dil_h, dil_w); q % LANES == 0. Returns -1 when the padded copy cannot be allocated. */    \
static int conv_cl_forward_part_##S(const T *x, const T *w, const T *bias, T *y, i64 n_all, i64 h, i64 wd, \
                        i64 c, i64 q, i64 kh, i64 kw, i64 ho, i64 wo, i64 sh, i64 sw,           \
                        i64 dil_h, i64 dil_w, i64 top, i64 left, i64 hp, i64 wp) {              \
    i64 cr = dil_w == 1 ? kw * c : c, kwr = dil_w == 1 ? 1 : kw;                                \
    i64 step = sw * c, row = dil_h * wp * c, col = dil_w * c;                                   \
    T *pad = NULL;                                                                              \
    if ((hp != h || wp != wd) && !(pad = calloc((size_t)(hp * wp * c), sizeof(T)))) return -1;  \
    for (i64 n = 0; n < n_all; n++) {                                                           \
        const T *xs = conv_cl_sample_##S(x, n, h, wd, c, pad, top, left, wp);               \
        for (i64 a = 0; a < ho; a++) {                                                          \
            const T *xr = xs + a * sh * wp * c;                                                 \
            T *yr = y + (n * ho + a) * wo * q;                                                  \
            if (q % (2 * LANES) == 0)                                                           \
                conv_cl_row_##S(xr, w, bias, yr, cr, q, kh, kwr, step, row, col, wo, q, 2, 0);  \
            else                                                                                \
                conv_cl_row_##S(xr, w, bias, yr, cr, q, kh, kwr, step, row, col, wo, q, 1, 0);  \
        }                                                                                       \
    }                                                                                           \
    free(pad);                                                                                  \
    return 0;                                                                                   \
}                                                                                               \
                                                                                                \
/* dxpad (N, hp, wp, c) += dE/dxpad of the forward above (any stride and dilation), from dy  \
 * (N, ho, wo, q) and wt (kh, kw, q, c) (w with its two channel axes swapped); c % LANES == 0. \
 * Each tap scatters: for output row a, dE/dy's pixels times the tap's (q, c) matrix, summed   \
 * over q in registers, are added to the input pixels they came from (sw*c values apart). */   \
static void conv_cl_input_grad_part_##S(const T *dy, const T *wt, T *dxpad, i64 n_all, i64 hp, i64 wp, i64 c, \
                            i64 q, i64 kh, i64 kw, i64 ho, i64 wo, i64 sh, i64 sw, i64 dil_h,   \
                            i64 dil_w) {                                                        \
    for (i64 n = 0; n < n_all; n++)                                                             \
        for (i64 a = 0; a < ho; a++)                                                            \
            for (i64 i = 0; i < kh; i++)                                                        \
                for (i64 j = 0; j < kw; j++) {                                                  \
                    const T *src = dy + (n * ho + a) * wo * q;                                  \
                    const T *tap = wt + (i * kw + j) * q * c;                                   \
                    T *dst = dxpad + ((n * hp + a * sh + i * dil_h) * wp + j * dil_w) * c;      \
                    if (c % (2 * LANES) == 0)                                                   \
                        conv_cl_row_##S(src, tap, NULL, dst, q, c, 1, 1, q, 0, 0, wo, sw * c, 2, 1); \
                    else                                                                        \
                        conv_cl_row_##S(src, tap, NULL, dst, q, c, 1, 1, q, 0, 0, wo, sw * c, 1, 1); \
                }                                                                               \
}                                                                                               \
                                                                                                \
/* cb channels of one tap x LANES output channels, summed over rows x wo output pixels:    \
 * dw[k] += sum_{a, b} x0[a*row + b*step + k] * dy[(a*wo + b)*q]. */                          \
INLINE void conv_cl_grad_tile_##S(const T *restrict x0, const T *restrict dy, T *restrict dw, \
                                  i64 q, i64 rows, i64 wo, i64 step, i64 row, const int cb,     \
                                  const int nv) {                                               \
    V_##S acc[12][2];                                                                           \
    _Pragma("GCC unroll 12") for (int k = 0; k < cb; k++)                                       \
        _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++) acc[k][v] = *(VU_##S *)(dw + k * q + v * LANES); \
    for (i64 a = 0; a < rows; a++) {                                                            \
        const T *xs = x0 + a * row;                                                             \
        const T *ds = dy + a * wo * q;                                                          \
        for (i64 b = 0; b < wo; b++) {                                                          \
            V_##S dv[2];                                                                        \
            _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++) dv[v] = *(const VU_##S *)(ds + b * q + v * LANES); \
            _Pragma("GCC unroll 12") for (int k = 0; k < cb; k++) {                             \
                T xv = xs[b * step + k];                                                        \
                _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++) acc[k][v] += xv * dv[v];   \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
    _Pragma("GCC unroll 12") for (int k = 0; k < cb; k++)                                       \
        _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++) *(VU_##S *)(dw + k * q + v * LANES) = acc[k][v]; \
}                                                                                               \
                                                                                                \
/* One tap row's cr (tap, channel) rows x all q output channels, in tiles of 12 rows (the    \
 * rest as 6, 3, 2, 1: 3 input channels x 3 taps are 6 + 3, not 8 + 1) x nv vectors. */         \
INLINE void conv_cl_grad_rows_##S(const T *xt, const T *da, T *dt, i64 cr, i64 q, i64 rows,    \
                                  i64 wo, i64 step, i64 row, const int nv) {                    \
    for (i64 o = 0; o < q; o += LANES * nv) {                                                   \
        i64 k = 0;                                                                              \
        for (; k + TILE_ROWS <= cr; k += TILE_ROWS)                                             \
            conv_cl_grad_tile_##S(xt + k, da + o, dt + k * q + o, q, rows, wo, step, row, TILE_ROWS, nv); \
        if (k + 6 <= cr) {                                                                      \
            conv_cl_grad_tile_##S(xt + k, da + o, dt + k * q + o, q, rows, wo, step, row, 6, nv); \
            k += 6;                                                                             \
        }                                                                                       \
        if (k + 3 <= cr) {                                                                      \
            conv_cl_grad_tile_##S(xt + k, da + o, dt + k * q + o, q, rows, wo, step, row, 3, nv); \
            k += 3;                                                                             \
        }                                                                                       \
        if (k + 2 <= cr) {                                                                      \
            conv_cl_grad_tile_##S(xt + k, da + o, dt + k * q + o, q, rows, wo, step, row, 2, nv); \
            k += 2;                                                                             \
        }                                                                                       \
        if (k < cr)                                                                             \
            conv_cl_grad_tile_##S(xt + k, da + o, dt + k * q + o, q, rows, wo, step, row, 1, nv); \
    }                                                                                           \
}                                                                                               \
                                                                                                \
/* dw (kh, kw, c, q) += dE/dW of the forward above, from x (N, h, wd, c) (padded as there)  \
 * and dy (N, ho, wo, q); q % LANES == 0. Bands of about 32 output pixels, whose x and dE/dy \
 * rows stay in L1 while every tap reads them. Returns -1 when the padded copy cannot be      \
 * allocated. */                                                                                \
static int conv_cl_weight_grad_part_##S(const T *x, const T *dy, T *dw, i64 n_all, i64 h, i64 wd, i64 c, \
                            i64 q, i64 kh, i64 kw, i64 ho, i64 wo, i64 sh, i64 sw, i64 dil_h,   \
                            i64 dil_w, i64 top, i64 left, i64 hp, i64 wp) {                     \
    i64 cr = dil_w == 1 ? kw * c : c, kwr = dil_w == 1 ? 1 : kw;                                \
    i64 step = sw * c, row = sh * wp * c, band = wo >= 32 ? 1 : 32 / wo;                        \
    T *pad = NULL;                                                                              \
    if ((hp != h || wp != wd) && !(pad = calloc((size_t)(hp * wp * c), sizeof(T)))) return -1;  \
    for (i64 n = 0; n < n_all; n++) {                                                           \
        const T *xs = conv_cl_sample_##S(x, n, h, wd, c, pad, top, left, wp);               \
        for (i64 a = 0; a < ho; a += band) {                                                    \
            i64 rows = ho - a < band ? ho - a : band;                                           \
            const T *xa = xs + a * sh * wp * c;                                                 \
            const T *da = dy + (n * ho + a) * wo * q;                                           \
            for (i64 i = 0; i < kh; i++)                                                        \
                for (i64 j = 0; j < kwr; j++) {                                                 \
                    const T *xt = xa + (i * dil_h * wp + j * dil_w) * c;                        \
                    T *dt = dw + (i * kwr + j) * cr * q;                                        \
                    if (q % (2 * LANES) == 0)                                                   \
                        conv_cl_grad_rows_##S(xt, da, dt, cr, q, rows, wo, step, row, 2);       \
                    else                                                                        \
                        conv_cl_grad_rows_##S(xt, da, dt, cr, q, rows, wo, step, row, 1);       \
                }                                                                               \
        }                                                                                       \
    }                                                                                           \
    free(pad);                                                                                  \
    return 0;                                                                                   \
}                                                                                               \
                                                                                                \
/* The three kernels above on the kernels' team (run_chunks), in chunks of samples (a fixed     \
 * number per chunk, so the result does not depend on the threads): the forward and the         \
 * scattered input gradient write each sample's own output; the weight gradient keeps one       \
 * partial dE/dW per chunk of a quarter of the batch (the first adds into dw), added in         \
 * chunk order. Returns -1 when a padded copy or the partials cannot be allocated. */           \
                                                                                                \
typedef struct {                                                                                \
    const T *x, *w, *bias, *dy;                                                                 \
    T *y, *dw, *dxpad, *partial;                                                                \
    i64 n_all, per_chunk, h, wd, c, q, kh, kw, ho, wo, sh, sw, dil_h, dil_w, top, left, hp, wp; \
    _Atomic int failed;                                                                         \
} conv_team_args_##S;                                                                           \
                                                                                                \
static i64 conv_chunk_samples_##S(const conv_team_args_##S *a, i64 chunk, i64 *start) {         \
    *start = chunk * a->per_chunk;                                                              \
    return a->n_all - *start < a->per_chunk ? a->n_all - *start : a->per_chunk;                 \
}                                                                                               \
                                                                                                \
static void conv_cl_forward_chunk_##S(const void *args, i64 chunk) {                            \
    conv_team_args_##S *a = (conv_team_args_##S *)args;                                         \
    i64 start, count = conv_chunk_samples_##S(a, chunk, &start);                                \
    if (conv_cl_forward_part_##S(a->x + start * a->h * a->wd * a->c, a->w, a->bias, a->y + start * a->ho * a->wo * a->q, \
                                 count, a->h, a->wd, a->c, a->q, a->kh, a->kw, a->ho, a->wo, a->sh, a->sw, a->dil_h, \
                                 a->dil_w, a->top, a->left, a->hp, a->wp) != 0)                 \
        atomic_store(&a->failed, 1);                                                            \
}                                                                                               \
int conv_cl_forward_##S(const T *x, const T *w, const T *bias, T *y, i64 n_all, i64 h, i64 wd, i64 c, i64 q, \
                        i64 kh, i64 kw, i64 ho, i64 wo, i64 sh, i64 sw, i64 dil_h, i64 dil_w, i64 top, i64 left, \
                        i64 hp, i64 wp, i64 threads) {                                          \
    conv_team_args_##S a = {.x = x, .w = w, .bias = bias, .y = y, .n_all = n_all, .per_chunk = SAMPLES_PER_CHUNK, \
                            .h = h, .wd = wd, .c = c, .q = q, .kh = kh, .kw = kw, .ho = ho, .wo = wo, .sh = sh, .sw = sw, \
                            .dil_h = dil_h, .dil_w = dil_w, .top = top, .left = left, .hp = hp, .wp = wp}; \
    run_chunks(conv_cl_forward_chunk_##S, &a, chunks_of(n_all, a.per_chunk), threads);          \
    return atomic_load(&a.failed) ? -1 : 0;                                                     \
}                                                                                               \
                                                                                                \
static void conv_cl_input_grad_chunk_##S(const void *args, i64 chunk) {                         \
    const conv_team_args_##S *a = args;                                                         \
    i64 start, count = conv_chunk_samples_##S(a, chunk, &start);                                \
    conv_cl_input_grad_part_##S(a->dy + start * a->ho * a->wo * a->q, a->w, a->dxpad + start * a->hp * a->wp * a->c, \
                                count, a->hp, a->wp, a->c, a->q, a->kh, a->kw, a->ho, a->wo, a->sh, a->sw, a->dil_h, a->dil_w); \
}                                                                                               \
void conv_cl_input_grad_##S(const T *dy, const T *wt, T *dxpad, i64 n_all, i64 hp, i64 wp, i64 c, i64 q, i64 kh, \
                            i64 kw, i64 ho, i64 wo, i64 sh, i64 sw, i64 dil_h, i64 dil_w, i64 threads) { \
    conv_team_args_##S a = {.dy = dy, .w = wt, .dxpad = dxpad, .n_all = n_all, .per_chunk = SAMPLES_PER_CHUNK, \
                            .hp = hp, .wp = wp, .c = c, .q = q, .kh = kh, .kw = kw, .ho = ho, .wo = wo, .sh = sh, \
                            .sw = sw, .dil_h = dil_h, .dil_w = dil_w};                          \
    run_chunks(conv_cl_input_grad_chunk_##S, &a, chunks_of(n_all, a.per_chunk), threads);       \
}                                                                                               \
                                                                                                \
static void conv_cl_weight_grad_chunk_##S(const void *args, i64 chunk) {                        \
    conv_team_args_##S *a = (conv_team_args_##S *)args;                                         \
    i64 start, count = conv_chunk_samples_##S(a, chunk, &start);                                \
    T *target = chunk == 0 ? a->dw : a->partial + (chunk - 1) * a->kh * a->kw * a->c * a->q;    \
    if (conv_cl_weight_grad_part_##S(a->x + start * a->h * a->wd * a->c, a->dy + start * a->ho * a->wo * a->q, target, \
                                     count, a->h, a->wd, a->c, a->q, a->kh, a->kw, a->ho, a->wo, a->sh, a->sw, \
                                     a->dil_h, a->dil_w, a->top, a->left, a->hp, a->wp) != 0)   \
        atomic_store(&a->failed, 1);                                                            \
}                                                                                               \
int conv_cl_weight_grad_##S(const T *x, const T *dy, T *dw, i64 n_all, i64 h, i64 wd, i64 c, i64 q, i64 kh, \
                            i64 kw, i64 ho, i64 wo, i64 sh, i64 sw, i64 dil_h, i64 dil_w, i64 top, i64 left, \
                            i64 hp, i64 wp, i64 threads) {                                      \
    i64 per_chunk = chunks_of(n_all, 4), chunks = chunks_of(n_all, per_chunk), size = kh * kw * c * q; \
    conv_team_args_##S a = {.x = x, .dy = dy, .dw = dw, .n_all = n_all, .per_chunk = per_chunk, .h = h, .wd = wd, \
                            .c = c, .q = q, .kh = kh, .kw = kw, .ho = ho, .wo = wo, .sh = sh, .sw = sw, \
                            .dil_h = dil_h, .dil_w = dil_w, .top = top, .left = left, .hp = hp, .wp = wp}; \
    if (chunks > 1 && !(a.partial = calloc((size_t)((chunks - 1) * size), sizeof(T)))) return -1; \
    run_chunks(conv_cl_weight_grad_chunk_##S, &a, chunks, threads);                             \
    for (i64 k = 1; k < chunks; k++) {                                                          \
        const T *restrict part = a.partial + (k - 1) * size;                                    \
        for (i64 i = 0; i < size; i++) dw[i] += part[i];                                        \
    }                                                                                           \
    free(a.partial);                                                                            \
    return atomic_load(&a.failed) ? -1 : 0;                                                     \
}

DEFINE_CONV_CL(float, f32, (VBYTES / 4))
DEFINE_CONV_CL(double, f64, (VBYTES / 8))

/* Direct convolution over "wide rows" (stride 1, dilation 1), for gradlearn.compiled's
 * direct path: sample n's zero-padded input is one flat row per channel (hp x wp), and
 * over the full padded width the output is ywide[o][p] = b[o] + sum_t W[o, t] * xpad[off(t) + p]
 * for the taps t = (c, i, j), off(t) = c*hp*wp + i*wp + j; positions p = a*wp + b with
 * b >= Wo are computed and dropped. A tile keeps up to 6 outputs x 2 vectors of positions
 * of sums in registers over all the taps, so each vector of x loaded serves 6 outputs.
 * dE/dx is the same sum the other way (taps (o, i, j), offsets -(i*wp + j) into a dE/dy
 * given a zero front of (kh-1)*wp + kw-1), so the same tile computes it. dE/dW[o, t] is a
 * dot product of the wide dE/dy row o (zeros in its columns >= Wo) with row t of x: a tile
 * keeps up to 6 outputs x 2 taps of vector sums, added across lanes at the end. */
#define DEFINE_DIRECT(T, S, LANES)                                                              \
                                                                                                \
/* out[k][p + v*LANES] = bias[k] + sum_t wt[t*ldw + k] * src[off[t] + p + v*LANES] for         \
 * k < nk, v < nv; out rows `plane` apart. */                                                   \
INLINE void wide_tile_##S(const T *restrict src, const T *restrict wt, i64 ldw, const i64 *restrict off, \
                          i64 taps, const T *restrict bias, T *restrict out, i64 plane, const int nk, \
                          const int nv) {                                                       \
    V_##S acc[6][2];                                                                            \
    _Pragma("GCC unroll 6") for (int k = 0; k < nk; k++)                                        \
        _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++) acc[k][v] = (V_##S){0} + (bias ? bias[k] : 0); \
    for (i64 t = 0; t < taps; t++) {                                                            \
        const T *xs = src + off[t];                                                             \
        const T *ws = wt + t * ldw;                                                             \
        V_##S xv[2];                                                                            \
        _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++) xv[v] = *(const VU_##S *)(xs + v * LANES); \
        _Pragma("GCC unroll 6") for (int k = 0; k < nk; k++) {                                  \
            T weight = ws[k];                                                                   \
            _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++) acc[k][v] += weight * xv[v];   \
        }                                                                                       \
    }                                                                                           \
    _Pragma("GCC unroll 6") for (int k = 0; k < nk; k++)                                        \
        _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++) *(VU_##S *)(out + k * plane + v * LANES) = acc[k][v]; \
}                                                                                               \
                                                                                                \
/* Every output row k < nk_all (rows `plane` apart) over positions [0, length), in tiles of  \
 * 6 rows x 2 vectors; positions up to length + 2*LANES - 1 are written (slack). */            \
static void wide_rows_##S(const T *src, const T *wt, const i64 *off, i64 taps, const T *bias,   \
                          T *out, i64 plane, i64 nk_all, i64 length) {                          \
    for (i64 k0 = 0; k0 < nk_all; k0 += 6) {                                                    \
        const T *bk = bias ? bias + k0 : NULL;                                                  \
        for (i64 p = 0; p < length; p += 2 * LANES) {                                           \
            const T *s = src + p;                                                               \
            T *o = out + k0 * plane + p;                                                        \
            switch (nk_all - k0 < 6 ? nk_all - k0 : 6) {                                        \
            case 6: wide_tile_##S(s, wt + k0, nk_all, off, taps, bk, o, plane, 6, 2); break;    \
            case 5: wide_tile_##S(s, wt + k0, nk_all, off, taps, bk, o, plane, 5, 2); break;    \
            case 4: wide_tile_##S(s, wt + k0, nk_all, off, taps, bk, o, plane, 4, 2); break;    \
            case 3: wide_tile_##S(s, wt + k0, nk_all, off, taps, bk, o, plane, 3, 2); break;    \
            case 2: wide_tile_##S(s, wt + k0, nk_all, off, taps, bk, o, plane, 2, 2); break;    \
            default: wide_tile_##S(s, wt + k0, nk_all, off, taps, bk, o, plane, 1, 2); break;   \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
}                                                                                               \
                                                                                                \
/* dwv[(k*taps + t)*LANES + l] += sum_{p < npos, p % LANES == l} dyw[k*plane + p] *             \
 * src[off[t] + p], for k < nk, t < nt: vector sums, added across lanes once, at the end of   \
 * the batch. npos a multiple of LANES. */                                                      \
INLINE void wide_grad_tile_##S(const T *restrict dyw, i64 plane, const T *restrict src,          \
                               const i64 *restrict off, i64 npos, T *restrict dwv, i64 taps,    \
                               const int nk, const int nt) {                                    \
    V_##S acc[6][2];                                                                            \
    _Pragma("GCC unroll 6") for (int k = 0; k < nk; k++)                                        \
        _Pragma("GCC unroll 2") for (int t = 0; t < nt; t++) acc[k][t] = *(VU_##S *)(dwv + (k * taps + t) * LANES); \
    for (i64 p = 0; p < npos; p += LANES) {                                                     \
        V_##S xv[2];                                                                            \
        _Pragma("GCC unroll 2") for (int t = 0; t < nt; t++) xv[t] = *(const VU_##S *)(src + off[t] + p); \
        _Pragma("GCC unroll 6") for (int k = 0; k < nk; k++) {                                  \
            V_##S d = *(const VU_##S *)(dyw + k * plane + p);                                   \
            _Pragma("GCC unroll 2") for (int t = 0; t < nt; t++) acc[k][t] += d * xv[t];        \
        }                                                                                       \
    }                                                                                           \
    _Pragma("GCC unroll 6") for (int k = 0; k < nk; k++)                                        \
        _Pragma("GCC unroll 2") for (int t = 0; t < nt; t++) *(VU_##S *)(dwv + (k * taps + t) * LANES) = acc[k][t]; \
}                                                                                               \
                                                                                                \
/* Sample n's channels of src (N, channels, h, wd) into the zero-bordered flat rows of dst,   \
 * one `plane` per channel, the image at `front` + top*wp + left. */                           \
static void wide_fill_##S(const T *src, i64 n, i64 channels, i64 h, i64 wd, T *dst, i64 plane,  \
                          i64 front, i64 top, i64 left, i64 wp) {                               \
    for (i64 c = 0; c < channels; c++)                                                          \
        for (i64 r = 0; r < h; r++)                                                             \
            memcpy(dst + c * plane + front + (r + top) * wp + left, src + ((n * channels + c) * h + r) * wd, \
                   (size_t)wd * sizeof(T));                                                     \
}                                                                                               \
                                                                                                \
/* y (N, O, Ho, Wo) of a stride-1 convolution of x (N, C, H, W) with w (O, C, kh, kw) and     \
 * bias b (O,), over wide rows (above). Returns -1 when its scratch cannot be allocated. */     \
int direct_conv_forward_##S(const T *x, const T *w, const T *b, T *y, i64 n_all, i64 c_all,     \
                            i64 h, i64 wd, i64 o_all, i64 kh, i64 kw, i64 ho, i64 wo, i64 top,  \
                            i64 left, i64 hp, i64 wp) {                                         \
    i64 taps = c_all * kh * kw, length = (ho - 1) * wp + wo, plane = ho * wp + 2 * LANES;       \
    T *xpad = calloc((size_t)(c_all * hp * wp + 2 * LANES), sizeof(T));                         \
    T *ywide = malloc((size_t)(o_all * plane) * sizeof(T));                                     \
    T *wt = malloc((size_t)(taps * o_all) * sizeof(T));                                         \
    i64 *off = malloc((size_t)taps * sizeof(i64));                                              \
    if (!xpad || !ywide || !wt || !off) { free(xpad); free(ywide); free(wt); free(off); return -1; } \
    for (i64 t = 0; t < taps; t++) {                                                            \
        i64 c = t / (kh * kw), i = t / kw % kh, j = t % kw;                                     \
        off[t] = c * hp * wp + i * wp + j;                                                      \
        for (i64 o = 0; o < o_all; o++) wt[t * o_all + o] = w[o * taps + t];                    \
    }                                                                                           \
    for (i64 n = 0; n < n_all; n++) {                                                           \
        wide_fill_##S(x, n, c_all, h, wd, xpad, hp * wp, 0, top, left, wp);                     \
        wide_rows_##S(xpad, wt, off, taps, b, ywide, plane, o_all, length);                     \
        for (i64 o = 0; o < o_all; o++)                                                         \
            for (i64 a = 0; a < ho; a++)                                                        \
                memcpy(y + ((n * o_all + o) * ho + a) * wo, ywide + o * plane + a * wp, (size_t)wo * sizeof(T)); \
    }                                                                                           \
    free(xpad);                                                                                 \
    free(ywide);                                                                                \
    free(wt);                                                                                   \
    free(off);                                                                                  \
    return 0;                                                                                   \
}                                                                                               \
                                                                                                \
/* dw (O, C, kh, kw) += dE/dW and db (O,) += dE/db over the batch, unless NULL (x is only     \
 * read for dw); dx (N, C, H, W) = dE/dx unless NULL. Returns -1 when its scratch cannot be    \
 * allocated. */                                                                                \
int direct_conv_backward_##S(const T *x, const T *dy, const T *w, T *dw, T *db, T *dx,          \
                             i64 n_all, i64 c_all, i64 h, i64 wd, i64 o_all, i64 kh, i64 kw,    \
                             i64 ho, i64 wo, i64 top, i64 left, i64 hp, i64 wp) {               \
    i64 taps = c_all * kh * kw, length = (ho - 1) * wp + wo;                                    \
    i64 npos = (length + LANES - 1) / LANES * LANES;                                            \
    i64 front = (kh - 1) * wp + kw - 1, plane = front + hp * wp + 2 * LANES;                    \
    i64 back_taps = o_all * kh * kw, dx_plane = hp * wp + 2 * LANES;                            \
    T *xpad = calloc((size_t)(c_all * hp * wp + 2 * LANES), sizeof(T));                         \
    T *dyw = calloc((size_t)(o_all * plane), sizeof(T));                                        \
    T *dxpad = malloc((size_t)(c_all * dx_plane) * sizeof(T));                                  \
    T *wt = malloc((size_t)(back_taps * c_all) * sizeof(T));                                    \
    i64 *off = malloc((size_t)(taps + back_taps) * sizeof(i64));                                \
    T *sums = calloc((size_t)((o_all * taps + o_all) * LANES), sizeof(T)); /* dW, db by lane */ \
    if (!xpad || !dyw || !dxpad || !wt || !off || !sums) {                                      \
        free(xpad); free(dyw); free(dxpad); free(wt); free(off); free(sums);                    \
        return -1;                                                                              \
    }                                                                                           \
    T *db_sums = sums + o_all * taps * LANES;                                                   \
    i64 *back_off = off + taps;                                                                 \
    for (i64 t = 0; t < taps; t++) off[t] = t / (kh * kw) * hp * wp + t / kw % kh * wp + t % kw; \
    for (i64 t = 0; t < back_taps; t++) { /* t = (o, i, j): W[o, c, i, j] reads dE/dy[o] at -(i*wp + j) */ \
        i64 o = t / (kh * kw), i = t / kw % kh, j = t % kw;                                     \
        back_off[t] = o * plane + front - i * wp - j;                                           \
        for (i64 c = 0; c < c_all; c++) wt[t * c_all + c] = w[((o * c_all + c) * kh + i) * kw + j]; \
    }                                                                                           \
    for (i64 n = 0; n < n_all; n++) {                                                           \
        wide_fill_##S(dy, n, o_all, ho, wo, dyw, plane, front, 0, 0, wp);                       \
        for (i64 o = 0; db && o < o_all; o++) {                                                 \
            V_##S total = *(VU_##S *)(db_sums + o * LANES);                                     \
            for (i64 p = 0; p < npos; p += LANES) total += *(const VU_##S *)(dyw + o * plane + front + p); \
            *(VU_##S *)(db_sums + o * LANES) = total;                                           \
        }                                                                                       \
        if (dw) {                                                                               \
            wide_fill_##S(x, n, c_all, h, wd, xpad, hp * wp, 0, top, left, wp);                 \
            for (i64 o0 = 0; o0 < o_all; o0 += 6) {                                             \
                int nk = o_all - o0 < 6 ? (int)(o_all - o0) : 6;                                \
                const T *d = dyw + o0 * plane + front;                                          \
                T *g = sums + o0 * taps * LANES;                                                \
                for (i64 t = 0; t < taps; t += 2) {                                             \
                    int pair = taps - t >= 2;                                                   \
                    switch (nk * 2 + pair) {                                                    \
                    case 13: wide_grad_tile_##S(d, plane, xpad, off + t, npos, g + t * LANES, taps, 6, 2); break; \
                    case 12: wide_grad_tile_##S(d, plane, xpad, off + t, npos, g + t * LANES, taps, 6, 1); break; \
                    case 11: wide_grad_tile_##S(d, plane, xpad, off + t, npos, g + t * LANES, taps, 5, 2); break; \
                    case 10: wide_grad_tile_##S(d, plane, xpad, off + t, npos, g + t * LANES, taps, 5, 1); break; \
                    case 9: wide_grad_tile_##S(d, plane, xpad, off + t, npos, g + t * LANES, taps, 4, 2); break; \
                    case 8: wide_grad_tile_##S(d, plane, xpad, off + t, npos, g + t * LANES, taps, 4, 1); break; \
                    case 7: wide_grad_tile_##S(d, plane, xpad, off + t, npos, g + t * LANES, taps, 3, 2); break; \
                    case 6: wide_grad_tile_##S(d, plane, xpad, off + t, npos, g + t * LANES, taps, 3, 1); break; \
                    case 5: wide_grad_tile_##S(d, plane, xpad, off + t, npos, g + t * LANES, taps, 2, 2); break; \
                    case 4: wide_grad_tile_##S(d, plane, xpad, off + t, npos, g + t * LANES, taps, 2, 1); break; \
                    case 3: wide_grad_tile_##S(d, plane, xpad, off + t, npos, g + t * LANES, taps, 1, 2); break; \
                    default: wide_grad_tile_##S(d, plane, xpad, off + t, npos, g + t * LANES, taps, 1, 1); break; \
                    }                                                                           \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        if (dx) {                                                                               \
            wide_rows_##S(dyw, wt, back_off, back_taps, NULL, dxpad, dx_plane, c_all, hp * wp); \
            for (i64 c = 0; c < c_all; c++)                                                     \
                for (i64 r = 0; r < h; r++)                                                     \
                    memcpy(dx + ((n * c_all + c) * h + r) * wd, dxpad + c * dx_plane + (r + top) * wp + left, \
                           (size_t)wd * sizeof(T));                                             \
        }                                                                                       \
    }                                                                                           \
    for (i64 k = 0; k < o_all * taps + o_all; k++) { /* the lanes' sums, once */               \
        T total = 0;                                                                            \
        for (int l = 0; l < LANES; l++) total += sums[k * LANES + l];                           \
        if (k < o_all * taps) {                                                                 \
            if (dw) dw[k] += total;                                                             \
        } else if (db) {                                                                        \
            db[k - o_all * taps] += total;                                                      \
        }                                                                                       \
    }                                                                                           \
    free(xpad);                                                                                 \
    free(dyw);                                                                                  \
    free(dxpad);                                                                                \
    free(wt);                                                                                   \
    free(off);                                                                                  \
    free(sums);                                                                                 \
    return 0;                                                                                   \
}

DEFINE_DIRECT(float, f32, (VBYTES / 4))
DEFINE_DIRECT(double, f64, (VBYTES / 8))

/* ---- A caching allocator for NumPy's large arrays (gradlearn.allocator) ----
 *
 * Every training step allocates the same arrays (layer outputs, gradients) and frees them.
 * Through malloc, a large one is fresh memory from the kernel each time: 4 kB pages
 * zeroed and mapped on first touch, 1500 page faults and 15 ms of system time per
 * ResNet-20 step (batch 64). Here a freed block of at least CACHE_MIN_BYTES is kept, in a
 * bin of blocks of its exact (page-rounded) size, for the next array of that size: a step
 * then reuses the last step's blocks. At most CACHE_PER_BIN blocks a size and
 * cache_limit bytes in all are kept; the rest go back to free(). A size that no large
 * allocation or free has used for CACHE_MAX_AGE large allocations (a network trained
 * before, a data set's one-off conversion, an evaluation's batches) goes back to free()
 * too: without that, the main job's peak resident memory was 800 MB against 584 MB
 * without the cache, most of it blocks no later array had the size of. NumPy calls these
 * through its NEP 49 handler (PyDataMem_Handler, version 1), which gradlearn.allocator
 * installs; each block starts with a 64-byte header holding its size, so realloc() knows
 * it. Thread-safe (one mutex, taken only for large blocks); reset in a forked child. */

#define CACHE_MIN_BYTES ((size_t)256 * 1024)
#define CACHE_BINS 64
#define CACHE_PER_BIN 16
#define CACHE_MAX_AGE 1024 /* large allocations: ResNet-20's step (batch 64) makes 136, LeNet-5's 11 */
#define BLOCK_HEADER ((size_t)64)

typedef struct {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t new_size);
    void (*free)(void *ctx, void *ptr, size_t size);
} numpy_allocator_t; /* NumPy's PyDataMemAllocator */

typedef struct {
    char name[127];
    uint8_t version;
    numpy_allocator_t allocator;
} numpy_handler_t; /* NumPy's PyDataMem_Handler */

typedef struct {
    size_t size; /* bytes of each block in the bin, header included; 0: unused bin */
    int count;
    i64 last_used; /* cache_clock when a block of this size was last taken or kept */
    void *blocks[CACHE_PER_BIN];
} cache_bin_t;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static cache_bin_t cache_bins[CACHE_BINS];
static size_t cache_bytes;                       /* held in the bins (under cache_lock) */
static size_t cache_limit = (size_t)512 << 20;   /* set_cache_limit */
static i64 cache_clock;                          /* large allocations so far (under cache_lock) */
static _Atomic i64 cache_hits, cache_misses;

static size_t block_bytes(size_t payload) { /* 0: too large to add a header to */
    if (payload > SIZE_MAX - BLOCK_HEADER - 4096) return 0;
    size_t total = payload + BLOCK_HEADER;
    return payload >= CACHE_MIN_BYTES ? (total + 4095) & ~(size_t)4095 : total;
}

static void *block_payload(void *block, size_t total) {
    *(size_t *)block = total;
    return (char *)block + BLOCK_HEADER;
}

static void cache_free_bin(cache_bin_t *bin) { /* under cache_lock */
    while (bin->count > 0) {
        free(bin->blocks[--bin->count]);
        cache_bytes -= bin->size;
    }
}

static void *cache_take(size_t total) { /* a cached block of exactly total bytes, or NULL */
    void *block = NULL;
    pthread_mutex_lock(&cache_lock);
    cache_clock++;
    for (int i = 0; i < CACHE_BINS; i++) {
        cache_bin_t *bin = &cache_bins[i];
        if (bin->size == total && bin->count > 0 && !block) {
            block = bin->blocks[--bin->count];
            cache_bytes -= total;
            bin->last_used = cache_clock;
        } else if (bin->count > 0 && cache_clock - bin->last_used > CACHE_MAX_AGE) {
            cache_free_bin(bin); /* a size nothing has used for a while */
        }
    }
    pthread_mutex_unlock(&cache_lock);
    atomic_fetch_add(block ? &cache_hits : &cache_misses, 1);
    return block;
}

static int cache_keep(void *block, size_t total) { /* 1 when the cache took the block */
    int kept = 0;
    pthread_mutex_lock(&cache_lock);
    if (cache_bytes + total <= cache_limit) {
        cache_bin_t *bin = NULL;
        for (int i = 0; i < CACHE_BINS && !bin; i++)
            if (cache_bins[i].size == total) bin = &cache_bins[i];
        for (int i = 0; i < CACHE_BINS && !bin; i++)
            if (cache_bins[i].count == 0) bin = &cache_bins[i]; /* an empty bin takes the new size */
        if (bin && bin->count < CACHE_PER_BIN) {
            bin->size = total;
            bin->last_used = cache_clock;
            bin->blocks[bin->count++] = block;
            cache_bytes += total;
            kept = 1;
        }
    }
    pthread_mutex_unlock(&cache_lock);
    return kept;
}

static void *cache_malloc(void *ctx, size_t size) {
    (void)ctx;
    size_t total = block_bytes(size);
    if (!total) return NULL;
    void *block = total >= CACHE_MIN_BYTES ? cache_take(total) : NULL;
    if (!block && !(block = malloc(total))) return NULL;
    return block_payload(block, total);
}

static void *cache_calloc(void *ctx, size_t nelem, size_t elsize) {
    (void)ctx;
    if (elsize && nelem > SIZE_MAX / elsize) return NULL;
    size_t size = nelem * elsize, total = block_bytes(size);
    if (!total) return NULL;
    void *block = total >= CACHE_MIN_BYTES ? cache_take(total) : NULL;
    if (block) {
        memset((char *)block + BLOCK_HEADER, 0, size);
        return block_payload(block, total);
    }
    if (!(block = calloc(1, total))) return NULL; /* fresh pages come zeroed from the kernel */
    return block_payload(block, total);
}

static void cache_free(void *ctx, void *ptr, size_t size) {
    (void)ctx;
    (void)size;
    if (!ptr) return;
    void *block = (char *)ptr - BLOCK_HEADER;
    size_t total = *(size_t *)block;
    if (total >= CACHE_MIN_BYTES && cache_keep(block, total)) return;
    free(block);
}

static void *cache_realloc(void *ctx, void *ptr, size_t new_size) {
    if (!ptr) return cache_malloc(ctx, new_size);
    size_t old_payload = *(size_t *)((char *)ptr - BLOCK_HEADER) - BLOCK_HEADER;
    void *fresh = cache_malloc(ctx, new_size);
    if (!fresh) return NULL; /* as realloc: the old block stays valid */
    memcpy(fresh, ptr, old_payload < new_size ? old_payload : new_size);
    cache_free(ctx, ptr, old_payload);
    return fresh;
}

static numpy_handler_t cache_handler = {
    "gradlearn_cache", 1, {NULL, cache_malloc, cache_calloc, cache_realloc, cache_free}};

static void cache_after_fork_in_child(void) { pthread_mutex_init(&cache_lock, NULL); }

/* install_numpy_allocator(api): NumPy's _ARRAY_API capsule -> the handler that was set
 * before. Sets gradlearn's as the handler of the calling thread's context through the
 * C-API table's PyDataMem_SetHandler (slot 304 since NumPy 1.22, fixed by NumPy's ABI). */
static PyObject *install_numpy_allocator(PyObject *self, PyObject *api_capsule) {
    (void)self;
    static int fork_handler;
    void **api = PyCapsule_GetPointer(api_capsule, NULL);
    if (!api) return NULL;
    if (!fork_handler) fork_handler = pthread_atfork(NULL, NULL, cache_after_fork_in_child) == 0;
    PyObject *handler = PyCapsule_New(&cache_handler, "mem_handler", NULL);
    if (!handler) return NULL;
    PyObject *(*set_handler)(PyObject *) = (PyObject * (*)(PyObject *)) api[304];
    PyObject *previous = set_handler(handler);
    Py_DECREF(handler);
    return previous;
}

/* allocator_stats() -> (hits, misses, bytes cached, blocks cached) */
static PyObject *allocator_stats(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    pthread_mutex_lock(&cache_lock);
    size_t bytes = cache_bytes;
    long blocks = 0;
    for (int i = 0; i < CACHE_BINS; i++) blocks += cache_bins[i].count;
    pthread_mutex_unlock(&cache_lock);
    return Py_BuildValue("(LLnl)", (long long)atomic_load(&cache_hits), (long long)atomic_load(&cache_misses),
                         (Py_ssize_t)bytes, blocks);
}

/* set_cache_limit(bytes): keep at most that much; blocks over it go back to free() now. */
static PyObject *set_cache_limit(PyObject *self, PyObject *arg) {
    (void)self;
    Py_ssize_t limit = PyLong_AsSsize_t(arg);
    if (limit < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "set_cache_limit: expected bytes >= 0");
        return NULL;
    }
    pthread_mutex_lock(&cache_lock);
    cache_limit = (size_t)limit;
    for (int i = 0; i < CACHE_BINS; i++)
        while (cache_bytes > cache_limit && cache_bins[i].count > 0) {
            free(cache_bins[i].blocks[--cache_bins[i].count]);
            cache_bytes -= cache_bins[i].size;
        }
    pthread_mutex_unlock(&cache_lock);
    Py_RETURN_NONE;
}

/* The module Python imports: setuptools builds and installs this file like any extension,
 * and gradlearn.compiled loads the same file with ctypes to call the kernels. Its one
 * function gives an array's address for those calls: NumPy's a.ctypes.data took 3 us an
 * array on the machine we measured (a ResNet-20 step passes about 900 arrays). */
static PyObject *address(PyObject *self, PyObject *array) {
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(array, &view, PyBUF_SIMPLE) != 0) return NULL; /* only C-contiguous buffers */
    PyObject *result = PyLong_FromVoidPtr(view.buf);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"address", address, METH_O, "address(array) -> int: where a C-contiguous array's data starts."},
    {"install_numpy_allocator", install_numpy_allocator, METH_O, "install_numpy_allocator(api) -> previous handler (see gradlearn.allocator)."},
    {"allocator_stats", allocator_stats, METH_NOARGS, "allocator_stats() -> (hits, misses, bytes cached, blocks cached)."},
    {"set_cache_limit", set_cache_limit, METH_O, "set_cache_limit(bytes): the most the allocator keeps cached."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", "gradlearn's compiled CPU kernels (called through ctypes).", -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) {
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "CACHE_MAX_AGE", CACHE_MAX_AGE) < 0) Py_CLEAR(m);
    return m;
}
