/* The compiled CPU kernels behind gradlearn.compiled (see that module for what each
 * computes, why, and what it measured). Plain C on contiguous arrays, called through
 * ctypes, which releases the GIL; every kernel exists for float (_f32) and double (_f64).
 * Built at install as an optional extension: without a C compiler gradlearn runs its
 * NumPy paths. Only IEEE arithmetic (no -ffast-math): NaN and infinity behave as in
 * NumPy; the sums of dot products are vectorised through OpenMP SIMD reductions. */

#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int64_t i64;

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
/* y (N, O, Ho, Wo) of a stride-1 convolution of x (N, C, H, W) with w (O, C, kh, kw) and     \
 * bias b (O,): each sample padded into flat rows (hp x wp), every tap one contiguous          \
 * multiply-add over the "wide" output rows (width wp), whose columns >= Wo are dropped. */     \
int direct_conv_forward_##S(const T *x, const T *w, const T *b, T *y, i64 n_all, i64 c_all,     \
                            i64 h, i64 wd, i64 o_all, i64 kh, i64 kw, i64 ho, i64 wo, i64 top,  \
                            i64 left, i64 hp, i64 wp) {                                         \
    i64 length = (ho - 1) * wp + wo;                                                            \
    T *xpad = calloc((size_t)(c_all * hp * wp), sizeof(T));                                     \
    T *acc = malloc((size_t)(o_all * ho * wp) * sizeof(T));                                     \
    if (!xpad || !acc) { free(xpad); free(acc); return -1; }                                    \
    for (i64 n = 0; n < n_all; n++) {                                                           \
        for (i64 c = 0; c < c_all; c++)                                                         \
            for (i64 r = 0; r < h; r++)                                                         \
                memcpy(xpad + c * hp * wp + (r + top) * wp + left, x + ((n * c_all + c) * h + r) * wd, \
                       (size_t)wd * sizeof(T));                                                 \
        for (i64 o = 0; o < o_all; o++)                                                         \
            for (i64 p = 0; p < length; p++) acc[o * ho * wp + p] = b[o];                       \
        for (i64 c = 0; c < c_all; c++)                                                         \
            for (i64 i = 0; i < kh; i++)                                                        \
                for (i64 j = 0; j < kw; j++) {                                                  \
                    const T *restrict taps = xpad + c * hp * wp + i * wp + j;                   \
                    for (i64 o = 0; o < o_all; o++) {                                           \
                        T weight = w[((o * c_all + c) * kh + i) * kw + j];                      \
                        T *restrict a = acc + o * ho * wp;                                      \
                        for (i64 p = 0; p < length; p++) a[p] += weight * taps[p];              \
                    }                                                                           \
                }                                                                               \
        for (i64 o = 0; o < o_all; o++)                                                         \
            for (i64 a = 0; a < ho; a++)                                                        \
                memcpy(y + ((n * o_all + o) * ho + a) * wo, acc + o * ho * wp + a * wp, (size_t)wo * sizeof(T)); \
    }                                                                                           \
    free(xpad);                                                                                 \
    free(acc);                                                                                  \
    return 0;                                                                                   \
}                                                                                               \
                                                                                                \
/* dw (O, C, kh, kw) += dE/dW, db (O,) += dE/db over the batch; dx (N, C, H, W) = dE/dx      \
 * unless it is NULL. The same taps read the other way: dE/dW is a dot product of a wide    \
 * dE/dy row (zeros in its columns >= Wo) with a tap's row, dE/dx a multiply-add into the   \
 * padded rows. With x, dw and db NULL it computes dE/dx alone. */                             \
int direct_conv_backward_##S(const T *x, const T *dy, const T *w, T *dw, T *db, T *dx,          \
                             i64 n_all, i64 c_all, i64 h, i64 wd, i64 o_all, i64 kh, i64 kw,    \
                             i64 ho, i64 wo, i64 top, i64 left, i64 hp, i64 wp) {               \
    i64 length = (ho - 1) * wp + wo;                                                            \
    T *xpad = calloc((size_t)(c_all * hp * wp), sizeof(T));                                     \
    T *dy_wide = calloc((size_t)(o_all * ho * wp), sizeof(T));                                  \
    T *dxpad = malloc((size_t)(c_all * hp * wp) * sizeof(T));                                   \
    if (!xpad || !dy_wide || !dxpad) { free(xpad); free(dy_wide); free(dxpad); return -1; }     \
    for (i64 n = 0; n < n_all; n++) {                                                           \
        for (i64 c = 0; x && c < c_all; c++)                                                    \
            for (i64 r = 0; r < h; r++)                                                         \
                memcpy(xpad + c * hp * wp + (r + top) * wp + left, x + ((n * c_all + c) * h + r) * wd, \
                       (size_t)wd * sizeof(T));                                                 \
        for (i64 o = 0; o < o_all; o++) {                                                       \
            T total = 0;                                                                        \
            for (i64 a = 0; a < ho; a++) {                                                      \
                const T *src = dy + ((n * o_all + o) * ho + a) * wo;                            \
                memcpy(dy_wide + o * ho * wp + a * wp, src, (size_t)wo * sizeof(T));            \
                for (i64 q = 0; q < wo; q++) total += src[q];                                   \
            }                                                                                   \
            if (db) db[o] += total;                                                             \
        }                                                                                       \
        for (i64 o = 0; dw && o < o_all; o++) {                                                 \
            const T *restrict d = dy_wide + o * ho * wp;                                        \
            for (i64 c = 0; c < c_all; c++)                                                     \
                for (i64 i = 0; i < kh; i++)                                                    \
                    for (i64 j = 0; j < kw; j++) {                                              \
                        const T *restrict taps = xpad + c * hp * wp + i * wp + j;               \
                        T s = 0;                                                                \
                        _Pragma("omp simd reduction(+:s)")                                      \
                        for (i64 p = 0; p < length; p++) s += d[p] * taps[p];                   \
                        dw[((o * c_all + c) * kh + i) * kw + j] += s;                           \
                    }                                                                           \
        }                                                                                       \
        if (dx) {                                                                               \
            memset(dxpad, 0, (size_t)(c_all * hp * wp) * sizeof(T));                            \
            for (i64 c = 0; c < c_all; c++)                                                     \
                for (i64 i = 0; i < kh; i++)                                                    \
                    for (i64 j = 0; j < kw; j++) {                                              \
                        T *restrict target = dxpad + c * hp * wp + i * wp + j;                  \
                        for (i64 o = 0; o < o_all; o++) {                                       \
                            T weight = w[((o * c_all + c) * kh + i) * kw + j];                  \
                            const T *restrict d = dy_wide + o * ho * wp;                        \
                            for (i64 p = 0; p < length; p++) target[p] += weight * d[p];        \
                        }                                                                       \
                    }                                                                           \
            for (i64 c = 0; c < c_all; c++)                                                     \
                for (i64 r = 0; r < h; r++)                                                     \
                    memcpy(dx + ((n * c_all + c) * h + r) * wd, dxpad + c * hp * wp + (r + top) * wp + left, \
                           (size_t)wd * sizeof(T));                                             \
        }                                                                                       \
    }                                                                                           \
    free(xpad);                                                                                 \
    free(dy_wide);                                                                              \
    free(dxpad);                                                                                \
    return 0;                                                                                   \
}                                                                                               \
                                                                                                \
/* 2x2 tiles, channels-last: x (N, h, wd, C) -> y, first (N, ho, wo, C); the inner loop runs \
 * over the contiguous channels, so it is vectorised. (In C order a tile's four values are  \
 * two stride-2 pairs, and the same loop ran scalar, slower than NumPy's separable path.) */ \
void max_pool_2x2_channels_last_##S(const T *x, T *y, uint8_t *first, i64 n_all, i64 h, i64 wd, \
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
void max_pool_2x2_channels_last_grad_##S(const T *dy, const uint8_t *first, T *dx, i64 n_all, \
                                         i64 h, i64 wd, i64 c_all, i64 ho, i64 wo) {            \
    for (i64 n = 0; n < n_all; n++)                                                             \
        for (i64 a = 0; a < ho; a++)                                                            \
            for (i64 b = 0; b < wo; b++) {                                                      \
                T *d0 = dx + ((n * h + 2 * a) * wd + 2 * b) * c_all, *d1 = d0 + c_all;          \
                T *d2 = d0 + wd * c_all, *d3 = d2 + c_all;                                      \
                const T *g = dy + ((n * ho + a) * wo + b) * c_all;                              \
                const uint8_t *k = first + ((n * ho + a) * wo + b) * c_all;                     \
                for (i64 c = 0; c < c_all; c++) {                                               \
                    d0[c] = k[c] == 0 ? g[c] : 0;                                               \
                    d1[c] = k[c] == 1 ? g[c] : 0;                                               \
                    d2[c] = k[c] == 2 ? g[c] : 0;                                               \
                    d3[c] = k[c] == 3 ? g[c] : 0;                                               \
                }                                                                               \
            }                                                                                   \
}                                                                                               \
                                                                                                \
/* y = max(x, 0), a NaN staying NaN; dx = dy where y > 0, else 0. */                          \
void relu_##S(const T *restrict x, T *restrict y, i64 size) {                                  \
    for (i64 i = 0; i < size; i++) y[i] = !(x[i] <= 0) ? x[i] : 0;                              \
}                                                                                               \
                                                                                                \
void relu_grad_##S(const T *restrict dy, const T *restrict y, T *restrict dx, i64 size) {      \
    for (i64 i = 0; i < size; i++) dx[i] = y[i] > 0 ? dy[i] : 0;                                \
}                                                                                               \
                                                                                                \
/* BatchNorm on (rows, C) arrays (channels-last), channels innermost; sums in double. */      \
void bn_centre_##S(const T *restrict x, const T *restrict mean, T *restrict centred,           \
                   double *restrict sum_squares, i64 rows, i64 c_all) {                         \
    for (i64 r = 0; r < rows; r++)                                                              \
        for (i64 c = 0; c < c_all; c++) {                                                       \
            T d = x[r * c_all + c] - mean[c];                                                   \
            centred[r * c_all + c] = d;                                                         \
            sum_squares[c] += (double)(d * d);                                                  \
        }                                                                                       \
}                                                                                               \
                                                                                                \
void bn_scale_shift_##S(const T *restrict source, const T *restrict scale, const T *restrict shift, \
                        T *restrict out, i64 rows, i64 c_all) {                                 \
    for (i64 r = 0; r < rows; r++)                                                              \
        for (i64 c = 0; c < c_all; c++) out[r * c_all + c] = source[r * c_all + c] * scale[c] + shift[c]; \
}                                                                                               \
                                                                                                \
void bn_grad_sums_##S(const T *restrict dy, const T *restrict source, double *restrict sum_dy,  \
                      double *restrict sum_dy_source, i64 rows, i64 c_all) {                    \
    for (i64 r = 0; r < rows; r++)                                                              \
        for (i64 c = 0; c < c_all; c++) {                                                       \
            T g = dy[r * c_all + c];                                                            \
            sum_dy[c] += (double)g;                                                             \
            sum_dy_source[c] += (double)(g * source[r * c_all + c]);                            \
        }                                                                                       \
}                                                                                               \
                                                                                                \
void bn_input_grad_##S(const T *restrict dy, const T *restrict centred, const T *restrict scale, \
                       const T *restrict k_const, const T *restrict k_centred, T *restrict dx,  \
                       i64 rows, i64 c_all) {                                                   \
    for (i64 r = 0; r < rows; r++)                                                              \
        for (i64 c = 0; c < c_all; c++)                                                         \
            dx[r * c_all + c] = dy[r * c_all + c] * scale[c] - k_const[c] - centred[r * c_all + c] * k_centred[c]; \
}

DEFINE_KERNELS(float, f32)
DEFINE_KERNELS(double, f64)

/* Register-blocked direct convolution on channels-last (pixel-major) arrays, for Conv2d's
 * pixel-major path (gradlearn.compiled says what it measured). One vector V holds LANES
 * consecutive output channels (64 bytes: 16 floats or 8 doubles; GCC's vector extension,
 * which compiles to AVX-512, or to two or four narrower registers elsewhere). A tile keeps
 * up to 8 x 2 vectors of sums in registers over every tap and input channel, so each
 * weight vector loaded serves 8 output pixels (forward) and each dE/dy vector 8 input
 * channels (weight gradient); each value of x broadcast serves 2 vectors of output channels
 * when their count is a multiple of 2 vectors (1.3-1.7x faster for 32 and 64 channels). When the kernel is not dilated along the width, its kw taps of one
 * row are kw*C consecutive values of x and of w, and are summed as one run of "channels". */
#define INLINE static inline __attribute__((always_inline))
#define DEFINE_CONV_CL(T, S, LANES)                                                             \
typedef T V_##S __attribute__((vector_size(64)));                                               \
typedef T VU_##S __attribute__((vector_size(64), aligned(sizeof(T))));                          \
                                                                                                \
/* pb pixels of an output row (x advancing by step values per pixel) x LANES channels:      \
 * y[p] = bias + sum_{i, j, c} x0[i*row + j*col + p*step + c] * w[((i*kwr + j)*cr + c)*q].  */ \
INLINE void conv_cl_tile_##S(const T *restrict x0, const T *restrict w, const T *restrict bias, \
                             T *restrict y, i64 cr, i64 q, i64 kh, i64 kwr, i64 step, i64 row,  \
                             i64 col, const int pb, const int nv) {                             \
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
        _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++) *(VU_##S *)(y + p * q + v * LANES) = acc[p][v]; \
}                                                                                               \
                                                                                                \
/* One output row, in tiles of 8 pixels (then 4, 2, 1) x nv vectors of channels. */           \
INLINE void conv_cl_row_##S(const T *xr, const T *w, const T *bias, T *yr, i64 cr, i64 q, i64 kh, \
                            i64 kwr, i64 step, i64 row, i64 col, i64 wo, const int nv) {         \
    for (i64 o = 0; o < q; o += LANES * nv) {                                                   \
        const T *bo = bias ? bias + o : NULL;                                                   \
        i64 b = 0;                                                                              \
        for (; b + 8 <= wo; b += 8)                                                             \
            conv_cl_tile_##S(xr + b * step, w + o, bo, yr + b * q + o, cr, q, kh, kwr, step, row, col, 8, nv); \
        if (b + 4 <= wo) {                                                                      \
            conv_cl_tile_##S(xr + b * step, w + o, bo, yr + b * q + o, cr, q, kh, kwr, step, row, col, 4, nv); \
            b += 4;                                                                             \
        }                                                                                       \
        if (b + 2 <= wo) {                                                                      \
            conv_cl_tile_##S(xr + b * step, w + o, bo, yr + b * q + o, cr, q, kh, kwr, step, row, col, 2, nv); \
            b += 2;                                                                             \
        }                                                                                       \
        if (b < wo)                                                                             \
            conv_cl_tile_##S(xr + b * step, w + o, bo, yr + b * q + o, cr, q, kh, kwr, step, row, col, 1, nv); \
    }                                                                                           \
}                                                                                               \
                                                                                                \
/* y (N, ho, wo, q) = correlation of the padded x (N, hp, wp, c) with w (kh, kw, c, q), plus \
 * bias (q,) unless NULL; stride (sh, sw), dilation (dil_h, dil_w); q % LANES == 0. */       \
void conv_cl_forward_##S(const T *x, const T *w, const T *bias, T *y, i64 n_all, i64 hp, i64 wp, \
                         i64 c, i64 q, i64 kh, i64 kw, i64 ho, i64 wo, i64 sh, i64 sw,          \
                         i64 dil_h, i64 dil_w) {                                                \
    i64 cr = dil_w == 1 ? kw * c : c, kwr = dil_w == 1 ? 1 : kw;                                \
    i64 step = sw * c, row = dil_h * wp * c, col = dil_w * c;                                   \
    for (i64 n = 0; n < n_all; n++)                                                             \
        for (i64 a = 0; a < ho; a++) {                                                          \
            const T *xr = x + (n * hp + a * sh) * wp * c;                                       \
            T *yr = y + (n * ho + a) * wo * q;                                                  \
            if (q % (2 * LANES) == 0)                                                           \
                conv_cl_row_##S(xr, w, bias, yr, cr, q, kh, kwr, step, row, col, wo, 2);         \
            else                                                                                \
                conv_cl_row_##S(xr, w, bias, yr, cr, q, kh, kwr, step, row, col, wo, 1);         \
        }                                                                                       \
}                                                                                               \
                                                                                                \
/* cb channels of one tap x LANES output channels, summed over rows x wo output pixels:    \
 * dw[k] += sum_{a, b} x0[a*row + b*step + k] * dy[(a*wo + b)*q]. */                          \
INLINE void conv_cl_grad_tile_##S(const T *restrict x0, const T *restrict dy, T *restrict dw, \
                                  i64 q, i64 rows, i64 wo, i64 step, i64 row, const int cb,     \
                                  const int nv) {                                               \
    V_##S acc[8][2];                                                                            \
    _Pragma("GCC unroll 8") for (int k = 0; k < cb; k++)                                        \
        _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++) acc[k][v] = *(VU_##S *)(dw + k * q + v * LANES); \
    for (i64 a = 0; a < rows; a++) {                                                            \
        const T *xs = x0 + a * row;                                                             \
        const T *ds = dy + a * wo * q;                                                          \
        for (i64 b = 0; b < wo; b++) {                                                          \
            V_##S dv[2];                                                                        \
            _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++) dv[v] = *(const VU_##S *)(ds + b * q + v * LANES); \
            _Pragma("GCC unroll 8") for (int k = 0; k < cb; k++) {                              \
                T xv = xs[b * step + k];                                                        \
                _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++) acc[k][v] += xv * dv[v];   \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
    _Pragma("GCC unroll 8") for (int k = 0; k < cb; k++)                                        \
        _Pragma("GCC unroll 2") for (int v = 0; v < nv; v++) *(VU_##S *)(dw + k * q + v * LANES) = acc[k][v]; \
}                                                                                               \
                                                                                                \
/* One tap row's cr (tap, channel) rows x all q output channels, in tiles of 8 rows (then    \
 * 4, 2, 1) x nv vectors. */                                                                    \
INLINE void conv_cl_grad_rows_##S(const T *xt, const T *da, T *dt, i64 cr, i64 q, i64 rows,    \
                                  i64 wo, i64 step, i64 row, const int nv) {                    \
    for (i64 o = 0; o < q; o += LANES * nv) {                                                   \
        i64 k = 0;                                                                              \
        for (; k + 8 <= cr; k += 8)                                                             \
            conv_cl_grad_tile_##S(xt + k, da + o, dt + k * q + o, q, rows, wo, step, row, 8, nv); \
        if (k + 4 <= cr) {                                                                      \
            conv_cl_grad_tile_##S(xt + k, da + o, dt + k * q + o, q, rows, wo, step, row, 4, nv); \
            k += 4;                                                                             \
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
/* dw (kh, kw, c, q) += dE/dW of the forward above, from x (N, hp, wp, c) padded and dy      \
 * (N, ho, wo, q); q % LANES == 0. Bands of about 32 output pixels, whose x and dE/dy rows   \
 * stay in L1 while every tap reads them. */                                                    \
void conv_cl_weight_grad_##S(const T *x, const T *dy, T *dw, i64 n_all, i64 hp, i64 wp, i64 c,   \
                             i64 q, i64 kh, i64 kw, i64 ho, i64 wo, i64 sh, i64 sw, i64 dil_h,  \
                             i64 dil_w) {                                                       \
    i64 cr = dil_w == 1 ? kw * c : c, kwr = dil_w == 1 ? 1 : kw;                                \
    i64 step = sw * c, row = sh * wp * c, band = wo >= 32 ? 1 : 32 / wo;                        \
    for (i64 n = 0; n < n_all; n++)                                                             \
        for (i64 a = 0; a < ho; a += band) {                                                    \
            i64 rows = ho - a < band ? ho - a : band;                                           \
            const T *xa = x + (n * hp + a * sh) * wp * c;                                       \
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
}

DEFINE_CONV_CL(float, f32, 16)
DEFINE_CONV_CL(double, f64, 8)

/* An importable (empty) module, so that setuptools builds and installs this file like any
 * extension; gradlearn.compiled loads the same file with ctypes to call the kernels. */
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", "gradlearn's compiled CPU kernels (called through ctypes).", -1, NULL};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
