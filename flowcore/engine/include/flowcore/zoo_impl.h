/* Body of the zoo for one SCALAR type; included by zoo.h only.
 * Signature of every function: see fc_eval_d / fc_eval_z in flowcore_abi.h. */
#define FC_ARGS const void *ctx, int64_t n, const SCALAR *x, const SCALAR *v, \
                SCALAR *E, SCALAR *g, SCALAR *H, SCALAR *T

/* E = 1/2 x^T A x + b^T x */
static int FC_NAME(quadratic)(FC_ARGS)
{
    const fc_quadratic_ctx *q = (const fc_quadratic_ctx *)ctx;
    const int64_t D = q->dim;
    for (int64_t i = 0; i < n; i++) {
        const SCALAR *xi = x + i * D;
        SCALAR e = 0;
        for (int64_t r = 0; r < D; r++) {
            SCALAR ax = 0;
            for (int64_t c = 0; c < D; c++) ax += q->A[r * D + c] * xi[c];
            if (E) e += xi[r] * (0.5 * ax + q->b[r]);
            if (g) g[i * D + r] = ax + q->b[r];
            if (H) for (int64_t c = 0; c < D; c++) H[(i * D + r) * D + c] = q->A[r * D + c];
            if (T) T[i * D + r] = 0;
        }
        if (E) E[i] = e;
    }
    return 0;
}

/* E = (x^2 - 1)^2 + y^2 */
static int FC_NAME(double_well)(FC_ARGS)
{
    (void)ctx;
    for (int64_t i = 0; i < n; i++) {
        const SCALAR a = x[2 * i], b = x[2 * i + 1], r = a * a - 1;
        if (E) E[i] = r * r + b * b;
        if (g) { g[2 * i] = 4 * a * r; g[2 * i + 1] = 2 * b; }
        if (H) { SCALAR *h = H + 4 * i; h[0] = 12 * a * a - 4; h[1] = h[2] = 0; h[3] = 2; }
        if (T) { const SCALAR va = v[2 * i]; T[2 * i] = 24 * a * va * va; T[2 * i + 1] = 0; }
    }
    return 0;
}

/* E = w^4 - 2 w^2 */
static int FC_NAME(quartic_1d)(FC_ARGS)
{
    (void)ctx;
    for (int64_t i = 0; i < n; i++) {
        const SCALAR w = x[i], w2 = w * w;
        if (E) E[i] = w2 * (w2 - 2);
        if (g) g[i] = 4 * w * (w2 - 1);
        if (H) H[i] = 12 * w2 - 4;
        if (T) T[i] = 24 * w * v[i] * v[i];
    }
    return 0;
}

/* E = x^2 + kappa y^2;  ctx -> double kappa */
static int FC_NAME(elongated_bowl)(FC_ARGS)
{
    const double kappa = *(const double *)ctx;
    for (int64_t i = 0; i < n; i++) {
        const SCALAR a = x[2 * i], b = x[2 * i + 1];
        if (E) E[i] = a * a + kappa * b * b;
        if (g) { g[2 * i] = 2 * a; g[2 * i + 1] = 2 * kappa * b; }
        if (H) { SCALAR *h = H + 4 * i; h[0] = 2; h[1] = h[2] = 0; h[3] = 2 * kappa; }
        if (T) { T[2 * i] = 0; T[2 * i + 1] = 0; }
    }
    return 0;
}

/* E = (a - x)^2 + b (y - x^2)^2;  ctx -> double[2] {a, b} */
static int FC_NAME(rosenbrock)(FC_ARGS)
{
    const double pa = ((const double *)ctx)[0], pb = ((const double *)ctx)[1];
    for (int64_t i = 0; i < n; i++) {
        const SCALAR s = x[2 * i], t = x[2 * i + 1], u = pa - s, w = t - s * s;
        if (E) E[i] = u * u + pb * w * w;
        if (g) { g[2 * i] = -2 * u - 4 * pb * s * w; g[2 * i + 1] = 2 * pb * w; }
        if (H) {
            SCALAR *h = H + 4 * i;
            h[0] = 2 - 4 * pb * t + 12 * pb * s * s;
            h[1] = h[2] = -4 * pb * s;
            h[3] = 2 * pb;
        }
        if (T) {
            const SCALAR vs = v[2 * i], vt = v[2 * i + 1];
            T[2 * i] = 24 * pb * s * vs * vs - 8 * pb * vs * vt;
            T[2 * i + 1] = -4 * pb * vs * vs;
        }
    }
    return 0;
}

/* E = (a^2 + b^2 - 1)^2 + a b */
static int FC_NAME(ring_saddle)(FC_ARGS)
{
    (void)ctx;
    for (int64_t i = 0; i < n; i++) {
        const SCALAR a = x[2 * i], b = x[2 * i + 1], r = a * a + b * b - 1;
        if (E) E[i] = r * r + a * b;
        if (g) { g[2 * i] = 4 * a * r + b; g[2 * i + 1] = 4 * b * r + a; }
        if (H) {
            SCALAR *h = H + 4 * i;
            h[0] = 4 * r + 8 * a * a;
            h[1] = h[2] = 8 * a * b + 1;
            h[3] = 4 * r + 8 * b * b;
        }
        if (T) {
            const SCALAR va = v[2 * i], vb = v[2 * i + 1];
            T[2 * i] = 24 * a * va * va + 16 * b * va * vb + 8 * a * vb * vb;
            T[2 * i + 1] = 8 * b * va * va + 16 * a * va * vb + 24 * b * vb * vb;
        }
    }
    return 0;
}

#undef FC_ARGS
