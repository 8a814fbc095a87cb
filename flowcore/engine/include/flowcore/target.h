/* One kernel source, two targets: the few names that differ between the host C compiler
 * (C99 complex, OpenMP) and NVRTC (CUDA C++, libcu++'s cuda::std::complex).
 *
 *   fc_z            complex128 scalar             FC_FN      a kernel helper (inlined)
 *                                                 FC_CALL    a large one (not inlined on CUDA)
 *                                                 FC_CONST   a constant table
 *   fc_cmplx(r, i)  build one                     fc_re, fc_im, fc_conj, fc_cabs, fc_clog, fc_csqrt
 *   fc_as_bits(x), fc_from_bits(b)   a double's IEEE bits (fc_bits64) and back
 *   FC_PI           pi (M_PI is not in NVRTC)
 *
 * Arithmetic (+ - * /, double * fc_z) is written the same on both. Generated expression code
 * calls exp, log, sin, ... by their plain names: <tgmath.h> makes them type-generic in C, and
 * the cuda::std overloads are brought into scope for CUDA.
 */
#ifndef FLOWCORE_TARGET_H
#define FLOWCORE_TARGET_H

#if defined(__CUDACC_RTC__) || defined(__CUDACC__)
#define FC_CUDA 1
#include <cuda/std/complex>
typedef cuda::std::complex<double> fc_z;
#define FC_FN static __device__ __forceinline__
#define FC_CALL static __device__ __noinline__   /* large: one copy, called (NVRTC time) */
#define FC_INLINE static __device__ __forceinline__
#define FC_CONST static __constant__ const
typedef long long fc_int64;
FC_FN fc_z fc_cmplx(double re, double im) { return fc_z(re, im); }
FC_FN double fc_re(fc_z z) { return z.real(); }
FC_FN double fc_im(fc_z z) { return z.imag(); }
FC_FN fc_z fc_conj(fc_z z) { return cuda::std::conj(z); }
FC_FN double fc_cabs(fc_z z) { return cuda::std::abs(z); }
FC_FN fc_z fc_clog(fc_z z) { return cuda::std::log(z); }
FC_FN fc_z fc_csqrt(fc_z z) { return cuda::std::sqrt(z); }
/* complex overloads beside CUDA's real exp, log, ... (a using-declaration would clash with them) */
#define FC_COMPLEX_FN(name) FC_FN fc_z name(fc_z z) { return cuda::std::name(z); }
FC_COMPLEX_FN(exp) FC_COMPLEX_FN(log) FC_COMPLEX_FN(sqrt) FC_COMPLEX_FN(sin) FC_COMPLEX_FN(cos)
FC_COMPLEX_FN(tan) FC_COMPLEX_FN(sinh) FC_COMPLEX_FN(cosh) FC_COMPLEX_FN(tanh) FC_COMPLEX_FN(asin)
FC_COMPLEX_FN(acos) FC_COMPLEX_FN(atan) FC_COMPLEX_FN(asinh) FC_COMPLEX_FN(acosh) FC_COMPLEX_FN(atanh)
#undef FC_COMPLEX_FN
FC_FN fc_z pow(fc_z z, double p) { return cuda::std::pow(z, p); }
typedef unsigned long long fc_bits64;
FC_FN fc_bits64 fc_as_bits(double x) { return (fc_bits64)__double_as_longlong(x); }
FC_FN double fc_from_bits(fc_bits64 b) { return __longlong_as_double((long long)b); }
FC_FN fc_z pow(fc_z z, fc_z p) { return cuda::std::pow(z, p); }
#else
#include <complex.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <tgmath.h>    /* sin(z), sqrt(z), pow(z, p) of a complex z: csin, csqrt, cpow, not the
                          real function of its real part (C converts silently) */
typedef double complex fc_z;
#define FC_FN static inline
#define FC_CALL static inline
#define FC_INLINE static inline __attribute__((always_inline))   /* a loop over lanes' body: inlined, vectorised */
#define FC_CONST static const
typedef int64_t fc_int64;
typedef uint64_t fc_bits64;
FC_FN fc_bits64 fc_as_bits(double x) { fc_bits64 b; memcpy(&b, &x, sizeof b); return b; }
FC_FN double fc_from_bits(fc_bits64 b) { double x; memcpy(&x, &b, sizeof x); return x; }
#ifndef CMPLX
#define CMPLX(x, y) ((double complex)((double)(x) + _Complex_I * (double)(y)))
#endif
FC_FN fc_z fc_cmplx(double re, double im) { return CMPLX(re, im); }
FC_FN double fc_re(fc_z z) { return creal(z); }
FC_FN double fc_im(fc_z z) { return cimag(z); }
FC_FN fc_z fc_conj(fc_z z) { return conj(z); }
/* |z| and log z without glibc's hypot (a third of a PF evaluation's time): from re² + im² where
   that neither overflows nor underflows (error ≤ 1.5 ulp against < 1 ulp), else the library's */
#define FC_SAFE_NORM2(s) ((s) > 1e-290 && (s) < 1e290)
FC_FN double fc_cabs(fc_z z)
{
    const double s = creal(z) * creal(z) + cimag(z) * cimag(z);
    return FC_SAFE_NORM2(s) ? sqrt(s) : cabs(z);
}
FC_FN fc_z fc_clog(fc_z z)
{
    const double s = creal(z) * creal(z) + cimag(z) * cimag(z);
    return FC_SAFE_NORM2(s) ? CMPLX(0.5 * log(s), atan2(cimag(z), creal(z))) : clog(z);
}
/* the principal square root (cut on the negative axis, conj-symmetric: sqrt(-4 - 0i) = -2i),
   with fc_cabs for |z|; csqrt's own hypot otherwise dominates an eigenvalue */
FC_FN fc_z fc_csqrt(fc_z z)
{
    const double x = creal(z), y = cimag(z), r = fc_cabs(z);
    if (!(r > 0) || !isfinite(r)) return csqrt(z);      /* zero, inf, nan: the library's rules */
    const double t = sqrt(0.5 * (fabs(x) + r));
    return x >= 0 ? CMPLX(t, y / (2 * t)) : CMPLX(fabs(y) / (2 * t), copysign(t, y));
}
#endif

#define FC_PI 3.14159265358979323846264338327950288

/* FC_W: the trajectories a thread advances together, in structure-of-arrays layout (coordinate
   q of lane l at [q * FC_W + l]); FC_SIMD before a loop over the lanes asks the compiler to
   vectorise it. Unless the generator defines it (tests compare widths): 32 where the compiler has
   AVX (4 registers of 8 doubles with AVX-512, 8 of 4 with AVX2: independent chains of dependent
   operations that fill the pipeline; on the GD basin benchmark W = 8, 16, 32, 64 took 0.33,
   0.26, 0.23, 0.24 s with AVX-512 and 0.68, 0.58, 0.53, 0.67 s with AVX2 alone), 16 with SSE2 or
   NEON (not measured), 1 on CUDA, where a thread is a trajectory, and without vectors. */
#ifndef FC_W
#if defined(FC_CUDA)
#define FC_W 1
#elif defined(__AVX__)
#define FC_W 32
#elif defined(__SSE2__) || defined(__ARM_NEON)
#define FC_W 16
#else
#define FC_W 1
#endif
#endif
#define FC_PRAGMA(x) _Pragma(#x)
/* a short loop over coordinates inside a loop over lanes: unrolled before the vectoriser sees
   the lane loop, which it cannot vectorise around inner loops */
#if defined(FC_CUDA)
#define FC_UNROLL
#else
#define FC_UNROLL _Pragma("GCC unroll 16")
#endif
#if defined(FC_CUDA) || FC_W == 1
#define FC_SIMD
#define FC_SIMD_ANY(v)
#else
#define FC_SIMD _Pragma("omp simd")
#define FC_SIMD_ANY(v) FC_PRAGMA(omp simd reduction(|:v))    /* v |= ... in the loop */
#endif

/* Quiet comparisons for code in loops over lanes: a < b may raise FE_INVALID on a NaN, so GCC
   does not if-convert it (-ftrapping-math) and a loop holding one under a condition does not
   vectorise; isless and its kin never raise. On CUDA the plain operators (a thread a lane). */
#if defined(FC_CUDA)
#define fc_lt(a, b) ((a) < (b))
#define fc_le(a, b) ((a) <= (b))
#define fc_gt(a, b) ((a) > (b))
#define fc_ge(a, b) ((a) >= (b))
#else
#define fc_lt(a, b) isless(a, b)
#define fc_le(a, b) islessequal(a, b)
#define fc_gt(a, b) isgreater(a, b)
#define fc_ge(a, b) isgreaterequal(a, b)
#endif

/* log, log1p and atan2 for code that runs in a loop over lanes (the diagonal PF's fc_rhs_block):
   glibc's vector versions (libmvec: _ZGVeN8v_log1p, ...) where the generator found them (FC_MVEC,
   linked with -lmvec) and the kernel has lanes. GCC 12 vectorises a loop that calls them only if
   it has no branch to if-convert, so such a loop holds the calls alone. They are declared under
   the scalar functions' symbols but their own names, so only these calls are vectorised — a
   loss's own log1p or atan2 stays glibc's scalar function. libmvec's error bound is 4 ulp: such a
   kernel's lanes round differently from W = 1 in the last bits (docs/kernels.md). */
#if !defined(FC_CUDA) && defined(FC_MVEC) && FC_W > 1
#pragma omp declare simd notinbranch
double fc_vlog1p(double) __asm__("log1p");
#pragma omp declare simd notinbranch
double fc_vatan2(double, double) __asm__("atan2");
#pragma omp declare simd notinbranch
double fc_vlog(double) __asm__("log");
#else
FC_FN double fc_vlog(double x) { return log(x); }
FC_FN double fc_vlog1p(double x) { return log1p(x); }
FC_FN double fc_vatan2(double y, double x) { return atan2(y, x); }
#endif

#endif
