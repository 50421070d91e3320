/* Counter-based Gaussian directions for random bases descent, and the fused passes
 * that use them without storing them (weightspace.rbd.philox).
 *
 * Element j of row r of the directions with 64-bit key k is a function of (k, r, j)
 * only: Philox4x32-10 (Salmon et al., SC 2011) of the counter (j / 4, r, 0, 0) under
 * the key (k_lo, k_hi) gives four 32-bit words; Box-Muller turns words 0, 1 into the
 * normals of elements 4i, 4i+1 and words 2, 3 into those of 4i+2, 4i+3. Any process
 * regenerates any block bit for bit, and the loops vectorise (every lane is
 * independent).
 *
 * Only IEEE operations in a fixed order (built with -ffp-contract=off, no fast-math):
 * the log and the sine/cosine are series evaluated here, not libm calls, so results
 * are the same for every instruction set the compiler targets (the target clones
 * below differ in vector width, not in arithmetic; the AVX-512 path computes the same
 * Philox words with explicit intrinsics). Dot products accumulate in double in 16
 * lanes of a fixed order.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ABI_VERSION 2
#define BLOCK 256 /* normals per inner block: 64 Philox calls */
#define LANES 16

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

int rbd_abi_version(void) { return ABI_VERSION; }

/* (0, 1) from the top 24 bits, exact in float */
static inline float unit_open(uint32_t x) {
    return ((float)(x >> 8) + 0.5f) * (1.0f / 16777216.0f);
}

/* ln u for u in (0, 1): u = 2^e m with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s),
 * s = (m - 1) / (m + 1), |s| < 0.172; the series to s^11 is exact to float rounding. */
static inline float log_open(float u) {
    uint32_t bits;
    memcpy(&bits, &u, 4);
    int32_t e = (int32_t)(bits >> 23) - 127;
    uint32_t mbits = (bits & 0x7FFFFFu) | 0x3F800000u;
    float m;
    memcpy(&m, &mbits, 4);
    int big = m > 1.41421356f;
    m = big ? 0.5f * m : m;
    e = big ? e + 1 : e;
    float s = (m - 1.0f) / (m + 1.0f);
    float s2 = s * s;
    float p = 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return 2.0f * s * p + (float)e * 0.693147180559945f;
}

/* sin and cos of the angle 2 pi x / 2^32: the top two bits pick the quadrant, the
 * next 24 the angle a in (0, pi/2), folded to (0, pi/4] where the Taylor series
 * to a^11 (sin) and a^12 (cos) are exact to float rounding. */
static inline void sincos_turn(uint32_t x, float *sin_out, float *cos_out) {
    uint32_t q = x >> 30;
    float t = ((float)((x >> 6) & 0xFFFFFFu) + 0.5f) * (1.0f / 16777216.0f);
    int fold = t > 0.5f;
    float a = (fold ? 1.0f - t : t) * 1.57079632679489662f;
    float a2 = a * a;
    float sp = -1.0f / 39916800.0f;
    sp = sp * a2 + 1.0f / 362880.0f;
    sp = sp * a2 - 1.0f / 5040.0f;
    sp = sp * a2 + 1.0f / 120.0f;
    sp = sp * a2 - 1.0f / 6.0f;
    float sn = a + a * a2 * sp;
    float cp = 1.0f / 479001600.0f;
    cp = cp * a2 - 1.0f / 3628800.0f;
    cp = cp * a2 + 1.0f / 40320.0f;
    cp = cp * a2 - 1.0f / 720.0f;
    cp = cp * a2 + 1.0f / 24.0f;
    cp = cp * a2 - 0.5f;
    float cs = 1.0f + a2 * cp;
    float s0 = fold ? cs : sn, c0 = fold ? sn : cs;
    *sin_out = q == 0 ? s0 : q == 1 ? c0 : q == 2 ? -s0 : -c0;
    *cos_out = q == 0 ? c0 : q == 1 ? -s0 : q == 2 ? -c0 : s0;
}

static inline void philox4x32_10(uint32_t c0, uint32_t c1, uint32_t k0, uint32_t k1,
                                 uint32_t out[4]) {
    uint32_t c2 = 0, c3 = 0;
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* The four words of counter (c0, c1, 0, 0) under the key: for known-answer tests */
void rbd_philox_words(uint64_t key, uint32_t c0, uint32_t c1, uint32_t *out) {
    philox4x32_10(c0, c1, (uint32_t)key, (uint32_t)(key >> 32), out);
}

/* Box-Muller of one counter's four words into out[0..3] */
static inline void box_muller4(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3,
                               float *out) {
    float r0 = __builtin_sqrtf(-2.0f * log_open(unit_open(w0)));
    float r1 = __builtin_sqrtf(-2.0f * log_open(unit_open(w2)));
    float s0, c0, s1, c1;
    sincos_turn(w1, &s0, &c0);
    sincos_turn(w3, &s1, &c1);
    out[0] = r0 * c0;
    out[1] = r0 * s0;
    out[2] = r1 * c1;
    out[3] = r1 * s1;
}

/* BLOCK normals of row `row`, starting at element 4 * first: any instruction set */
CLONES
static void normals_block_generic(uint32_t k0, uint32_t k1, uint32_t row, uint32_t first,
                                  float *out) {
    for (int i = 0; i < BLOCK / 4; i++) {
        uint32_t w[4];
        philox4x32_10(first + (uint32_t)i, row, k0, k1, w);
        box_muller4(w[0], w[1], w[2], w[3], out + 4 * i);
    }
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define HAVE_AVX512_PATH 1
#define AVX512 __attribute__((target("avx512f")))

/* hi and lo 32 bits of the 16 products m * a (m < 2^32 in each 64-bit lane of m):
 * vpmuludq multiplies the even 32-bit lanes, the odd ones after a shift */
AVX512 static inline void mulhilo16(__m512i a, __m512i m, __m512i *lo, __m512i *hi) {
    __m512i even = _mm512_mul_epu32(a, m);
    __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
    *lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
    *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
}

/* The same BLOCK normals, bit for bit: Philox of 64 counters as 4 x 16 lanes with
 * explicit 32 x 32 -> 64 multiplies (the compiler's vectorisation of the scalar round
 * widens every lane to 64 bits and is 3x slower), then Box-Muller as above. */
AVX512 static void normals_block_avx512(uint32_t k0, uint32_t k1, uint32_t row,
                                        uint32_t first, float *out) {
    const __m512i m0 = _mm512_set1_epi64(0xD2511F53u), m1 = _mm512_set1_epi64(0xCD9E8D57u);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512i c0[4], c1[4], c2[4], c3[4];
    for (int b = 0; b < 4; b++) {
        c0[b] = _mm512_add_epi32(_mm512_set1_epi32((int)(first + 16u * (uint32_t)b)), lane);
        c1[b] = _mm512_set1_epi32((int)row);
        c2[b] = _mm512_setzero_si512();
        c3[b] = c2[b];
    }
    for (int round = 0; round < 10; round++) {
        __m512i ka = _mm512_set1_epi32((int)k0), kb = _mm512_set1_epi32((int)k1);
        for (int b = 0; b < 4; b++) {
            __m512i lo0, hi0, lo1, hi1;
            mulhilo16(c0[b], m0, &lo0, &hi0);
            mulhilo16(c2[b], m1, &lo1, &hi1);
            c0[b] = _mm512_ternarylogic_epi32(hi1, c1[b], ka, 0x96); /* three-way xor */
            c2[b] = _mm512_ternarylogic_epi32(hi0, c3[b], kb, 0x96);
            c1[b] = lo1;
            c3[b] = lo0;
        }
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    uint32_t w[4][BLOCK / 4];
    for (int b = 0; b < 4; b++) {
        _mm512_storeu_si512(w[0] + 16 * b, c0[b]);
        _mm512_storeu_si512(w[1] + 16 * b, c1[b]);
        _mm512_storeu_si512(w[2] + 16 * b, c2[b]);
        _mm512_storeu_si512(w[3] + 16 * b, c3[b]);
    }
    for (int i = 0; i < BLOCK / 4; i++) box_muller4(w[0][i], w[1][i], w[2][i], w[3][i], out + 4 * i);
}
#endif

static int use_avx512 = -1; /* -1: not yet asked */

/* Whether the AVX-512 path runs: `enable` 0 turns it off (for tests that compare the
 * paths), 1 turns it on where the CPU has it, -1 only asks. */
int rbd_use_avx512(int enable) {
#ifdef HAVE_AVX512_PATH
    if (enable >= 0 || use_avx512 < 0)
        use_avx512 = enable != 0 && __builtin_cpu_supports("avx512f") ? 1 : 0;
    return use_avx512;
#else
    (void)enable;
    return 0;
#endif
}

/* BLOCK normals of row `row`, starting at element 4 * first */
static void normals_block(uint32_t k0, uint32_t k1, uint32_t row, uint32_t first,
                          float *out) {
#ifdef HAVE_AVX512_PATH
    if (use_avx512 < 0) rbd_use_avx512(1);
    if (use_avx512) {
        normals_block_avx512(k0, k1, row, first, out);
        return;
    }
#endif
    normals_block_generic(k0, k1, row, first, out);
}

CLONES
static void dot_lanes(const float *a, const float *b, int64_t n, double *acc) {
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += (double)a[i + l] * (double)b[i + l];
    for (int l = 0; i < n; i++, l++) acc[l] += (double)a[i] * (double)b[i];
}

CLONES
static void axpy(float alpha, const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

static double lanes_sum(const double *acc) {
    double total = 0.0;
    for (int l = 0; l < LANES; l++) total += acc[l];
    return total;
}

/* Row r block by block: `body` sees the block's normals, its start and length n. */
#define FOR_BLOCKS(size, body)                                               \
    for (int64_t start = 0; start < (size); start += BLOCK) {                \
        int64_t n = (size) - start < BLOCK ? (size) - start : BLOCK;         \
        normals_block(k0, k1, (uint32_t)r, (uint32_t)(start / 4), block);    \
        body                                                                 \
    }

/* out (rows x size, row-major) = the unnormalised directions */
void rbd_draw(uint64_t key, int64_t rows, int64_t size, float *out) {
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    float block[BLOCK];
    for (int64_t r = 0; r < rows; r++) {
        FOR_BLOCKS(size, memcpy(out + r * size + start, block, n * sizeof(float));)
    }
}

/* coords[r] = (phi_r . g) / norm */
void rbd_project(uint64_t key, int64_t rows, int64_t size, const float *g, double norm,
                 float *coords) {
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    float block[BLOCK];
    for (int64_t r = 0; r < rows; r++) {
        double acc[LANES] = {0};
        FOR_BLOCKS(size, dot_lanes(block, g + start, n, acc);)
        coords[r] = (float)(lanes_sum(acc) / norm);
    }
}

/* out += sum_r (coords[r] / norm) phi_r */
void rbd_expand(uint64_t key, int64_t rows, int64_t size, const float *coords,
                double norm, float *out) {
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    float block[BLOCK];
    for (int64_t r = 0; r < rows; r++) {
        float alpha = (float)(coords[r] / norm);
        FOR_BLOCKS(size, axpy(alpha, block, out + start, n);)
    }
}

/* Both at once, each row drawn once into `row` (size floats): the same numbers as
 * rbd_project then rbd_expand. Returns 0, or 1 if `row` is NULL. */
int rbd_project_expand(uint64_t key, int64_t rows, int64_t size, const float *g,
                       double norm, float *coords, float *out, float *row) {
    if (row == NULL) return 1;
    for (int64_t r = 0; r < rows; r++) {
        uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
        float block[BLOCK];
        double acc[LANES] = {0};
        FOR_BLOCKS(size, memcpy(row + start, block, n * sizeof(float));
                   dot_lanes(block, g + start, n, acc);)
        coords[r] = (float)(lanes_sum(acc) / norm);
        axpy((float)(coords[r] / norm), row, out, size);
    }
    return 0;
}
