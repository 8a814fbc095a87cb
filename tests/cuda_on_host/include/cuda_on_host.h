/* The CUDA dialect of flowcore's kernels, compiled by the host C++ compiler so that their
 * CUDA-only text (the __global__ entry points, cuda::std::complex, __umul64hi, __double_as_longlong, the argument
 * order the Python side launches with) runs in CI, which has no GPU. Pre-included (-include)
 * with -D__CUDACC_RTC__, before the kernel source: the standard headers come first, so that
 * the attribute names defined below never meet libstdc++'s own __attribute__((__noinline__)).
 *
 * A launch is a loop over (block, thread) on one host thread: fc_emu_index sets the indices,
 * then the entry point runs once. Semantics differ from a GPU only where IEEE arithmetic is
 * not fixed: contraction to FMA, and the library's exp/log/sin (not CUDA's libdevice).
 */
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstring>
#include <math.h>

namespace cuda { namespace std = ::std; }

#define __global__
#define __device__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __constant__

struct fc_emu_dim3 { unsigned x, y, z; };
static fc_emu_dim3 blockIdx, blockDim, threadIdx;

extern "C" void fc_emu_index(unsigned block, unsigned block_dim, unsigned thread)
{
    blockIdx.x = block;
    blockDim.x = block_dim;
    threadIdx.x = thread;
}

static inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b)
{
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}

static inline long long __double_as_longlong(double x)
{
    long long b;
    memcpy(&b, &x, sizeof b);
    return b;
}

static inline double __longlong_as_double(long long b)
{
    double x;
    memcpy(&x, &b, sizeof x);
    return x;
}
