// Per-element rules shared by the CPU (alexnet_ops.cpp) and CUDA (alexnet_ops_cuda.cu) kernels of the
// `cpp` backend, compiled for the host and, under nvcc, for the device too. The CPU kernels are tested
// natively in CI, so these rules - ReLU that keeps NaN, the max-pool window scan, the windows covering
// an input pixel - are tested for the CUDA kernels as well.
#pragma once

#include <cstdint>
#include <limits>

#if defined(__CUDACC__)
#define ALEXNET_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define ALEXNET_HOST_DEVICE inline
#endif

namespace alexnet_ext {

// ReLU that keeps NaN (like torch.relu): v <= 0 -> 0, otherwise v (NaN <= 0 is false).
template <typename acc_t>
ALEXNET_HOST_DEVICE acc_t relu(acc_t v) {
  return v <= acc_t(0) ? acc_t(0) : v;
}

template <typename acc_t>
ALEXNET_HOST_DEVICE bool is_nan(acc_t v) {
  return v != v;
}

// Max over one pooling window, `load(kh, kw)` giving each value: the first maximum in scan order wins,
// NaN wins over everything (the last NaN, like ATen's `val > max || isnan(val)` update). `best_off` is
// the position inside the window, kh * kernel_size + kw (what the backward is given instead of indices).
template <typename acc_t, typename Load>
ALEXNET_HOST_DEVICE void window_argmax(int64_t kernel_size, const Load& load, acc_t& best, int64_t& best_off) {
  best = -std::numeric_limits<acc_t>::infinity();
  best_off = 0;
  for (int64_t kh = 0; kh < kernel_size; ++kh) {
    for (int64_t kw = 0; kw < kernel_size; ++kw) {
      const acc_t v = load(kh, kw);
      if (v > best || is_nan(v)) {
        best = v;
        best_off = kh * kernel_size + kw;
      }
    }
  }
}

// The pooled rows (or columns) [lo, hi] whose windows cover input row `pos` (unpadded, floor mode):
// o * stride <= pos <= o * stride + kernel_size - 1 and 0 <= o < out_size. Empty when lo > hi.
struct CoveringWindows {
  int64_t lo, hi;
};

ALEXNET_HOST_DEVICE CoveringWindows covering_windows(int64_t pos, int64_t out_size, int64_t kernel_size,
                                                     int64_t stride) {
  const int64_t lo = pos >= kernel_size ? (pos - kernel_size) / stride + 1 : 0;
  const int64_t last = pos / stride;
  return {lo, last < out_size - 1 ? last : out_size - 1};
}

}  // namespace alexnet_ext
