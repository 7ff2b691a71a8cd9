// Shared declarations of the `cuda` backend extension: layout rule, offset dtype, shape helpers.
//
// Layout rule (mirrored by kernels/cuda_backend.py for the fake/meta kernels): a tensor is processed
// as channels_last when it is channels_last-contiguous but not NCHW-contiguous; every other tensor is
// taken as `.contiguous()` NCHW first. Outputs use the same layout as the processed input.
// Max-pool argmax positions are stored as the index `kh * kernel_size + kw` inside the window:
// int8 when kernel_size * kernel_size <= 128 (every AlexNet pool), int32 otherwise.
#pragma once

#include <ATen/ATen.h>

namespace alexnet_ext {

inline at::MemoryFormat layout_of(const at::Tensor& x) {
  return (!x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast))
             ? at::MemoryFormat::ChannelsLast
             : at::MemoryFormat::Contiguous;
}

inline at::ScalarType offset_dtype(int64_t kernel_size) {
  return kernel_size * kernel_size <= 128 ? at::kChar : at::kInt;
}

inline int64_t pool_out_size(int64_t size, int64_t kernel_size, int64_t stride) {
  return (size - kernel_size) / stride + 1;
}

// Element strides of a 4-D tensor that is contiguous in `fmt` (n, c, h, w order).
struct Strides4 {
  int64_t n, c, h, w;
};

inline Strides4 strides_for(at::MemoryFormat fmt, int64_t C, int64_t H, int64_t W) {
  if (fmt == at::MemoryFormat::ChannelsLast) return {H * W * C, 1, W * C, C};
  return {C * H * W, H * W, W, 1};
}

inline void check_pool_args(const char* op, int64_t H, int64_t W, int64_t kernel_size, int64_t stride) {
  TORCH_CHECK(kernel_size >= 1 && stride >= 1, op, ": kernel_size and stride must be >= 1, got ",
              kernel_size, " and ", stride);
  TORCH_CHECK(H >= kernel_size && W >= kernel_size, op, ": input spatial size ", H, "x", W,
              " is smaller than the pooling window ", kernel_size);
}

inline void check_lrn_args(const char* op, int64_t size) {
  TORCH_CHECK(size >= 1 && size % 2 == 1, op, ": LRN size must be a positive odd integer, got ", size);
}

inline void check_4d_float(const char* op, const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 4, op, ": expected a 4-D (N, C, H, W) tensor, got shape ", x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), op, ": expected a floating dtype, got ", x.scalar_type());
}

}  // namespace alexnet_ext
