/* Dense matrix-vector products for the fused fastest-k SGD kernel (sgd_kernels.pyx), and
 * the row average of the batched aggregation kernel.
 *
 * One worker's partial gradient is two products with its s x d row-major block X_i:
 *
 *     r = X_i w - y_i            (least squares; sigmoid(X_i w) - y_i for logistic)
 *     g += X_i^T r
 *
 * At the sizes of the model (s = 40, d = 100) BLAS dgemv spends much of each call on
 * dispatch, and its X^T r pass re-reads g for every column block.  Here:
 *
 *   - X w takes four rows at a time, so each load of w serves four dot products, with
 *     vector accumulators reduced once per row group;
 *   - X^T r keeps a 32-column slice of g in registers while it runs down the rows, so g is
 *     loaded and stored once per slice instead of once per row.
 *
 * The code uses GCC/Clang vector types (4 doubles); on x86-64 Linux with GCC the entry
 * points are cloned for x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and the baseline, and
 * the loader picks the clone for the CPU it runs on, so one build runs everywhere.  Sums
 * are associated differently from a sequential loop or BLAS: results agree with a numpy
 * loop to rounding (tested to 1e-10 relative).
 */
#ifndef DISTALLOC_FASTK_GRADIENT_H
#define DISTALLOC_FASTK_GRADIENT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifndef FASTK_CLONES   /* predefine it empty to build for one target (-march=...) */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FASTK_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTK_CLONES
#endif
#endif
#define FASTK_INLINE static inline __attribute__((always_inline))

typedef double fastk_vec __attribute__((vector_size(32), aligned(8)));   /* unaligned OK */
#define FASTK_LOAD(p) (*(const fastk_vec *)(p))
#define FASTK_STORE(p, v) (*(fastk_vec *)(p) = (v))

FASTK_INLINE double fastk_hsum(fastk_vec a)
{
    return (a[0] + a[2]) + (a[1] + a[3]);
}

/* z[0:rows] = A w for row-major A (rows x d). */
FASTK_INLINE void fastk_matvec_body(const double *restrict A, ptrdiff_t rows, ptrdiff_t d,
                                    const double *restrict w, double *restrict z)
{
    ptrdiff_t j = 0, c;
    for (; j + 4 <= rows; j += 4) {
        const double *x0 = A + j * d, *x1 = x0 + d, *x2 = x1 + d, *x3 = x2 + d;
        fastk_vec a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (c = 0; c + 4 <= d; c += 4) {
            fastk_vec wc = FASTK_LOAD(w + c);
            a0 += FASTK_LOAD(x0 + c) * wc;
            a1 += FASTK_LOAD(x1 + c) * wc;
            a2 += FASTK_LOAD(x2 + c) * wc;
            a3 += FASTK_LOAD(x3 + c) * wc;
        }
        double z0 = fastk_hsum(a0), z1 = fastk_hsum(a1), z2 = fastk_hsum(a2), z3 = fastk_hsum(a3);
        for (; c < d; c++) {
            double wc = w[c];
            z0 += x0[c] * wc;
            z1 += x1[c] * wc;
            z2 += x2[c] * wc;
            z3 += x3[c] * wc;
        }
        z[j] = z0;
        z[j + 1] = z1;
        z[j + 2] = z2;
        z[j + 3] = z3;
    }
    for (; j < rows; j++) {
        const double *x0 = A + j * d;
        fastk_vec a0 = {0};
        for (c = 0; c + 4 <= d; c += 4)
            a0 += FASTK_LOAD(x0 + c) * FASTK_LOAD(w + c);
        double z0 = fastk_hsum(a0);
        for (; c < d; c++)
            z0 += x0[c] * w[c];
        z[j] = z0;
    }
}

/* g[0:d] += A^T r for row-major A (rows x d). */
FASTK_INLINE void fastk_matTvec_add_body(const double *restrict A, ptrdiff_t rows, ptrdiff_t d,
                                         const double *restrict r, double *restrict g)
{
    ptrdiff_t c0 = 0, j;
    for (; c0 + 32 <= d; c0 += 32) {
        fastk_vec g0 = FASTK_LOAD(g + c0), g1 = FASTK_LOAD(g + c0 + 4);
        fastk_vec g2 = FASTK_LOAD(g + c0 + 8), g3 = FASTK_LOAD(g + c0 + 12);
        fastk_vec g4 = FASTK_LOAD(g + c0 + 16), g5 = FASTK_LOAD(g + c0 + 20);
        fastk_vec g6 = FASTK_LOAD(g + c0 + 24), g7 = FASTK_LOAD(g + c0 + 28);
        for (j = 0; j < rows; j++) {
            const double *x = A + j * d + c0;
            fastk_vec rj = {r[j], r[j], r[j], r[j]};
            g0 += rj * FASTK_LOAD(x);
            g1 += rj * FASTK_LOAD(x + 4);
            g2 += rj * FASTK_LOAD(x + 8);
            g3 += rj * FASTK_LOAD(x + 12);
            g4 += rj * FASTK_LOAD(x + 16);
            g5 += rj * FASTK_LOAD(x + 20);
            g6 += rj * FASTK_LOAD(x + 24);
            g7 += rj * FASTK_LOAD(x + 28);
        }
        FASTK_STORE(g + c0, g0);
        FASTK_STORE(g + c0 + 4, g1);
        FASTK_STORE(g + c0 + 8, g2);
        FASTK_STORE(g + c0 + 12, g3);
        FASTK_STORE(g + c0 + 16, g4);
        FASTK_STORE(g + c0 + 20, g5);
        FASTK_STORE(g + c0 + 24, g6);
        FASTK_STORE(g + c0 + 28, g7);
    }
    for (; c0 + 4 <= d; c0 += 4) {
        fastk_vec g0 = FASTK_LOAD(g + c0);
        for (j = 0; j < rows; j++) {
            fastk_vec rj = {r[j], r[j], r[j], r[j]};
            g0 += rj * FASTK_LOAD(A + j * d + c0);
        }
        FASTK_STORE(g + c0, g0);
    }
    for (; c0 < d; c0++) {
        double g0 = g[c0];
        for (j = 0; j < rows; j++)
            g0 += r[j] * A[j * d + c0];
        g[c0] = g0;
    }
}

/* z = A w (row-major A, rows x d). */
FASTK_CLONES
static void fastk_matvec(const double *A, ptrdiff_t rows, ptrdiff_t d, const double *w, double *z)
{
    fastk_matvec_body(A, rows, d, w, z);
}

/* One worker's partial gradient: g += X^T r with r = X w - y (problem 0, least squares) or
 * sigmoid(X w) - y (problem 1, logistic), X its s x d row-major block; r is s scratch. */
FASTK_CLONES
static void fastk_partial_gradient(const double *X, const double *y, ptrdiff_t s, ptrdiff_t d,
                                   int problem, const double *w, double *r, double *g)
{
    ptrdiff_t j;
    fastk_matvec_body(X, s, d, w, r);
    for (j = 0; j < s; j++) {
        double z = r[j];
        if (problem == 0)
            r[j] = z - y[j];
        else if (z >= 0)
            r[j] = 1.0 / (1.0 + exp(-z)) - y[j];
        else
            r[j] = exp(z) / (1.0 + exp(z)) - y[j];
    }
    fastk_matTvec_add_body(X, s, d, r, g);
}

/* out[0:d] = mean of the rows idx[0:k] of the row-major (n x d) block base. */
FASTK_CLONES
static void fastk_mean_rows(const double *restrict base, const int64_t *restrict idx,
                            ptrdiff_t k, ptrdiff_t d, double *restrict out)
{
    ptrdiff_t q, c;
    double inv = 1.0 / (double)k;
    for (c = 0; c < d; c++)
        out[c] = 0.0;
    for (q = 0; q < k; q++) {
        const double *row = base + (ptrdiff_t)idx[q] * d;
        for (c = 0; c + 4 <= d; c += 4)
            FASTK_STORE(out + c, FASTK_LOAD(out + c) + FASTK_LOAD(row + c));
        for (; c < d; c++)
            out[c] += row[c];
    }
    for (c = 0; c < d; c++)
        out[c] *= inv;
}

#endif
