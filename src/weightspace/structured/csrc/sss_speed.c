/*
 * Time per matrix-vector product of a dense layer (y = b + W u) and of an SSS layer
 * (the causal and anticausal stage recursions of a sequentially semiseparable matrix),
 * both in single precision on one thread.
 *
 * Usage: sss_speed DESCRIPTION REPEATS ITERATIONS WARMUP [TOLERANCE [LAYERS]]
 *
 * DESCRIPTION is written by weightspace.structured.cspeed.  It is a sequence of records, each a
 * header line followed by raw data:
 *
 *     line 1:   "weightspace-sss-speed 1 le\n"            (format name, version, byte order)
 *     record:   "<name> <f32|i32> <rows> <cols>\n" then rows*cols little-endian 4-byte values
 *     last:     "end\n"
 *
 * Records are looked up by their exact name; duplicates, unknown types, truncated data and
 * shapes that do not fit the stage sizes are errors.  Records read:
 *
 *     dense_W (k x n), dense_b (1 x k), dense_u (1 x n), dense_y (1 x k: expected b + W u)
 *     sss_dims_in, sss_dims_out (1 x K, i32), sss_causal_dims, sss_anticausal_dims (1 x K+1, i32)
 *     A_i, B_i, C_i, D_i, E_i, F_i, G_i for i = 0..K-1 (shapes as in weightspace.structured.sss)
 *     sss_b (1 x p), sss_u (1 x m), sss_y (1 x p: expected output of the SSS layer)
 *
 * Before timing, both layers are evaluated once on their input and compared with the expected
 * outputs; a difference above TOLERANCE (absolute, default 1e-3) stops the program with exit
 * code 3.  Each of ITERATIONS iterations runs WARMUP untimed products and then times REPEATS
 * products one by one with clock_gettime(CLOCK_MONOTONIC), for the dense and then the SSS layer
 * (LAYERS: "both", the default, "dense" or "sss" times only that layer; both are always checked).
 * The result is one JSON line on stdout: per layer and iteration the median and the mean time
 * per product in seconds (empty lists for a layer not timed), plus sizes, flop counts (two per
 * stored weight: one multiply, one add; bias additions not counted) and the checksum errors.
 * Exit codes: 0 success, 1 usage, 2 bad description, 3 checksum mismatch, 4 out of memory.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FORMAT_LINE "weightspace-sss-speed 1 le"
#define MAX_NAME 64
#define MAX_VALUES (1L << 28)

enum { TYPE_F32 = 1, TYPE_I32 = 2 };

typedef struct {
    char name[MAX_NAME];
    int type;
    long rows, cols;
    void *data;
} Record;

typedef struct {
    Record *items;
    long count, capacity;
    const char *path;
} Description;

typedef struct {
    long rows, cols;
    const float *W, *b;
} Dense;

typedef struct {
    long n_stages, n_in, n_out, max_state;
    const int32_t *dims_in, *dims_out, *causal, *anticausal;
    long *in_offset, *out_offset;
    const float **A, **B, **C, **D, **E, **F, **G;
    const float *b;
    float *x, *x_next, *z, *z_next;
} Sss;

static void fail(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

static void fail(int code, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    fputs("sss_speed: error: ", stderr);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
    exit(code);
}

static void *checked_malloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) fail(4, "out of memory (%zu bytes)", bytes);
    return p;
}

/* ------------------------------------------------------------------------------------------ */
/* reading the description                                                                    */

static int host_is_little_endian(void) {
    const uint32_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

static int valid_name(const char *name) {
    if (!*name) return 0;
    for (const char *c = name; *c; ++c) {
        int ok = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_';
        if (!ok) return 0;
    }
    return 1;
}

static void read_line(FILE *f, char *buf, size_t size, const char *path, const char *what) {
    if (!fgets(buf, (int)size, f)) fail(2, "%s: unexpected end of file while reading %s", path, what);
    size_t len = strlen(buf);
    if (len == 0 || buf[len - 1] != '\n') fail(2, "%s: %s is not a complete header line", path, what);
    buf[len - 1] = '\0';
}

static Description read_description(const char *path) {
    Description d = {NULL, 0, 0, path};
    FILE *f = fopen(path, "rb");
    if (!f) fail(2, "cannot open description %s: %s", path, strerror(errno));
    char line[256];
    read_line(f, line, sizeof line, path, "the format line");
    if (strcmp(line, FORMAT_LINE) != 0)
        fail(2, "%s: not a description of format '%s' (first line '%s')", path, FORMAT_LINE, line);
    if (!host_is_little_endian()) fail(2, "this program reads little-endian descriptions only");
    for (;;) {
        read_line(f, line, sizeof line, path, "a record header (missing 'end' line?)");
        if (strcmp(line, "end") == 0) break;
        char name[MAX_NAME + 1], type[8], extra[2];
        long rows, cols;
        int n = sscanf(line, "%64s %7s %ld %ld %1s", name, type, &rows, &cols, extra);
        if (n != 4) fail(2, "%s: malformed record header '%s' (want '<name> <f32|i32> <rows> <cols>')", path, line);
        if (strlen(name) >= MAX_NAME || !valid_name(name)) fail(2, "%s: bad record name '%s'", path, name);
        int t = strcmp(type, "f32") == 0 ? TYPE_F32 : strcmp(type, "i32") == 0 ? TYPE_I32 : 0;
        if (!t) fail(2, "%s: record '%s' has unknown type '%s'", path, name, type);
        if (rows < 0 || cols < 0 || (cols > 0 && rows > MAX_VALUES / cols))
            fail(2, "%s: record '%s' has a bad shape %ld x %ld", path, name, rows, cols);
        for (long i = 0; i < d.count; ++i)
            if (strcmp(d.items[i].name, name) == 0) fail(2, "%s: record '%s' appears twice", path, name);
        if (d.count == d.capacity) {
            d.capacity = d.capacity ? 2 * d.capacity : 64;
            Record *grown = realloc(d.items, (size_t)d.capacity * sizeof *grown);
            if (!grown) fail(4, "out of memory reading %s", path);
            d.items = grown;
        }
        Record *r = &d.items[d.count++];
        strcpy(r->name, name);
        r->type = t;
        r->rows = rows;
        r->cols = cols;
        size_t n_values = (size_t)rows * (size_t)cols;
        r->data = checked_malloc(n_values * 4);
        if (fread(r->data, 4, n_values, f) != n_values)
            fail(2, "%s: record '%s' is truncated (expected %zu values)", path, name, n_values);
    }
    if (fgetc(f) != EOF) fail(2, "%s: data after the 'end' line", path);
    fclose(f);
    return d;
}

static const Record *find(const Description *d, const char *name, int type, long rows, long cols) {
    for (long i = 0; i < d->count; ++i) {
        const Record *r = &d->items[i];
        if (strcmp(r->name, name) != 0) continue;
        if (r->type != type)
            fail(2, "%s: record '%s' has type %s, expected %s", d->path, name,
                 r->type == TYPE_F32 ? "f32" : "i32", type == TYPE_F32 ? "f32" : "i32");
        if ((rows >= 0 && r->rows != rows) || (cols >= 0 && r->cols != cols))
            fail(2, "%s: record '%s' has shape %ld x %ld, expected %ld x %ld", d->path, name, r->rows, r->cols,
                 rows, cols);
        return r;
    }
    fail(2, "%s: record '%s' is missing", d->path, name);
}

static const float *vector(const Description *d, const char *name, long n) {
    return find(d, name, TYPE_F32, 1, n)->data;
}

static Dense read_dense(const Description *d) {
    const Record *w = find(d, "dense_W", TYPE_F32, -1, -1);
    Dense dense = {w->rows, w->cols, w->data, vector(d, "dense_b", w->rows)};
    return dense;
}

static const float *stage_matrix(const Description *d, char letter, long stage, long rows, long cols) {
    char name[MAX_NAME];
    snprintf(name, sizeof name, "%c_%ld", letter, stage);
    return find(d, name, TYPE_F32, rows, cols)->data;
}

static Sss read_sss(const Description *d) {
    Sss s;
    memset(&s, 0, sizeof s);
    const Record *in = find(d, "sss_dims_in", TYPE_I32, 1, -1);
    long K = s.n_stages = in->cols;
    s.dims_in = in->data;
    s.dims_out = find(d, "sss_dims_out", TYPE_I32, 1, K)->data;
    s.causal = find(d, "sss_causal_dims", TYPE_I32, 1, K + 1)->data;
    s.anticausal = find(d, "sss_anticausal_dims", TYPE_I32, 1, K + 1)->data;
    if (s.causal[0] || s.causal[K] || s.anticausal[0] || s.anticausal[K])
        fail(2, "%s: the states before the first and after the last stage must be empty", d->path);
    s.in_offset = checked_malloc((size_t)(K + 1) * sizeof(long));
    s.out_offset = checked_malloc((size_t)(K + 1) * sizeof(long));
    s.in_offset[0] = s.out_offset[0] = 0;
    for (long k = 0; k < K; ++k) {
        if (s.dims_in[k] < 0 || s.dims_out[k] < 0) fail(2, "%s: negative stage size at stage %ld", d->path, k);
        s.in_offset[k + 1] = s.in_offset[k] + s.dims_in[k];
        s.out_offset[k + 1] = s.out_offset[k] + s.dims_out[k];
    }
    for (long k = 0; k <= K; ++k) {
        if (s.causal[k] < 0 || s.anticausal[k] < 0) fail(2, "%s: negative state size at boundary %ld", d->path, k);
        if (s.causal[k] > s.max_state) s.max_state = s.causal[k];
        if (s.anticausal[k] > s.max_state) s.max_state = s.anticausal[k];
    }
    s.n_in = s.in_offset[K];
    s.n_out = s.out_offset[K];
    const float ***lists[7] = {&s.A, &s.B, &s.C, &s.D, &s.E, &s.F, &s.G};
    for (int i = 0; i < 7; ++i) *lists[i] = checked_malloc((size_t)(K ? K : 1) * sizeof(float *));
    for (long k = 0; k < K; ++k) {
        long m = s.dims_in[k], p = s.dims_out[k];
        long r = s.causal[k], r1 = s.causal[k + 1], a = s.anticausal[k], a1 = s.anticausal[k + 1];
        s.A[k] = stage_matrix(d, 'A', k, r1, r);
        s.B[k] = stage_matrix(d, 'B', k, r1, m);
        s.C[k] = stage_matrix(d, 'C', k, p, r);
        s.D[k] = stage_matrix(d, 'D', k, p, m);
        s.E[k] = stage_matrix(d, 'E', k, a, a1);
        s.F[k] = stage_matrix(d, 'F', k, a, m);
        s.G[k] = stage_matrix(d, 'G', k, p, a1);
    }
    s.b = vector(d, "sss_b", s.n_out);
    size_t state = (size_t)(s.max_state ? s.max_state : 1) * sizeof(float);
    s.x = checked_malloc(state);
    s.x_next = checked_malloc(state);
    s.z = checked_malloc(state);
    s.z_next = checked_malloc(state);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* the two layers                                                                             */

__attribute__((noinline)) static void dense_matvec(const Dense *L, const float *u, float *y) {
    for (long i = 0; i < L->rows; ++i) {
        const float *w = L->W + i * L->cols;
        float acc = L->b[i];
        for (long j = 0; j < L->cols; ++j) acc += w[j] * u[j];
        y[i] = acc;
    }
}

/* out[i] = sum_j M[i][j] v[j] + sum_j N[i][j] w[j] (M: rows x nv, N: rows x nw; either may be empty) */
static inline void two_products(long rows, const float *M, const float *v, long nv, const float *N,
                                const float *w, long nw, float *out) {
    for (long i = 0; i < rows; ++i) {
        float acc = 0.0f;
        const float *mi = M + i * nv, *ni = N + i * nw;
        for (long j = 0; j < nv; ++j) acc += mi[j] * v[j];
        for (long j = 0; j < nw; ++j) acc += ni[j] * w[j];
        out[i] = acc;
    }
}

__attribute__((noinline)) static void sss_matvec(Sss *S, const float *u, float *y) {
    const long K = S->n_stages;
    for (long i = 0; i < S->n_out; ++i) y[i] = S->b[i];
    /* causal, forward: y_k += D_k u_k + C_k x_k;  x_{k+1} = A_k x_k + B_k u_k */
    for (long k = 0; k < K; ++k) {
        const long m = S->dims_in[k], p = S->dims_out[k], r = S->causal[k], r1 = S->causal[k + 1];
        const float *uk = u + S->in_offset[k];
        float *yk = y + S->out_offset[k];
        for (long i = 0; i < p; ++i) {
            float acc = 0.0f;
            const float *di = S->D[k] + i * m, *ci = S->C[k] + i * r;
            for (long j = 0; j < m; ++j) acc += di[j] * uk[j];
            for (long j = 0; j < r; ++j) acc += ci[j] * S->x[j];
            yk[i] += acc;
        }
        two_products(r1, S->A[k], S->x, r, S->B[k], uk, m, S->x_next);
        float *t = S->x; S->x = S->x_next; S->x_next = t;
    }
    /* anticausal, backward: y_k += G_k z_{k+1};  z_k = E_k z_{k+1} + F_k u_k */
    for (long k = K - 1; k >= 0; --k) {
        const long m = S->dims_in[k], p = S->dims_out[k], a = S->anticausal[k], a1 = S->anticausal[k + 1];
        const float *uk = u + S->in_offset[k];
        float *yk = y + S->out_offset[k];
        for (long i = 0; i < p; ++i) {
            float acc = 0.0f;
            const float *gi = S->G[k] + i * a1;
            for (long j = 0; j < a1; ++j) acc += gi[j] * S->z[j];
            yk[i] += acc;
        }
        two_products(a, S->E[k], S->z, a1, S->F[k], uk, m, S->z_next);
        float *t = S->z; S->z = S->z_next; S->z_next = t;
    }
}

static long sss_stored(const Sss *S) {
    long n = 0;
    for (long k = 0; k < S->n_stages; ++k) {
        long m = S->dims_in[k], p = S->dims_out[k], r = S->causal[k], r1 = S->causal[k + 1];
        long a = S->anticausal[k], a1 = S->anticausal[k + 1];
        n += r1 * r + r1 * m + p * r + p * m + a * a1 + a * m + p * a1;
    }
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* checks and timing                                                                          */

static double check(const char *layer, const float *y, const float *expected, long n, double tol) {
    double worst = 0.0;
    long where = -1;
    for (long i = 0; i < n; ++i) {
        double err = fabs((double)y[i] - (double)expected[i]);
        if (!(err <= worst)) { worst = err; where = i; } /* also catches NaN */
    }
    if (where >= 0 && !(worst <= tol))
        fail(3, "%s layer output differs from the Python checksum: |y[%ld] - expected| = %g > tolerance %g "
             "(y = %g, expected %g)", layer, where, worst, tol, (double)y[where], (double)expected[where]);
    return worst;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static volatile float sink;

typedef void (*Product)(void *layer, const float *u, float *y);
static void call_dense(void *layer, const float *u, float *y) { dense_matvec(layer, u, y); }
static void call_sss(void *layer, const float *u, float *y) { sss_matvec(layer, u, y); }

/* one iteration: warm-up, then `repeats` timed products; returns median and mean seconds */
static void time_layer(Product f, void *layer, const float *u, float *y, long n_out, long repeats, long warmup,
                       double *times, double *median, double *mean) {
    for (long i = 0; i < warmup; ++i) {
        f(layer, u, y);
        if (n_out) sink += y[i % n_out];
    }
    double total = 0.0;
    for (long i = 0; i < repeats; ++i) {
        double start = now();
        f(layer, u, y);
        double stop = now();
        if (n_out) sink += y[i % n_out];
        times[i] = stop - start;
        total += times[i];
    }
    qsort(times, (size_t)repeats, sizeof *times, compare_doubles);
    *median = repeats % 2 ? times[repeats / 2] : 0.5 * (times[repeats / 2 - 1] + times[repeats / 2]);
    *mean = total / (double)repeats;
}

static long positive_arg(const char *text, const char *what, long minimum) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || end == text || v < minimum) fail(1, "%s must be an integer >= %ld, got '%s'", what, minimum, text);
    return v;
}

static void print_list(const char *key, const double *values, long n) {
    printf("\"%s\": [", key);
    for (long i = 0; i < n; ++i) printf("%s%.6e", i ? ", " : "", values[i]);
    printf("]");
}

int main(int argc, char **argv) {
    if (argc < 5 || argc > 7) {
        fprintf(stderr, "usage: %s DESCRIPTION REPEATS ITERATIONS WARMUP [TOLERANCE [both|dense|sss]]\n", argv[0]);
        return 1;
    }
    long repeats = positive_arg(argv[2], "REPEATS", 1);
    long iterations = positive_arg(argv[3], "ITERATIONS", 1);
    long warmup = positive_arg(argv[4], "WARMUP", 0);
    double tol = 1e-3;
    int time_dense = 1, time_sss = 1;
    if (argc == 7) {
        if (strcmp(argv[6], "dense") == 0) time_sss = 0;
        else if (strcmp(argv[6], "sss") == 0) time_dense = 0;
        else if (strcmp(argv[6], "both") != 0) fail(1, "LAYERS must be both, dense or sss, got '%s'", argv[6]);
    }
    if (argc >= 6) {
        char *end;
        tol = strtod(argv[5], &end);
        if (*end || end == argv[5] || !(tol >= 0)) fail(1, "TOLERANCE must be a number >= 0, got '%s'", argv[5]);
    }

    Description desc = read_description(argv[1]);
    Dense dense = read_dense(&desc);
    Sss sss = read_sss(&desc);
    const float *dense_u = vector(&desc, "dense_u", dense.cols);
    const float *dense_expected = vector(&desc, "dense_y", dense.rows);
    const float *sss_u = vector(&desc, "sss_u", sss.n_in);
    const float *sss_expected = vector(&desc, "sss_y", sss.n_out);

    float *y_dense = checked_malloc((size_t)(dense.rows ? dense.rows : 1) * sizeof(float));
    float *y_sss = checked_malloc((size_t)(sss.n_out ? sss.n_out : 1) * sizeof(float));
    dense_matvec(&dense, dense_u, y_dense);
    double err_dense = check("dense", y_dense, dense_expected, dense.rows, tol);
    sss_matvec(&sss, sss_u, y_sss);
    double err_sss = check("SSS", y_sss, sss_expected, sss.n_out, tol);

    double *times = checked_malloc((size_t)repeats * sizeof(double));
    double *stats = checked_malloc((size_t)iterations * 4 * sizeof(double));
    double *dense_median = stats, *dense_mean = stats + iterations;
    double *sss_median = stats + 2 * iterations, *sss_mean = stats + 3 * iterations;
    for (long it = 0; it < iterations; ++it) {
        if (time_dense)
            time_layer(call_dense, &dense, dense_u, y_dense, dense.rows, repeats, warmup, times, &dense_median[it],
                       &dense_mean[it]);
        if (time_sss)
            time_layer(call_sss, &sss, sss_u, y_sss, sss.n_out, repeats, warmup, times, &sss_median[it],
                       &sss_mean[it]);
    }
    /* the outputs after timing must still be right (nothing was optimised away or overwritten) */
    check("dense", y_dense, dense_expected, dense.rows, tol);
    check("SSS", y_sss, sss_expected, sss.n_out, tol);

#ifdef __OPTIMIZE__
    const int optimised = 1;
#else
    const int optimised = 0;
#endif
    printf("{\"format\": \"weightspace-sss-speed-result 1\", \"optimised\": %s, \"clock\": \"CLOCK_MONOTONIC\", "
           "\"repeats\": %ld, \"iterations\": %ld, \"warmup\": %ld, \"tolerance\": %g, ",
           optimised ? "true" : "false", repeats, iterations, warmup, tol);
    printf("\"dense\": {\"rows\": %ld, \"cols\": %ld, \"flops\": %ld, \"max_abs_error\": %.3e, \"timed\": %s, ",
           dense.rows, dense.cols, 2 * dense.rows * dense.cols, err_dense, time_dense ? "true" : "false");
    print_list("median_s", dense_median, time_dense ? iterations : 0);
    printf(", ");
    print_list("mean_s", dense_mean, time_dense ? iterations : 0);
    printf("}, \"sss\": {\"rows\": %ld, \"cols\": %ld, \"stages\": %ld, \"max_state\": %ld, \"stored\": %ld, "
           "\"flops\": %ld, \"max_abs_error\": %.3e, \"timed\": %s, ", sss.n_out, sss.n_in, sss.n_stages,
           sss.max_state, sss_stored(&sss), 2 * sss_stored(&sss), err_sss, time_sss ? "true" : "false");
    print_list("median_s", sss_median, time_sss ? iterations : 0);
    printf(", ");
    print_list("mean_s", sss_mean, time_sss ? iterations : 0);
    printf("}}\n");
    return fflush(stdout) == 0 ? 0 : 1;
}
