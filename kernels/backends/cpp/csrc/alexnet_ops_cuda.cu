// CUDA kernels of the `cpp` backend extension (registered for the CUDA dispatch key).
//
// Same ops and semantics as the CPU kernels in alexnet_ops.cpp. Design (a plain, hand-written
// baseline; no fast-math, so pow() is the accurate one):
//   * relu_lrn forward/backward: one thread per (n, h, w) position walks the channels once, keeping
//     the ReLU outputs of the channel window (and, in backward, the per-channel terms of the second
//     window) in registers; the window size is a template parameter for sizes 3, 5, 7 and falls back
//     to direct sums from memory for other sizes. In NCHW, neighbouring threads read neighbouring w,
//     so each channel step is one coalesced load per warp.
//   * max_pool forward: one thread per output element, scanning its window (first max wins, NaN wins).
//   * max_pool backward: one thread per input element gathers the grads of the outputs whose
//     argmax offset points at it (deterministic, no atomics).
//   * relu_lrn_pool forward: one thread per output element computes the LRN of its window's pixels
//     (direct channel-window sums) and keeps the max, writing the pooled value and int8 offset.
//   * relu_lrn_pool backward: the relu_lrn backward column walk, where the grad of each LRN output is
//     gathered from the pooled grads whose offset points at that pixel.
// Values are accumulated in float (double for double inputs); all index arithmetic is int64.
#include <torch/library.h>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>
#include <limits>

#include "alexnet_ops.h"
#include "alexnet_ops_elementwise.h"

namespace alexnet_ext {
namespace {

constexpr int kThreads = 256;

inline unsigned int blocks_for(int64_t work) {
  const int64_t blocks = (work + kThreads - 1) / kThreads;
  TORCH_CHECK(blocks <= std::numeric_limits<int32_t>::max(), "alexnet_cpp_ext: tensor too large (", work,
              " work items)");
  return static_cast<unsigned int>(blocks);
}

__device__ __forceinline__ float dpow(float b, float e) { return powf(b, e); }
__device__ __forceinline__ double dpow(double b, double e) { return pow(b, e); }

// (n, c, h, w) of the element at linear position `idx` of a tensor contiguous in NCHW or NHWC order.
__device__ __forceinline__ void unravel(int64_t idx, bool channels_last, int64_t C, int64_t H, int64_t W,
                                        int64_t& n, int64_t& c, int64_t& h, int64_t& w) {
  // The index along the innermost dimension left in idx (of `extent` elements), taken off idx.
  const auto peel = [&idx](int64_t extent) {
    const int64_t i = idx % extent;
    idx /= extent;
    return i;
  };
  if (channels_last) {
    c = peel(C);
    w = peel(W);
    h = peel(H);
  } else {
    w = peel(W);
    h = peel(H);
    c = peel(C);
  }
  n = idx;
}

template <typename acc_t>
struct LrnArgs {
  acc_t alpha, beta, k;
  int64_t size;
};

// ReLU output of channel c of one column (x points at channel 0 of the column).
template <typename scalar_t, typename acc_t>
__device__ __forceinline__ acc_t load_a(const scalar_t* x, int64_t sC, int64_t c) {
  return relu(static_cast<acc_t>(x[c * sC]));
}

// d_c = k + alpha * sum of squares over the channel window of c, read directly from memory.
template <typename scalar_t, typename acc_t>
__device__ acc_t direct_denominator(const scalar_t* x, int64_t sC, int64_t C, int64_t c, const LrnArgs<acc_t>& p) {
  const int64_t half = p.size / 2;
  const int64_t lo = c - half < 0 ? 0 : c - half, hi = c + half > C - 1 ? C - 1 : c + half;
  acc_t sum = 0;
  for (int64_t j = lo; j <= hi; ++j) {
    const acc_t a = load_a<scalar_t, acc_t>(x, sC, j);
    sum += a * a;
  }
  return p.k + p.alpha * sum;
}

// ---------------------------------------------------------------------------------------------
// LRN forward / backward on one (n, h, w) column
// ---------------------------------------------------------------------------------------------

template <typename scalar_t, int S>
__device__ void lrn_forward_column(const scalar_t* x, scalar_t* y, int64_t sC, int64_t C,
                                   const LrnArgs<at::opmath_type<scalar_t>>& p) {
  using acc_t = at::opmath_type<scalar_t>;
  if constexpr (S > 0) {
    constexpr int H = S / 2;
    acc_t av[S];  // ReLU outputs of channels [i - 2H, i]; centre av[H] is channel m = i - H
#pragma unroll
    for (int s = 0; s < S; ++s) av[s] = acc_t(0);
    for (int64_t i = 0; i < C + H; ++i) {
#pragma unroll
      for (int s = 0; s < S - 1; ++s) av[s] = av[s + 1];
      av[S - 1] = i < C ? load_a<scalar_t, acc_t>(x, sC, i) : acc_t(0);
      const int64_t m = i - H;
      if (m >= 0) {
        acc_t sum = 0;
#pragma unroll
        for (int s = 0; s < S; ++s) sum += av[s] * av[s];
        y[m * sC] = static_cast<scalar_t>(av[H] * dpow(p.k + p.alpha * sum, -p.beta));
      }
    }
  } else {
    for (int64_t m = 0; m < C; ++m) {
      const acc_t d = direct_denominator<scalar_t, acc_t>(x, sC, C, m, p);
      y[m * sC] = static_cast<scalar_t>(load_a<scalar_t, acc_t>(x, sC, m) * dpow(d, -p.beta));
    }
  }
}

// grad_a_j = g_j d_j^-beta - 2 alpha beta a_j sum_{c in W(j)} g_c a_c d_c^(-beta-1), masked by a_j != 0.
// `load_g(c)` returns the gradient w.r.t. the LRN output of channel c of this column.
template <typename scalar_t, int S, typename GradLoader>
__device__ void lrn_backward_column(const scalar_t* x, scalar_t* gx, int64_t sC, int64_t C,
                                    const LrnArgs<at::opmath_type<scalar_t>>& p, const GradLoader& load_g) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t two_alpha_beta = acc_t(2) * p.alpha * p.beta;
  if constexpr (S > 0) {
    constexpr int H = S / 2;
    acc_t av[S];     // ReLU outputs of channels [i - 2H, i]
    acc_t t[S];      // g_c a_c d_c^(-beta-1) of channels [i - 3H, i - H]
    acc_t u[H + 1];  // g_c d_c^-beta of channels [i - 2H, i - H]
#pragma unroll
    for (int s = 0; s < S; ++s) av[s] = t[s] = acc_t(0);
#pragma unroll
    for (int s = 0; s <= H; ++s) u[s] = acc_t(0);
    for (int64_t i = 0; i < C + 2 * H; ++i) {
#pragma unroll
      for (int s = 0; s < S - 1; ++s) av[s] = av[s + 1];
      av[S - 1] = i < C ? load_a<scalar_t, acc_t>(x, sC, i) : acc_t(0);
      const int64_t m = i - H;  // channel whose denominator window [m - H, m + H] is complete
      acc_t t_new = 0, u_new = 0;
      if (m >= 0 && m < C) {
        acc_t sum = 0;
#pragma unroll
        for (int s = 0; s < S; ++s) sum += av[s] * av[s];
        const acc_t d = p.k + p.alpha * sum;
        u_new = load_g(m) * dpow(d, -p.beta);
        t_new = u_new * av[H] / d;
      }
#pragma unroll
      for (int s = 0; s < S - 1; ++s) t[s] = t[s + 1];
      t[S - 1] = t_new;
#pragma unroll
      for (int s = 0; s < H; ++s) u[s] = u[s + 1];
      u[H] = u_new;
      const int64_t j = i - 2 * H;  // output channel: its window [j - H, j + H] of t is complete
      if (j >= 0) {
        acc_t sum_t = 0;
#pragma unroll
        for (int s = 0; s < S; ++s) sum_t += t[s];
        const acc_t a = av[0];
        gx[j * sC] = static_cast<scalar_t>(a != acc_t(0) ? u[0] - two_alpha_beta * a * sum_t : acc_t(0));
      }
    }
  } else {
    const int64_t half = p.size / 2;
    for (int64_t j = 0; j < C; ++j) {
      const int64_t lo = j - half < 0 ? 0 : j - half, hi = j + half > C - 1 ? C - 1 : j + half;
      acc_t sum_t = 0;
      for (int64_t c = lo; c <= hi; ++c) {
        const acc_t d = direct_denominator<scalar_t, acc_t>(x, sC, C, c, p);
        sum_t += load_g(c) * dpow(d, -p.beta) * load_a<scalar_t, acc_t>(x, sC, c) / d;
      }
      const acc_t d = direct_denominator<scalar_t, acc_t>(x, sC, C, j, p);
      const acc_t a = load_a<scalar_t, acc_t>(x, sC, j);
      const acc_t u = load_g(j) * dpow(d, -p.beta);
      gx[j * sC] = static_cast<scalar_t>(a != acc_t(0) ? u - two_alpha_beta * a * sum_t : acc_t(0));
    }
  }
}

template <typename scalar_t>
struct ColumnGrad {  // grad of the LRN output read from a tensor laid out like x
  const scalar_t* g;
  int64_t sC;
  __device__ __forceinline__ at::opmath_type<scalar_t> operator()(int64_t c) const {
    return static_cast<at::opmath_type<scalar_t>>(g[c * sC]);
  }
};

template <typename scalar_t, typename off_t>
struct PooledGrad {  // grad of the LRN output at pixel (h, w) gathered from the pooled grads
  const scalar_t* g;
  const off_t* off;
  int64_t so_c, so_h, so_w;  // output strides (g and off point at sample n)
  int64_t h, w, oh_lo, oh_hi, ow_lo, ow_hi, kernel_size, stride;
  __device__ __forceinline__ at::opmath_type<scalar_t> operator()(int64_t c) const {
    at::opmath_type<scalar_t> sum = 0;
    for (int64_t oh = oh_lo; oh <= oh_hi; ++oh) {
      for (int64_t ow = ow_lo; ow <= ow_hi; ++ow) {
        const int64_t o = c * so_c + oh * so_h + ow * so_w;
        if (static_cast<int64_t>(off[o]) == (h - oh * stride) * kernel_size + (w - ow * stride)) {
          sum += static_cast<at::opmath_type<scalar_t>>(g[o]);
        }
      }
    }
    return sum;
  }
};

// ---------------------------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------------------------

template <typename scalar_t, int S>
__global__ void __launch_bounds__(kThreads) lrn_forward_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ y,
                                                               int64_t N, int64_t C, int64_t P, int64_t sC, int64_t sP,
                                                               LrnArgs<at::opmath_type<scalar_t>> p) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= N * P) return;
  const int64_t n = idx / P, q = idx - n * P;
  const int64_t base = n * C * P + q * sP;
  lrn_forward_column<scalar_t, S>(x + base, y + base, sC, C, p);
}

template <typename scalar_t, int S>
__global__ void __launch_bounds__(kThreads) lrn_backward_kernel(const scalar_t* __restrict__ g,
                                                                const scalar_t* __restrict__ x,
                                                                scalar_t* __restrict__ gx, int64_t N, int64_t C,
                                                                int64_t P, int64_t sC, int64_t sP,
                                                                LrnArgs<at::opmath_type<scalar_t>> p) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= N * P) return;
  const int64_t n = idx / P, q = idx - n * P;
  const int64_t base = n * C * P + q * sP;
  lrn_backward_column<scalar_t, S>(x + base, gx + base, sC, C, p, ColumnGrad<scalar_t>{g + base, sC});
}

template <typename scalar_t, typename off_t>
__global__ void __launch_bounds__(kThreads) max_pool_forward_kernel(const scalar_t* __restrict__ x,
                                                                    scalar_t* __restrict__ y, off_t* __restrict__ off,
                                                                    int64_t N, int64_t C, int64_t H, int64_t W,
                                                                    int64_t OH, int64_t OW, bool channels_last,
                                                                    Strides4 si, int64_t kernel_size, int64_t stride) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= N * C * OH * OW) return;
  int64_t n, c, oh, ow;
  unravel(idx, channels_last, C, OH, OW, n, c, oh, ow);
  const scalar_t* corner = x + n * si.n + c * si.c + oh * stride * si.h + ow * stride * si.w;
  acc_t best;
  int64_t best_off;
  window_argmax<acc_t>(
      kernel_size, [&](int64_t kh, int64_t kw) { return static_cast<acc_t>(corner[kh * si.h + kw * si.w]); }, best,
      best_off);
  y[idx] = static_cast<scalar_t>(best);
  off[idx] = static_cast<off_t>(best_off);
}

template <typename scalar_t, typename off_t>
__global__ void __launch_bounds__(kThreads) max_pool_backward_kernel(const scalar_t* __restrict__ g,
                                                                     const off_t* __restrict__ off,
                                                                     scalar_t* __restrict__ gx, int64_t N, int64_t C,
                                                                     int64_t H, int64_t W, int64_t OH, int64_t OW,
                                                                     bool channels_last, Strides4 so,
                                                                     int64_t kernel_size, int64_t stride) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= N * C * H * W) return;
  int64_t n, c, h, w;
  unravel(idx, channels_last, C, H, W, n, c, h, w);
  const CoveringWindows rows = covering_windows(h, OH, kernel_size, stride);
  const CoveringWindows cols = covering_windows(w, OW, kernel_size, stride);
  acc_t sum = 0;
  for (int64_t oh = rows.lo; oh <= rows.hi; ++oh) {
    for (int64_t ow = cols.lo; ow <= cols.hi; ++ow) {
      const int64_t o = n * so.n + c * so.c + oh * so.h + ow * so.w;
      if (static_cast<int64_t>(off[o]) == (h - oh * stride) * kernel_size + (w - ow * stride)) {
        sum += static_cast<acc_t>(g[o]);
      }
    }
  }
  gx[idx] = static_cast<scalar_t>(sum);
}

template <typename scalar_t, typename off_t>
__global__ void __launch_bounds__(kThreads) relu_lrn_pool_forward_kernel(
    const scalar_t* __restrict__ x, scalar_t* __restrict__ y, off_t* __restrict__ off, int64_t N, int64_t C,
    int64_t H, int64_t W, int64_t OH, int64_t OW, bool channels_last, Strides4 si, int64_t kernel_size,
    int64_t stride, LrnArgs<at::opmath_type<scalar_t>> p) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= N * C * OH * OW) return;
  int64_t n, c, oh, ow;
  unravel(idx, channels_last, C, OH, OW, n, c, oh, ow);
  acc_t best;
  int64_t best_off;
  window_argmax<acc_t>(
      kernel_size,
      [&](int64_t kh, int64_t kw) {
        const scalar_t* column = x + n * si.n + (oh * stride + kh) * si.h + (ow * stride + kw) * si.w;
        const acc_t d = direct_denominator<scalar_t, acc_t>(column, si.c, C, c, p);
        const acc_t lrn = load_a<scalar_t, acc_t>(column, si.c, c) * dpow(d, -p.beta);
        // Compare the values the unfused path would pool: the LRN output rounded to the input dtype.
        return static_cast<acc_t>(static_cast<scalar_t>(lrn));
      },
      best, best_off);
  y[idx] = static_cast<scalar_t>(best);
  off[idx] = static_cast<off_t>(best_off);
}

template <typename scalar_t, typename off_t, int S>
__global__ void __launch_bounds__(kThreads) relu_lrn_pool_backward_kernel(
    const scalar_t* __restrict__ g, const scalar_t* __restrict__ x, const off_t* __restrict__ off,
    scalar_t* __restrict__ gx, int64_t N, int64_t C, int64_t H, int64_t W, int64_t OH, int64_t OW, Strides4 si,
    Strides4 so, int64_t kernel_size, int64_t stride, LrnArgs<at::opmath_type<scalar_t>> p) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= N * H * W) return;
  const int64_t n = idx / (H * W), hw = idx - n * (H * W), h = hw / W, w = hw - h * W;
  const int64_t base = n * si.n + h * si.h + w * si.w;
  const CoveringWindows rows = covering_windows(h, OH, kernel_size, stride);
  const CoveringWindows cols = covering_windows(w, OW, kernel_size, stride);
  PooledGrad<scalar_t, off_t> load_g{g + n * so.n, off + n * so.n, so.c,    so.h,    so.w,        h,     w,
                                     rows.lo,      rows.hi,        cols.lo, cols.hi, kernel_size, stride};
  lrn_backward_column<scalar_t, S>(x + base, gx + base, si.c, C, p, load_g);
}

// ---------------------------------------------------------------------------------------------
// Host wrappers
// ---------------------------------------------------------------------------------------------

// Calls fn(std::integral_constant<int, S>{}) with S = size for the register-window sizes, else S = 0.
template <typename Fn>
void dispatch_window(int64_t size, Fn&& fn) {
  switch (size) {
    case 3: fn(std::integral_constant<int, 3>{}); break;
    case 5: fn(std::integral_constant<int, 5>{}); break;
    case 7: fn(std::integral_constant<int, 7>{}); break;
    default: fn(std::integral_constant<int, 0>{}); break;
  }
}

template <typename Fn>
void dispatch_offsets(at::ScalarType t, Fn&& fn) {
  if (t == at::kChar) fn(int8_t{});
  else fn(int32_t{});
}

template <typename acc_t>
LrnArgs<acc_t> lrn_args(int64_t size, double alpha, double beta, double k) {
  return {static_cast<acc_t>(alpha), static_cast<acc_t>(beta), static_cast<acc_t>(k), size};
}

// Calls fn(scalar_t{}, off_t{}) for the dtype a pooling call computes in (its grad's in a backward, else its
// input's) and the dtype of its offsets. kName tags the dtype dispatch: AT_DISPATCH takes a compile-time name,
// the op's own, which its "not implemented" error names.
template <const char* kName, typename Fn>
void dispatch_pool_types(const PoolCall& call, Fn&& fn) {
  const at::ScalarType t = (call.g.defined() ? call.g : call.x).scalar_type();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, t, kName, [&] {
    dispatch_offsets(call.off.scalar_type(), [&](auto off_tag) { fn(scalar_t{}, off_tag); });
  });
}

// The pooling ops' dispatch names, as dispatch_pool_types takes them.
constexpr char kMaxPoolCuda[] = "max_pool_cuda";
constexpr char kMaxPoolBackwardCuda[] = "max_pool_backward_cuda";
constexpr char kReluLrnPoolCuda[] = "relu_lrn_pool_cuda";
constexpr char kReluLrnPoolBackwardCuda[] = "relu_lrn_pool_backward_cuda";

at::Tensor relu_lrn_cuda(const at::Tensor& x_in, int64_t size, double alpha, double beta, double k) {
  const LrnCall call = prepare_relu_lrn(x_in, size);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor &x = call.x, &y = call.out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "relu_lrn_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    dispatch_window(size, [&](auto window) {
      lrn_forward_kernel<scalar_t, decltype(window)::value><<<blocks_for(call.N * call.P), kThreads, 0, stream>>>(
          x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), call.N, call.C, call.P, call.st.c,
          call.st.w, lrn_args<acc_t>(size, alpha, beta, k));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return y;
}

at::Tensor relu_lrn_backward_cuda(const at::Tensor& grad_y, const at::Tensor& x_in, int64_t size, double alpha,
                                  double beta, double k) {
  const LrnCall call = prepare_relu_lrn_backward(grad_y, x_in, size);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor &x = call.x, &g = call.g, &gx = call.out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "relu_lrn_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    dispatch_window(size, [&](auto window) {
      lrn_backward_kernel<scalar_t, decltype(window)::value><<<blocks_for(call.N * call.P), kThreads, 0, stream>>>(
          g.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(), gx.mutable_data_ptr<scalar_t>(), call.N,
          call.C, call.P, call.st.c, call.st.w, lrn_args<acc_t>(size, alpha, beta, k));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return gx;
}

std::tuple<at::Tensor, at::Tensor> max_pool_cuda(const at::Tensor& x_in, int64_t kernel_size, int64_t stride) {
  const PoolCall call = prepare_pool("max_pool", x_in, kernel_size, stride, /*offsets=*/true);
  const c10::cuda::CUDAGuard guard(x_in.device());
  dispatch_pool_types<kMaxPoolCuda>(call, [&](auto value, auto offset) {
    using scalar_t = decltype(value);
    using off_t = decltype(offset);
    max_pool_forward_kernel<scalar_t, off_t>
        <<<blocks_for(call.N * call.C * call.OH * call.OW), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
            call.x.const_data_ptr<scalar_t>(), call.y.mutable_data_ptr<scalar_t>(),
            call.off.mutable_data_ptr<off_t>(), call.N, call.C, call.H, call.W, call.OH, call.OW,
            call.channels_last(), call.si, kernel_size, stride);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {call.y, call.off};
}

at::Tensor max_pool_backward_cuda(const at::Tensor& grad_y, const at::Tensor& offsets, int64_t height, int64_t width,
                                  int64_t kernel_size, int64_t stride) {
  const PoolCall call = prepare_max_pool_backward(grad_y, offsets, height, width, kernel_size, stride);
  const c10::cuda::CUDAGuard guard(grad_y.device());
  dispatch_pool_types<kMaxPoolBackwardCuda>(call, [&](auto value, auto offset) {
    using scalar_t = decltype(value);
    using off_t = decltype(offset);
    max_pool_backward_kernel<scalar_t, off_t>
        <<<blocks_for(call.N * call.C * height * width), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
            call.g.const_data_ptr<scalar_t>(), call.off.const_data_ptr<off_t>(), call.gx.mutable_data_ptr<scalar_t>(),
            call.N, call.C, height, width, call.OH, call.OW, call.channels_last(), call.so, kernel_size, stride);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return call.gx;
}

std::tuple<at::Tensor, at::Tensor> relu_lrn_pool_cuda(const at::Tensor& x_in, int64_t size, double alpha, double beta,
                                                      double k, int64_t kernel_size, int64_t stride) {
  const PoolCall call = prepare_pool("relu_lrn_pool", x_in, kernel_size, stride, /*offsets=*/true, size);
  const c10::cuda::CUDAGuard guard(x_in.device());
  dispatch_pool_types<kReluLrnPoolCuda>(call, [&](auto value, auto offset) {
    using scalar_t = decltype(value);
    using off_t = decltype(offset);
    using acc_t = at::opmath_type<scalar_t>;
    relu_lrn_pool_forward_kernel<scalar_t, off_t>
        <<<blocks_for(call.N * call.C * call.OH * call.OW), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
            call.x.const_data_ptr<scalar_t>(), call.y.mutable_data_ptr<scalar_t>(),
            call.off.mutable_data_ptr<off_t>(), call.N, call.C, call.H, call.W, call.OH, call.OW,
            call.channels_last(), call.si, kernel_size, stride, lrn_args<acc_t>(size, alpha, beta, k));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {call.y, call.off};
}

at::Tensor relu_lrn_pool_backward_cuda(const at::Tensor& grad_y, const at::Tensor& x_in, const at::Tensor& offsets,
                                       int64_t size, double alpha, double beta, double k, int64_t kernel_size,
                                       int64_t stride) {
  const PoolCall call = prepare_relu_lrn_pool_backward(grad_y, x_in, offsets, size, kernel_size, stride);
  const c10::cuda::CUDAGuard guard(x_in.device());
  dispatch_pool_types<kReluLrnPoolBackwardCuda>(call, [&](auto value, auto offset) {
    using scalar_t = decltype(value);
    using off_t = decltype(offset);
    using acc_t = at::opmath_type<scalar_t>;
    dispatch_window(size, [&](auto window) {
      relu_lrn_pool_backward_kernel<scalar_t, off_t, decltype(window)::value>
          <<<blocks_for(call.N * call.H * call.W), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
              call.g.const_data_ptr<scalar_t>(), call.x.const_data_ptr<scalar_t>(), call.off.const_data_ptr<off_t>(),
              call.gx.mutable_data_ptr<scalar_t>(), call.N, call.C, call.H, call.W, call.OH, call.OW, call.si,
              call.so, kernel_size, stride, lrn_args<acc_t>(size, alpha, beta, k));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return call.gx;
}

}  // namespace
}  // namespace alexnet_ext

TORCH_LIBRARY_IMPL(alexnet_cpp_ext, CUDA, m) { ALEXNET_IMPL_OPS(m, cuda); }
