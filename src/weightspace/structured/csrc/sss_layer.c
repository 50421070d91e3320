/* Inference of the SSS layer on one CPU thread (weightspace.structured.layers.sss_native).
 *
 * y (N x rows) = u (N x cols) W~^T + bias, with W~ given by SSSLayer's padded, stacked
 * stage matrices (float32, row-major):
 *
 *     w_in  (K, m, W), W = p + 2d:  [D_k^T | B_k^T | F_k^T]
 *     trans (K-1, 2, d, d):         [A_t^T, E_{K-1-t}^T]
 *     w_out (K, 2d, p):             [C_k^T; G_k^T]
 *
 * and the stage sizes dims_in, dims_out (K each). The arithmetic is that of
 * SSSLayer.forward_reference: per stage the input-side products h_k = u_k [D|B|F]^T, the
 * causal recursion x_{k+1} = x_k A_k^T + (B u)_k, y_k = (D u)_k + x_k C_k^T, then the
 * anticausal one z_k = z_{k+1} E_k^T + (F u)_k, y_k += z_{k+1} G_k^T. Samples are the
 * innermost loop (features x samples layout), so every product runs over N contiguous
 * floats and vectorises; the input is transposed into that layout once and the output
 * back. Padding entries are zero and are skipped.
 *
 * A single sample runs with the feature dimensions innermost instead, as vector-matrix
 * products whose sums stay in AVX-512 registers where the CPU has them. `work` holds
 * (cols + K*W + rows + 2d) * N floats (sss_native.work_floats).
 */
#include <stdint.h>
#include <string.h>

#define ABI_VERSION 2

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

int sss_layer_abi_version(void) { return ABI_VERSION; }

/* out (cols x ld_out) = in (rows x cols, rows of ld_in floats) transposed, 16 x 16
 * tiles at a time */
static void transpose(int64_t rows, int64_t cols, const float *in, int64_t ld_in,
                      float *out, int64_t ld_out) {
    for (int64_t r0 = 0; r0 < rows; r0 += 16)
        for (int64_t c0 = 0; c0 < cols; c0 += 16) {
            int64_t r1 = r0 + 16 < rows ? r0 + 16 : rows;
            int64_t c1 = c0 + 16 < cols ? c0 + 16 : cols;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t c = c0; c < c1; c++) out[c * ld_out + r] = in[r * ld_in + c];
        }
}

/* out[0..N) += a * x[0..N) */
static inline void axpy(int64_t N, float a, const float *restrict x, float *restrict out) {
    for (int64_t n = 0; n < N; n++) out[n] += a * x[n];
}

/* next (d x N) = prev (d x N) T (d x d, row-major: next[t] = sum_s prev[s] T[s][t]) + v */
static inline void transition(int64_t N, int64_t d, const float *T, const float *prev,
                              const float *v, float *next) {
    memcpy(next, v, (size_t)(d * N) * sizeof(float));
    for (int64_t s = 0; s < d; s++)
        for (int64_t t = 0; t < d; t++)
            if (T[s * d + t] != 0.0f) axpy(N, T[s * d + t], prev + s * N, next + t * N);
}

/* out[0..n) = init[0..n) + sum_{r < rows} v[r] M[r * ld + 0..n) (init may be out): the
 * vector-matrix products of one sample. The portable loop accumulates in `out`, which the
 * compiler vectorises along n but must store and reload for every r. */
static void vecmat_portable(int64_t rows, int64_t n, const float *v, const float *M, int64_t ld,
                            const float *init, float *out) {
    if (init != out) memcpy(out, init, (size_t)n * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        const float a = v[r];
        const float *restrict row = M + r * ld;
        float *restrict o = out;
        for (int64_t i = 0; i < n; i++) o[i] += a * row[i];
    }
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define HAVE_AVX512_PATH 1

static inline __mmask16 lanes(int64_t left) {
    if (left <= 0) return 0;
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

/* The same products with the sums in registers: panels of 64 columns, up to four masked
 * vectors of 16, fused multiply-adds over the rows (another rounding than the portable
 * loop). Masked loads beyond a row's n columns read nothing. */
__attribute__((target("avx512f"))) static void vecmat_avx512(int64_t rows, int64_t n,
                                                             const float *v, const float *M,
                                                             int64_t ld, const float *init,
                                                             float *out) {
    for (int64_t c0 = 0; c0 < n; c0 += 64) {
        const __mmask16 k0 = lanes(n - c0), k1 = lanes(n - c0 - 16), k2 = lanes(n - c0 - 32),
                        k3 = lanes(n - c0 - 48);
        __m512 a0 = _mm512_maskz_loadu_ps(k0, init + c0);
        __m512 a1 = n - c0 > 16 ? _mm512_maskz_loadu_ps(k1, init + c0 + 16) : _mm512_setzero_ps();
        __m512 a2 = n - c0 > 32 ? _mm512_maskz_loadu_ps(k2, init + c0 + 32) : _mm512_setzero_ps();
        __m512 a3 = n - c0 > 48 ? _mm512_maskz_loadu_ps(k3, init + c0 + 48) : _mm512_setzero_ps();
        if (n - c0 <= 32) {
            /* two rows at a time into two sets of sums: the multiply-adds of one set
               wait on each other, the two sets overlap */
            __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
            int64_t r = 0;
            for (; r + 1 < rows; r += 2) {
                const float *row = M + r * ld + c0;
                const __m512 a = _mm512_set1_ps(v[r]), b = _mm512_set1_ps(v[r + 1]);
                a0 = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(k0, row), a0);
                b0 = _mm512_fmadd_ps(b, _mm512_maskz_loadu_ps(k0, row + ld), b0);
                a1 = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(k1, row + 16), a1);
                b1 = _mm512_fmadd_ps(b, _mm512_maskz_loadu_ps(k1, row + ld + 16), b1);
            }
            if (r < rows) {
                const float *row = M + r * ld + c0;
                const __m512 a = _mm512_set1_ps(v[r]);
                a0 = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(k0, row), a0);
                a1 = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(k1, row + 16), a1);
            }
            a0 = _mm512_add_ps(a0, b0);
            a1 = _mm512_add_ps(a1, b1);
        } else {
            for (int64_t r = 0; r < rows; r++) {
                const __m512 a = _mm512_set1_ps(v[r]);
                const float *row = M + r * ld + c0;
                a0 = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(k0, row), a0);
                a1 = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(k1, row + 16), a1);
                a2 = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(k2, row + 32), a2);
                a3 = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(k3, row + 48), a3);
            }
        }
        _mm512_mask_storeu_ps(out + c0, k0, a0);
        if (n - c0 > 16) _mm512_mask_storeu_ps(out + c0 + 16, k1, a1);
        if (n - c0 > 32) _mm512_mask_storeu_ps(out + c0 + 32, k2, a2);
        if (n - c0 > 48) _mm512_mask_storeu_ps(out + c0 + 48, k3, a3);
    }
}
#endif

static int use_avx512 = -1; /* -1: not yet asked */

/* Whether one-sample inference uses the AVX-512 products: `enable` 0 turns them off (for
 * tests that compare the paths), 1 on where the CPU has them, -1 only asks. */
int sss_layer_use_avx512(int enable) {
#ifdef HAVE_AVX512_PATH
    if (enable >= 0 || use_avx512 < 0)
        use_avx512 = enable != 0 && __builtin_cpu_supports("avx512f") ? 1 : 0;
    return use_avx512;
#else
    (void)enable;
    return 0;
#endif
}

/* One sample (N = 1): the products of each stage are vector-matrix products along the
 * feature dimensions; `work` holds K*W + 2*d floats. */
static void sample_forward(int64_t K, int64_t m, int64_t p, int64_t d,
                           const int64_t *dims_in, const int64_t *dims_out,
                           const float *w_in, const float *trans, const float *w_out,
                           const float *bias, const float *u, float *y, float *work) {
    void (*vecmat)(int64_t, int64_t, const float *, const float *, int64_t, const float *,
                   float *) = vecmat_portable;
#ifdef HAVE_AVX512_PATH
    if (use_avx512 < 0) sss_layer_use_avx512(1);
    if (use_avx512) vecmat = vecmat_avx512;
#endif
    const int64_t W = p + 2 * d;
    float *H = work, *x = H + K * W, *xn = x + d;
    for (int64_t k = 0, cin = 0; k < K; cin += dims_in[k], k++) {
        memset(H + k * W, 0, (size_t)W * sizeof(float));
        vecmat(dims_in[k], W, u + cin, w_in + k * m * W, W, H + k * W, H + k * W);
    }
    memset(x, 0, (size_t)d * sizeof(float));
    for (int64_t k = 0, cout = 0; k < K; cout += dims_out[k], k++) {
        const float *h = H + k * W;
        /* y_k = (D u)_k + x_k C_k^T, x_{k+1} = x_k A_k^T + (B u)_k */
        vecmat(d, dims_out[k], x, w_out + k * 2 * d * p, p, h, y + cout);
        if (k < K - 1 && d > 0) {
            vecmat(d, d, x, trans + (k * 2 + 0) * d * d, d, h + p, xn);
            memcpy(x, xn, (size_t)d * sizeof(float));
        }
    }
    int64_t rows = 0;
    for (int64_t k = 0; k < K; k++) rows += dims_out[k];
    float *z = x, *zn = xn;
    memset(z, 0, (size_t)d * sizeof(float));
    for (int64_t k = K - 1, cout = rows; k >= 0; k--) {
        cout -= dims_out[k];
        const float *h = H + k * W;
        /* y_k += z_{k+1} G_k^T, z_k = z_{k+1} E_k^T + (F u)_k */
        vecmat(d, dims_out[k], z, w_out + (k * 2 * d + d) * p, p, y + cout, y + cout);
        if (k > 0 && d > 0) {
            vecmat(d, d, z, trans + ((K - 1 - k) * 2 + 1) * d * d, d, h + p + d, zn);
            memcpy(z, zn, (size_t)d * sizeof(float));
        }
    }
    if (bias != NULL)
        for (int64_t r = 0; r < rows; r++) y[r] += bias[r];
}

CLONES
void sss_layer_forward(int64_t N, int64_t K, int64_t m, int64_t p, int64_t d,
                       const int64_t *dims_in, const int64_t *dims_out, const float *w_in,
                       const float *trans, const float *w_out, const float *bias,
                       const float *u, float *y, float *work) {
    const int64_t W = p + 2 * d;
    if (N == 1) {
        sample_forward(K, m, p, d, dims_in, dims_out, w_in, trans, w_out, bias, u, y, work);
        return;
    }
    int64_t rows = 0, cols = 0;
    for (int64_t k = 0; k < K; k++) {
        rows += dims_out[k];
        cols += dims_in[k];
    }
    float *uT = work;              /* cols x N */
    float *H = uT + cols * N;      /* K x W x N */
    float *yT = H + K * W * N;     /* rows x N */
    float *s0 = yT + rows * N;     /* d x N */
    float *s1 = s0 + d * N;        /* d x N */

    transpose(N, cols, u, cols, uT, N);

    /* input-side products of every stage */
    memset(H, 0, (size_t)(K * W * N) * sizeof(float));
    for (int64_t k = 0, cin = 0; k < K; cin += dims_in[k], k++) {
        float *h = H + k * W * N;
        for (int64_t j = 0; j < dims_in[k]; j++) {
            const float *wrow = w_in + (k * m + j) * W;
            const float *urow = uT + (cin + j) * N;
            for (int64_t w = 0; w < W; w++)
                if (wrow[w] != 0.0f) axpy(N, wrow[w], urow, h + w * N);
        }
    }

    /* causal: y_k = (D u)_k + x_k C_k^T, x_{k+1} = x_k A_k^T + (B u)_k */
    float *x = s0, *xn = s1;
    memset(x, 0, (size_t)(d * N) * sizeof(float));
    for (int64_t k = 0, cout = 0; k < K; cout += dims_out[k], k++) {
        const float *h = H + k * W * N;
        const float *c_out = w_out + k * 2 * d * p;
        for (int64_t i = 0; i < dims_out[k]; i++) {
            float *yrow = yT + (cout + i) * N;
            memcpy(yrow, h + i * N, (size_t)N * sizeof(float));
            for (int64_t s = 0; s < d; s++)
                if (c_out[s * p + i] != 0.0f) axpy(N, c_out[s * p + i], x + s * N, yrow);
        }
        if (k < K - 1 && d > 0) {
            transition(N, d, trans + (k * 2 + 0) * d * d, x, h + p * N, xn);
            float *swap = x;
            x = xn;
            xn = swap;
        }
    }

    /* anticausal: y_k += z_{k+1} G_k^T, z_k = z_{k+1} E_k^T + (F u)_k */
    float *z = s0, *zn = s1;
    memset(z, 0, (size_t)(d * N) * sizeof(float));
    int64_t cout = rows;
    for (int64_t k = K - 1; k >= 0; k--) {
        cout -= dims_out[k];
        const float *h = H + k * W * N;
        const float *g_out = w_out + (k * 2 * d + d) * p;
        for (int64_t i = 0; i < dims_out[k]; i++) {
            float *yrow = yT + (cout + i) * N;
            for (int64_t s = 0; s < d; s++)
                if (g_out[s * p + i] != 0.0f) axpy(N, g_out[s * p + i], z + s * N, yrow);
        }
        if (k > 0 && d > 0) {
            transition(N, d, trans + ((K - 1 - k) * 2 + 1) * d * d, z, h + (p + d) * N, zn);
            float *swap = z;
            z = zn;
            zn = swap;
        }
    }

    if (bias != NULL)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t n = 0; n < N; n++) yT[r * N + n] += bias[r];
    transpose(rows, N, yT, N, y, rows);
}

/* The layer's parameters as sss_native prepares them once per layer. */
struct sss_plan {
    int64_t K, m, p, d;
    const int64_t *dims_in, *dims_out;
    const float *w_in, *trans, *w_out, *bias;
};

/* sss_layer_forward with the layer's part of the arguments in `plan`: fewer arguments to
 * convert per call, which at one sample is a good part of the call's cost. */
void sss_layer_forward_plan(const struct sss_plan *plan, int64_t N, const float *u, float *y,
                            float *work) {
    sss_layer_forward(N, plan->K, plan->m, plan->p, plan->d, plan->dims_in, plan->dims_out,
                      plan->w_in, plan->trans, plan->w_out, plan->bias, u, y, work);
}
