/* GD and minibatch SGD steps of the vectorised 1-D Monte Carlo (weightspace.relu.mc1d, kernel "c").

   n two-layer ReLU nets f(x) = c + sum_i w_i relu(a_i x + b_i) of width m, stored row-major in
   contiguous float64 arrays a, b, w (n x m) and c (n), take `steps` GD steps in place. Step s of
   net i uses the weighted residual r_j = coef_j f(x_j) + ncy_j with the six coefficient pairs at
   coef + i*coef_net + s*coef_step and ncy + i*ncy_net + s*ncy_step (a stride of 0 repeats a row).

   The arithmetic is that of mc1d._ScatterKernel.gd_step, operation for operation and in the same
   order, so that both kernels give the same bits:

     kink   k = -b/a; e = max_i |k_i| (NaN if any is NaN) is folded into vmax (max) and -e into
            vmin (min), with NaN propagating, at the parameters before every step;
     class  t = clamp(softshrink(k, 1/2), -3, 3) + 4 sign(a) + 7 rounded to an integer by adding
            1.5 * 2^52; its low four bits are the bin (0..6: a < 0, 8..14: a > 0). NaN and a == 0
            give some bin in 0..15, so a diverged net never indexes out of bounds;
     sums   per-bin sums of (w a, w b) in neuron order, then running sums C over the 16 bins;
            f_j = (C_B[8+j] - C_B[j]) + (C_A[8+j] - C_A[j]) x_j, plus c;
     back   r_j = ncy_j + f_j coef_j, running sums R (of r and of x r) into a 16-wide table:
            T[0] = 0, T[1+j] = R_{j+1}, T[8+k] = R_6 - R_k, T[7] = T[15] = 0; each neuron reads
            S1 (x r) and S0 (r) at its bin;
     update a -= w S1, b -= w S0, w -= a S1 + b S0 (two multiply-adds, in this order), all at
            the old parameters, and c -= R_6.

   Where PyTorch evaluates addcmul as one fused multiply-add, `fused` selects fma() for the six
   multiply-adds above (f, r and the four of the update); otherwise they are a product and a sum.
   Nets are independent, so each group of GROUP nets runs all its steps before the next group
   starts, with its bins in local arrays; the groups change no result. Where the CPU has
   AVX512F/DQ, nets of width >= VECTOR_MIN_WIDTH run the neuron passes eight neurons per vector
   (vector_steps), lane for lane the same operations; only the per-bin sums stay scalar, in neuron
   order. Build with -O2
   -ffp-contract=off and without -ffast-math. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NPOINTS 6
#define NBINS 16

#if defined(__GNUC__) || defined(__clang__)
#define KERNEL_INLINE static inline __attribute__((always_inline))
#else
#define KERNEL_INLINE static inline
#endif

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define FMA_TARGET __attribute__((target("fma")))
#else
#define FMA_TARGET
#endif

/* x + 1.5 * 2^52 rounds x (|x| < 2^51) to an integer held in the low mantissa bits. */
static const double ROUND_MAGIC = 6755399441055744.0;

KERNEL_INLINE double mul_add(int fused, double x, double y, double z)
{
    return fused ? fma(x, y, z) : z + x * y;
}

KERNEL_INLINE unsigned kink_bin(double a, double k)
{
    double t = k > 0.5 ? k - 0.5 : (k < -0.5 ? k + 0.5 : k * 0.0);
    t = t < -3.0 ? -3.0 : (t > 3.0 ? 3.0 : t);
    double sign = (double)((a > 0.0) - (a < 0.0));
    double u = (t + 4.0 * sign) + (7.0 + ROUND_MAGIC);
    uint64_t bits;
    memcpy(&bits, &u, sizeof bits);
    return (unsigned)(bits & 15u);
}

/* The per-net part of a step between the neuron passes: max |kink| e folded into (hi, lo), the
   running sums over the bins of the per-bin sums ha, hb (in place), f at the points, the residuals
   and their running sums into the 16-wide tables t0 (of x r) and t1 (of r), and c updated. */
KERNEL_INLINE void net_tables(int fused, double e, double *restrict ha, double *restrict hb,
                              const double *cf, const double *ny, const double *restrict x,
                              double *hi, double *lo, double *cc, double *restrict t0,
                              double *restrict t1)
{
    double ne = -e;
    *hi = (e > *hi || e != e) ? e : *hi;
    *lo = (ne < *lo || ne != ne) ? ne : *lo;
    double sa = 0.0, sb = 0.0;
    for (int k = 0; k < NBINS; k++) {
        sa += ha[k];
        sb += hb[k];
        ha[k] = sa;
        hb[k] = sb;
    }
    double acc0 = 0.0, acc1 = 0.0;
    t0[0] = t1[0] = 0.0;
    for (int j = 0; j < NPOINTS; j++) {
        double fa = ha[8 + j] - ha[j];
        double fb = hb[8 + j] - hb[j];
        double f = mul_add(fused, fa, x[j], fb) + *cc;
        double r = mul_add(fused, f, cf[j], ny[j]);
        acc0 += r * x[j];
        acc1 += r;
        t0[1 + j] = acc0;
        t1[1 + j] = acc1;
    }
    t0[7] = t1[7] = 0.0;
    for (int k = 0; k <= NPOINTS; k++) {
        t0[8 + k] = t0[6] - t0[k];
        t1[8 + k] = t1[6] - t1[k];
    }
    t0[15] = t1[15] = 0.0;
    *cc = *cc - t1[6];
}

/* `steps` steps of `group` consecutive nets (1 <= group <= GROUP) whose neuron loops are
   interleaved: the per-bin sums of different nets are independent chains of additions, so the
   processor overlaps them. Each net's arithmetic is the same as when it runs alone. Wider nets
   have enough independent work in one net's neuron loop and run alone. */
#define GROUP 4
#define GROUP_MAX_WIDTH 128

KERNEL_INLINE void group_steps(int fused, int group, int64_t m, int64_t steps, double *restrict a,
                               double *restrict b, double *restrict w, double *restrict c,
                               const double *coef, int64_t coef_net, int64_t coef_step,
                               const double *ncy, int64_t ncy_net, int64_t ncy_step,
                               const double *restrict x, double *restrict vmax,
                               double *restrict vmin, unsigned char *restrict bins)
{
    double hi[GROUP], lo[GROUP], cc[GROUP];
    for (int g = 0; g < group; g++) {
        hi[g] = vmax[g];
        lo[g] = vmin[g];
        cc[g] = c[g];
    }
    for (int64_t s = 0; s < steps; s++) {
        double ha[GROUP][NBINS], hb[GROUP][NBINS], ext[GROUP];
        for (int g = 0; g < group; g++) {
            ext[g] = -1.0;
            for (int k = 0; k < NBINS; k++)
                ha[g][k] = hb[g][k] = 0.0;
        }

        /* Kinks, bins and per-bin sums. */
        for (int64_t i = 0; i < m; i++) {
            for (int g = 0; g < group; g++) {
                int64_t at = g * m + i;
                double ai = a[at], bi = b[at], wi = w[at];
                double k = -bi / ai;
                double v = fabs(k);
                ext[g] = (v > ext[g] || v != v) ? v : ext[g]; /* a NaN stays */
                unsigned bin = kink_bin(ai, k);
                bins[at] = (unsigned char)bin;
                ha[g][bin] += wi * ai;
                hb[g][bin] += wi * bi;
            }
        }

        double t0[GROUP][NBINS], t1[GROUP][NBINS];
        for (int g = 0; g < group; g++)
            net_tables(fused, ext[g], ha[g], hb[g], coef + g * coef_net + s * coef_step,
                       ncy + g * ncy_net + s * ncy_step, x, &hi[g], &lo[g], &cc[g], t0[g], t1[g]);

        /* Simultaneous update at the old parameters. */
        for (int g = 0; g < group; g++) {
            const double *s1 = t0[g], *s0 = t1[g];
            for (int64_t i = 0; i < m; i++) {
                int64_t at = g * m + i;
                unsigned bin = bins[at];
                double g1 = s1[bin], g0 = s0[bin];
                double ai = a[at], bi = b[at], wi = w[at];
                double nw = mul_add(fused, -ai, g1, wi);
                w[at] = mul_add(fused, -bi, g0, nw);
                a[at] = mul_add(fused, -wi, g1, ai);
                b[at] = mul_add(fused, -wi, g0, bi);
            }
        }
    }
    for (int g = 0; g < group; g++) {
        vmax[g] = hi[g];
        vmin[g] = lo[g];
        c[g] = cc[g];
    }
}

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <immintrin.h>
#define HAVE_AVX512 1
#define AVX512_STEP __attribute__((target("avx512f,avx512dq")))

static int use_avx512 = -1; /* -1: not yet asked */

/* Nets at least this wide take the vectorised step (narrower ones interleave GROUP nets). */
#define VECTOR_MIN_WIDTH 16

AVX512_STEP static inline __m512d vmul_add(int fused, __m512d x, __m512d y, __m512d z)
{
    return fused ? _mm512_fmadd_pd(x, y, z) : _mm512_add_pd(z, _mm512_mul_pd(x, y));
}

/* `steps` steps of `group` consecutive nets with eight neurons per vector: the same operations as
   group_steps, lane by lane (kinks, bins, products w a and w b, and the update, whose bin tables
   are looked up by a two-register permute). The per-bin sums stay scalar loops in neuron order, so
   that every bin sums the same products in the same order; the nets' loops are interleaved, so
   that their chains of additions overlap. `bins` holds group (m + 8) bytes, `wa` and `wb` group m
   doubles each. */
AVX512_STEP static inline void vector_steps(int fused, int group, int64_t m, int64_t steps,
                                            double *restrict a, double *restrict b,
                                            double *restrict w, double *c, const double *coef,
                                            int64_t coef_net, int64_t coef_step,
                                            const double *ncy, int64_t ncy_net, int64_t ncy_step,
                                            const double *restrict x, double *vmax, double *vmin,
                                            unsigned char *restrict bins, double *restrict wa,
                                            double *restrict wb)
{
    const __m512d zero = _mm512_setzero_pd(), sign_bit = _mm512_set1_pd(-0.0);
    const __m512d half = _mm512_set1_pd(0.5), mhalf = _mm512_set1_pd(-0.5);
    const __m512d three = _mm512_set1_pd(3.0), mthree = _mm512_set1_pd(-3.0);
    const __m512d one = _mm512_set1_pd(1.0), mone = _mm512_set1_pd(-1.0);
    const __m512d four = _mm512_set1_pd(4.0), offset = _mm512_set1_pd(7.0 + ROUND_MAGIC);
    const __m512i low_bits = _mm512_set1_epi64(15);
    const int64_t pad = m + 8;
    double hi[GROUP], lo[GROUP], cc[GROUP], ext[GROUP];
    for (int g = 0; g < group; g++) {
        hi[g] = vmax[g];
        lo[g] = vmin[g];
        cc[g] = c[g];
    }
    for (int64_t s = 0; s < steps; s++) {
        for (int g = 0; g < group; g++) {
            const double *ag = a + g * m, *bg = b + g * m, *wg = w + g * m;
            __m512d top = mone;
            for (int64_t i = 0; i < m; i += 8) {
                const __mmask8 live = m - i >= 8 ? 0xFF : (__mmask8)((1u << (m - i)) - 1u);
                __m512d ai = _mm512_maskz_loadu_pd(live, ag + i);
                __m512d bi = _mm512_maskz_loadu_pd(live, bg + i);
                __m512d wi = _mm512_maskz_loadu_pd(live, wg + i);
                __m512d k = _mm512_div_pd(_mm512_xor_pd(bi, sign_bit), ai);
                __m512d v = _mm512_andnot_pd(sign_bit, k);
                __mmask8 take = _mm512_mask_cmp_pd_mask(live, v, top, _CMP_GT_OQ) |
                                _mm512_mask_cmp_pd_mask(live, v, v, _CMP_UNORD_Q);
                top = _mm512_mask_blend_pd(take, top, v);
                __m512d t = _mm512_mul_pd(k, zero);
                t = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(k, mhalf, _CMP_LT_OQ), t,
                                         _mm512_add_pd(k, half));
                t = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(k, half, _CMP_GT_OQ), t,
                                         _mm512_sub_pd(k, half));
                __m512d r =
                    _mm512_mask_blend_pd(_mm512_cmp_pd_mask(t, three, _CMP_GT_OQ), t, three);
                r = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(t, mthree, _CMP_LT_OQ), r, mthree);
                __m512d sign =
                    _mm512_mask_blend_pd(_mm512_cmp_pd_mask(ai, zero, _CMP_GT_OQ), zero, one);
                sign = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(ai, zero, _CMP_LT_OQ), sign, mone);
                __m512d u = _mm512_add_pd(_mm512_add_pd(r, _mm512_mul_pd(four, sign)), offset);
                __m512i bin = _mm512_and_si512(_mm512_castpd_si512(u), low_bits);
                _mm512_mask_cvtepi64_storeu_epi8(bins + g * pad + i, live, bin);
                _mm512_mask_storeu_pd(wa + g * m + i, live, _mm512_mul_pd(wi, ai));
                _mm512_mask_storeu_pd(wb + g * m + i, live, _mm512_mul_pd(wi, bi));
            }
            double lanes[8], e = -1.0;
            _mm512_storeu_pd(lanes, top);
            for (int l = 0; l < 8; l++)
                e = (lanes[l] > e || lanes[l] != lanes[l]) ? lanes[l] : e;
            ext[g] = e;
        }

        double ha[GROUP][NBINS], hb[GROUP][NBINS], t0[GROUP][NBINS], t1[GROUP][NBINS];
        for (int g = 0; g < group; g++)
            for (int k = 0; k < NBINS; k++)
                ha[g][k] = hb[g][k] = 0.0;
        for (int64_t i = 0; i < m; i++)
            for (int g = 0; g < group; g++) {
                unsigned bn = bins[g * pad + i];
                ha[g][bn] += wa[g * m + i];
                hb[g][bn] += wb[g * m + i];
            }
        for (int g = 0; g < group; g++)
            net_tables(fused, ext[g], ha[g], hb[g], coef + g * coef_net + s * coef_step,
                       ncy + g * ncy_net + s * ncy_step, x, &hi[g], &lo[g], &cc[g], t0[g], t1[g]);

        for (int g = 0; g < group; g++) {
            double *ag = a + g * m, *bg = b + g * m, *wg = w + g * m;
            const __m512d s1lo = _mm512_loadu_pd(t0[g]), s1hi = _mm512_loadu_pd(t0[g] + 8);
            const __m512d s0lo = _mm512_loadu_pd(t1[g]), s0hi = _mm512_loadu_pd(t1[g] + 8);
            for (int64_t i = 0; i < m; i += 8) {
                const __mmask8 live = m - i >= 8 ? 0xFF : (__mmask8)((1u << (m - i)) - 1u);
                __m512i idx =
                    _mm512_cvtepu8_epi64(_mm_loadl_epi64((const __m128i *)(bins + g * pad + i)));
                __m512d g1 = _mm512_permutex2var_pd(s1lo, idx, s1hi);
                __m512d g0 = _mm512_permutex2var_pd(s0lo, idx, s0hi);
                __m512d ai = _mm512_maskz_loadu_pd(live, ag + i);
                __m512d bi = _mm512_maskz_loadu_pd(live, bg + i);
                __m512d wi = _mm512_maskz_loadu_pd(live, wg + i);
                __m512d nw = vmul_add(fused, _mm512_xor_pd(ai, sign_bit), g1, wi);
                _mm512_mask_storeu_pd(wg + i, live,
                                      vmul_add(fused, _mm512_xor_pd(bi, sign_bit), g0, nw));
                __m512d nwi = _mm512_xor_pd(wi, sign_bit);
                _mm512_mask_storeu_pd(ag + i, live, vmul_add(fused, nwi, g1, ai));
                _mm512_mask_storeu_pd(bg + i, live, vmul_add(fused, nwi, g0, bi));
            }
        }
    }
    for (int g = 0; g < group; g++) {
        vmax[g] = hi[g];
        vmin[g] = lo[g];
        c[g] = cc[g];
    }
}

#define VECTOR_STEPS_ARGS                                                                      \
    int group, int64_t m, int64_t steps, double *a, double *b, double *w, double *c,           \
        const double *coef, int64_t coef_net, int64_t coef_step, const double *ncy,            \
        int64_t ncy_net, int64_t ncy_step, const double *x, double *vmax, double *vmin,        \
        unsigned char *bins, double *wa, double *wb
#define VECTOR_STEPS_CALL(FUSED)                                                               \
    vector_steps(FUSED, group, m, steps, a, b, w, c, coef, coef_net, coef_step, ncy, ncy_net,  \
                 ncy_step, x, vmax, vmin, bins, wa, wb)

AVX512_STEP static void vector_steps_fused(VECTOR_STEPS_ARGS) { VECTOR_STEPS_CALL(1); }

AVX512_STEP static void vector_steps_separate(VECTOR_STEPS_ARGS) { VECTOR_STEPS_CALL(0); }
#else
static int use_avx512 = 0;
#define VECTOR_MIN_WIDTH INT64_MAX
#endif

/* Whether the kernel uses AVX-512 (the vectorised step and the SGD draws): `enable` 0 turns it
   off (for tests that compare the paths), 1 on where the CPU has AVX512F and AVX512DQ, -1 only
   asks. */
int mc1d_use_avx512(int enable)
{
#ifdef HAVE_AVX512
    if (enable >= 0 || use_avx512 < 0)
        use_avx512 = enable != 0 && __builtin_cpu_supports("avx512f") &&
                     __builtin_cpu_supports("avx512dq");
    return use_avx512;
#else
    (void)enable;
    return 0;
#endif
}

/* `steps` steps of nets [i, i + group): the vectorised step where chosen. */
KERNEL_INLINE void block_steps(int fused, int vector, int group, int64_t m, int64_t steps,
                               double *a, double *b, double *w, double *c, const double *coef,
                               int64_t coef_net, int64_t coef_step, const double *ncy,
                               int64_t ncy_net, int64_t ncy_step, const double *x, double *vmax,
                               double *vmin, unsigned char *bins, double *scratch)
{
#ifdef HAVE_AVX512
    if (vector) {
        (fused ? vector_steps_fused : vector_steps_separate)(
            group, m, steps, a, b, w, c, coef, coef_net, coef_step, ncy, ncy_net, ncy_step, x,
            vmax, vmin, bins, scratch, scratch + GROUP * m);
        return;
    }
#endif
    (void)vector;
    (void)scratch;
    group_steps(fused, group, m, steps, a, b, w, c, coef, coef_net, coef_step, ncy, ncy_net,
                ncy_step, x, vmax, vmin, bins);
}

/* How many of the `left` remaining nets of width m the next block interleaves. */
static int group_size(int vector, int64_t m, int64_t left)
{
    return ((vector || m <= GROUP_MAX_WIDTH) && left >= GROUP) ? GROUP : 1;
}

/* Whether nets of width m take the vectorised step. */
static int vector_width(int64_t m)
{
    return m >= VECTOR_MIN_WIDTH && (use_avx512 > 0 || (use_avx512 < 0 && mc1d_use_avx512(1)));
}

#define NET_LOOP(FUSED)                                                                        \
    do {                                                                                       \
        const int vector = vector_width(m);                                                    \
        int64_t i = 0;                                                                         \
        while (i < n) {                                                                        \
            int group = group_size(vector, m, n - i);                                         \
            block_steps(FUSED, vector, group, m, steps, a + i * m, b + i * m, w + i * m, c + i, \
                        coef + i * coef_net, coef_net, coef_step, ncy + i * ncy_net, ncy_net,  \
                        ncy_step, x, vmax + i, vmin + i, bins, scratch);                       \
            i += group;                                                                        \
        }                                                                                      \
    } while (0)

static void run_separate(int64_t n, int64_t m, int64_t steps, double *a, double *b, double *w,
                         double *c, const double *coef, int64_t coef_net, int64_t coef_step,
                         const double *ncy, int64_t ncy_net, int64_t ncy_step, const double *x,
                         double *vmax, double *vmin, unsigned char *bins, double *scratch)
{
    NET_LOOP(0);
}

FMA_TARGET static void run_fused(int64_t n, int64_t m, int64_t steps, double *a, double *b,
                                 double *w, double *c, const double *coef, int64_t coef_net,
                                 int64_t coef_step, const double *ncy, int64_t ncy_net,
                                 int64_t ncy_step, const double *x, double *vmax, double *vmin,
                                 unsigned char *bins, double *scratch)
{
    NET_LOOP(1);
}

/* Returns 0, or 1 if the scratch array (GROUP * m bytes) cannot be allocated (nothing is changed then). */
int mc1d_gd_steps(int64_t n, int64_t m, int64_t steps, double *a, double *b, double *w, double *c,
                  const double *coef, int64_t coef_net, int64_t coef_step, const double *ncy,
                  int64_t ncy_net, int64_t ncy_step, const double *x, double *vmax, double *vmin,
                  int fused)
{
    if (n <= 0 || m <= 0 || steps <= 0)
        return 0;
    unsigned char *bins = malloc((size_t)(m + 8) * GROUP);
    double *scratch = malloc(sizeof(double) * 2 * GROUP * (size_t)m);
    if (bins == NULL || scratch == NULL) {
        free(bins);
        free(scratch);
        return 1;
    }
    if (fused)
        run_fused(n, m, steps, a, b, w, c, coef, coef_net, coef_step, ncy, ncy_net, ncy_step, x,
                  vmax, vmin, bins, scratch);
    else
        run_separate(n, m, steps, a, b, w, c, coef, coef_net, coef_step, ncy, ncy_net, ncy_step,
                     x, vmax, vmin, bins, scratch);
    free(bins);
    free(scratch);
    return 0;
}

/* Minibatch SGD: the same steps, with coefficients drawn here for each step (the PyTorch reference
   is weightspace.relu.mc1d.minibatches, which gives the same numbers). Net i of the call has index
   ids[i] in its chunk, point weights p (n x 6) and step size h[i]; draw j of step s (0-based in this
   call) is the category of u = (SplitMix64 output at counter (ids[i] << 40) | (s << 16) | j of
   `key`) >> 11, times 2^-53, that is the number of running sums p_0, p_0 + p_1, ..., of the first
   five weights that are <= u. With counts n_k of `size` draws, coef_k = (n_k / size) h and
   ncy_k = -(coef_k y_k). Steps run in blocks of DRAW_BLOCK, drawn into scratch arrays first. */
#define DRAW_BLOCK 256

KERNEL_INLINE uint64_t splitmix64_at(uint64_t key, uint64_t counter)
{
    uint64_t z = key + (counter + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Counts of the `size` draws of one step at counter base `base`, into n[0..5]. Draw j falls in
   category k when cdf[k-1] <= u < cdf[k], so, the running sums being nondecreasing (weights >= 0),
   the number of draws with u >= cdf[k] is that of categories above k. */
KERNEL_INLINE void count_draws(uint64_t key, uint64_t base, int64_t size, const double *cdf,
                               int64_t *n)
{
    int64_t above[NPOINTS - 1] = {0};
    for (int64_t j = 0; j < size; j++) {
        uint64_t bits = splitmix64_at(key, base | (uint64_t)j);
        double u = (double)(bits >> 11) * 0x1.0p-53;
        for (int k = 0; k < NPOINTS - 1; k++)
            above[k] += u >= cdf[k];
    }
    n[0] = size - above[0];
    for (int k = 1; k < NPOINTS - 1; k++)
        n[k] = above[k - 1] - above[k];
    n[NPOINTS - 1] = above[NPOINTS - 2];
}

#ifdef HAVE_AVX512
#define AVX512_DRAWS __attribute__((target("avx512f,avx512dq,popcnt")))

/* The same counts, eight draws per vector (64-bit multiplies and conversions of AVX512DQ). */
AVX512_DRAWS static void count_draws_avx512(uint64_t key, uint64_t base, int64_t size,
                                            const double *cdf, int64_t *n)
{
    const __m512i lane = _mm512_setr_epi64(1, 2, 3, 4, 5, 6, 7, 8); /* counter + 1 */
    const __m512i gamma = _mm512_set1_epi64((long long)0x9E3779B97F4A7C15ull);
    const __m512i mix1 = _mm512_set1_epi64((long long)0xBF58476D1CE4E5B9ull);
    const __m512i mix2 = _mm512_set1_epi64((long long)0x94D049BB133111EBull);
    const __m512i vkey = _mm512_set1_epi64((long long)key);
    const __m512d scale = _mm512_set1_pd(0x1.0p-53);
    int64_t above[NPOINTS - 1] = {0};
    for (int64_t j = 0; j < size; j += 8) {
        __mmask8 valid = size - j >= 8 ? 0xFF : (__mmask8)((1u << (size - j)) - 1u);
        __m512i z = _mm512_add_epi64(_mm512_set1_epi64((long long)(base | (uint64_t)j)), lane);
        z = _mm512_add_epi64(_mm512_mullo_epi64(z, gamma), vkey);
        z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), mix1);
        z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), mix2);
        z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
        __m512d u = _mm512_mul_pd(_mm512_cvtepu64_pd(_mm512_srli_epi64(z, 11)), scale);
        for (int k = 0; k < NPOINTS - 1; k++)
            above[k] += __builtin_popcount(
                _mm512_mask_cmp_pd_mask(valid, u, _mm512_set1_pd(cdf[k]), _CMP_GE_OQ));
    }
    n[0] = size - above[0];
    for (int k = 1; k < NPOINTS - 1; k++)
        n[k] = above[k - 1] - above[k];
    n[NPOINTS - 1] = above[NPOINTS - 2];
}
#endif

static void draw_coefficients(int group, int64_t s0, int64_t steps, int64_t size, uint64_t key,
                              const int64_t *ids, const double *p, const double *h,
                              const double *y, double *coef, double *ncy)
{
#ifdef HAVE_AVX512
    int vector = use_avx512 > 0 || (use_avx512 < 0 && mc1d_use_avx512(1));
#endif
    for (int g = 0; g < group; g++) {
        double cdf[NPOINTS - 1];
        double sum = p[g * NPOINTS];
        cdf[0] = sum;
        for (int k = 1; k < NPOINTS - 1; k++) {
            sum += p[g * NPOINTS + k];
            cdf[k] = sum;
        }
        uint64_t net = (uint64_t)ids[g] << 40;
        for (int64_t s = 0; s < steps; s++) {
            int64_t counts[NPOINTS];
            uint64_t base = net | ((uint64_t)(s0 + s) << 16);
#ifdef HAVE_AVX512
            if (vector)
                count_draws_avx512(key, base, size, cdf, counts);
            else
#endif
                count_draws(key, base, size, cdf, counts);
            double *cf = coef + (g * steps + s) * NPOINTS;
            double *ny = ncy + (g * steps + s) * NPOINTS;
            for (int k = 0; k < NPOINTS; k++) {
                double f = (double)counts[k] / (double)size * h[g];
                cf[k] = f;
                ny[k] = -(f * y[k]);
            }
        }
    }
}

#define SGD_LOOP(FUSED)                                                                        \
    do {                                                                                       \
        const int vector = vector_width(m);                                                    \
        int64_t i = 0;                                                                         \
        while (i < n) {                                                                        \
            int group = group_size(vector, m, n - i);                                         \
            for (int64_t s0 = 0; s0 < steps; s0 += DRAW_BLOCK) {                               \
                int64_t k = steps - s0 < DRAW_BLOCK ? steps - s0 : DRAW_BLOCK;                 \
                draw_coefficients(group, s0, k, size, key, ids + i, p + i * NPOINTS, h + i, y, \
                                  coef, ncy);                                                  \
                block_steps(FUSED, vector, group, m, k, a + i * m, b + i * m, w + i * m,       \
                            c + i, coef, k * NPOINTS, NPOINTS, ncy, k * NPOINTS, NPOINTS, x,   \
                            vmax + i, vmin + i, bins, scratch);                                \
            }                                                                                  \
            i += group;                                                                        \
        }                                                                                      \
    } while (0)

static void sgd_separate(int64_t n, int64_t m, int64_t steps, double *a, double *b, double *w,
                         double *c, const double *p, const double *h, const double *y,
                         const int64_t *ids, uint64_t key, int64_t size, const double *x,
                         double *vmax, double *vmin, unsigned char *bins, double *coef,
                         double *ncy, double *scratch)
{
    SGD_LOOP(0);
}

FMA_TARGET static void sgd_fused(int64_t n, int64_t m, int64_t steps, double *a, double *b,
                                 double *w, double *c, const double *p, const double *h,
                                 const double *y, const int64_t *ids, uint64_t key, int64_t size,
                                 const double *x, double *vmax, double *vmin,
                                 unsigned char *bins, double *coef, double *ncy,
                                 double *scratch)
{
    SGD_LOOP(1);
}

/* Returns 0; 1 if the scratch arrays cannot be allocated; 2 if an id, `steps` or `size` does not
   fit the counter layout (ids < 2^24, steps <= 2^24, size <= 2^16). Nothing is changed unless 0. */
int mc1d_sgd_steps(int64_t n, int64_t m, int64_t steps, double *a, double *b, double *w,
                   double *c, const double *p, const double *h, const double *y,
                   const int64_t *ids, uint64_t key, int64_t size, const double *x,
                   double *vmax, double *vmin, int fused)
{
    if (n <= 0 || m <= 0 || steps <= 0)
        return 0;
    if (steps > ((int64_t)1 << 24) || size < 1 || size > ((int64_t)1 << 16))
        return 2;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= ((int64_t)1 << 24))
            return 2;
    unsigned char *bins = malloc((size_t)(m + 8) * GROUP);
    double *coef = malloc(sizeof(double) * 2 * GROUP * (DRAW_BLOCK * NPOINTS + (size_t)m));
    if (bins == NULL || coef == NULL) {
        free(bins);
        free(coef);
        return 1;
    }
    double *ncy = coef + GROUP * DRAW_BLOCK * NPOINTS;
    double *scratch = ncy + GROUP * DRAW_BLOCK * NPOINTS;
    if (fused)
        sgd_fused(n, m, steps, a, b, w, c, p, h, y, ids, key, size, x, vmax, vmin, bins, coef,
                  ncy, scratch);
    else
        sgd_separate(n, m, steps, a, b, w, c, p, h, y, ids, key, size, x, vmax, vmin, bins,
                     coef, ncy, scratch);
    free(bins);
    free(coef);
    return 0;
}

/* Version of the calling convention above; the Python side checks it after loading. */
int mc1d_abi_version(void)
{
    return 2;
}
