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
 * A single sample runs with the feature dimensions innermost instead. `work` holds
 * (cols + K*W + rows + 2d) * N floats (sss_native.work_size).
 */
#include <stdint.h>
#include <string.h>

#define ABI_VERSION 1

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

/* One sample (N = 1): here the feature dimensions are the inner loops instead, so
 * that they vectorise; `work` holds K*W + 2*d floats. */
CLONES
static void sample_forward(int64_t K, int64_t m, int64_t p, int64_t d,
                           const int64_t *dims_in, const int64_t *dims_out,
                           const float *w_in, const float *trans, const float *w_out,
                           const float *bias, const float *u, float *y, float *work) {
    const int64_t W = p + 2 * d;
    float *H = work, *x = H + K * W, *xn = x + d;
    memset(H, 0, (size_t)(K * W) * sizeof(float));
    for (int64_t k = 0, cin = 0; k < K; cin += dims_in[k], k++)
        for (int64_t j = 0; j < dims_in[k]; j++) {
            const float a = u[cin + j];
            const float *restrict wrow = w_in + (k * m + j) * W;
            float *restrict h = H + k * W;
            for (int64_t w = 0; w < W; w++) h[w] += a * wrow[w];
        }
    memset(x, 0, (size_t)d * sizeof(float));
    for (int64_t k = 0, cout = 0; k < K; cout += dims_out[k], k++) {
        const float *h = H + k * W;
        const float *c_out = w_out + k * 2 * d * p;
        float *restrict yk = y + cout;
        for (int64_t i = 0; i < dims_out[k]; i++) yk[i] = h[i];
        for (int64_t s = 0; s < d; s++)
            for (int64_t i = 0; i < dims_out[k]; i++) yk[i] += x[s] * c_out[s * p + i];
        if (k < K - 1 && d > 0) {
            const float *T = trans + (k * 2 + 0) * d * d;
            for (int64_t t = 0; t < d; t++) xn[t] = h[p + t];
            for (int64_t s = 0; s < d; s++)
                for (int64_t t = 0; t < d; t++) xn[t] += x[s] * T[s * d + t];
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
        const float *g_out = w_out + (k * 2 * d + d) * p;
        float *restrict yk = y + cout;
        for (int64_t s = 0; s < d; s++)
            for (int64_t i = 0; i < dims_out[k]; i++) yk[i] += z[s] * g_out[s * p + i];
        if (k > 0 && d > 0) {
            const float *T = trans + ((K - 1 - k) * 2 + 1) * d * d;
            for (int64_t t = 0; t < d; t++) zn[t] = h[p + d + t];
            for (int64_t s = 0; s < d; s++)
                for (int64_t t = 0; t < d; t++) zn[t] += z[s] * T[s * d + t];
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
