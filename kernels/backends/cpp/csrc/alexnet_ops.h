// Shared declarations of the `cpp` backend extension: layout rule, offset dtype, shape helpers, and the
// device-independent prologue of the CPU and CUDA entry points (argument checks, layout, output allocation).
//
// Layout rule (mirrored by kernels/op_shapes.py, which the fake/meta kernels use): a tensor is processed
// as channels_last when it is channels_last-contiguous but not NCHW-contiguous; every other tensor is
// taken as `.contiguous()` NCHW first. Outputs use the same layout as the processed input.
// Max-pool argmax positions are stored as the index `kh * kernel_size + kw` inside the window:
// int8 when kernel_size * kernel_size <= 128 (every AlexNet pool), int32 otherwise (kernels/op_shapes.py:
// offsets_dtype, the Python copy the Triton backend uses too).
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

// Argument checks of the backward ops, shared by the CPU and CUDA entry points.
inline void check_relu_lrn_backward_args(const at::Tensor& grad_y, const at::Tensor& x, int64_t size) {
  check_4d_float("relu_lrn_backward", x);
  check_lrn_args("relu_lrn_backward", size);
  TORCH_CHECK(grad_y.sizes() == x.sizes(), "relu_lrn_backward: grad shape ", grad_y.sizes(),
              " does not match input shape ", x.sizes());
}

inline void check_max_pool_backward_args(const at::Tensor& grad_y, const at::Tensor& offsets, int64_t height,
                                         int64_t width, int64_t kernel_size, int64_t stride) {
  TORCH_CHECK(grad_y.dim() == 4 && grad_y.sizes() == offsets.sizes(), "max_pool_backward: grad shape ",
              grad_y.sizes(), " does not match offsets shape ", offsets.sizes());
  TORCH_CHECK(offsets.scalar_type() == offset_dtype(kernel_size), "max_pool_backward: offsets must be ",
              offset_dtype(kernel_size), " for kernel_size ", kernel_size, ", got ", offsets.scalar_type());
  check_pool_args("max_pool_backward", height, width, kernel_size, stride);
  TORCH_CHECK(grad_y.size(2) == pool_out_size(height, kernel_size, stride) &&
                  grad_y.size(3) == pool_out_size(width, kernel_size, stride),
              "max_pool_backward: grad shape ", grad_y.sizes(), " does not fit input size ", height, "x", width);
}

inline void check_relu_lrn_pool_backward_args(const at::Tensor& grad_y, const at::Tensor& x, const at::Tensor& offsets,
                                              int64_t size, int64_t kernel_size, int64_t stride) {
  check_4d_float("relu_lrn_pool_backward", x);
  check_lrn_args("relu_lrn_pool_backward", size);
  const int64_t H = x.size(2), W = x.size(3);
  check_pool_args("relu_lrn_pool_backward", H, W, kernel_size, stride);
  const int64_t OH = pool_out_size(H, kernel_size, stride), OW = pool_out_size(W, kernel_size, stride);
  TORCH_CHECK(grad_y.sizes() == at::IntArrayRef({x.size(0), x.size(1), OH, OW}) && offsets.sizes() == grad_y.sizes(),
              "relu_lrn_pool_backward: grad shape ", grad_y.sizes(), " / offsets shape ", offsets.sizes(),
              " do not match the pooled shape of input ", x.sizes());
  TORCH_CHECK(offsets.scalar_type() == offset_dtype(kernel_size), "relu_lrn_pool_backward: offsets must be ",
              offset_dtype(kernel_size), ", got ", offsets.scalar_type());
}

// A relu_lrn op's tensors laid out in the input's layout: the input x, the backward's grad g (in x's dtype)
// and the op's output out (y, or the grad w.r.t. x), with the (n, c, position) sizes and strides.
struct LrnCall {
  at::MemoryFormat fmt;
  at::Tensor x, g, out;
  int64_t N, C, P;
  Strides4 st;
};

// Lays x out and allocates out like it (the checks are the caller's).
inline LrnCall lay_out_lrn(const at::Tensor& x_in) {
  LrnCall call;
  call.fmt = layout_of(x_in);
  call.x = x_in.contiguous(call.fmt);
  call.out = at::empty(call.x.sizes(), call.x.options().memory_format(call.fmt));
  call.N = call.x.size(0), call.C = call.x.size(1), call.P = call.x.size(2) * call.x.size(3);
  call.st = strides_for(call.fmt, call.C, call.x.size(2), call.x.size(3));
  return call;
}

// relu_lrn forward: checks x and size, lays x out and allocates the output.
inline LrnCall prepare_relu_lrn(const at::Tensor& x_in, int64_t size) {
  check_4d_float("relu_lrn", x_in);
  check_lrn_args("relu_lrn", size);
  return lay_out_lrn(x_in);
}

// relu_lrn backward: checks the arguments, lays x and g out and allocates the grad w.r.t. x.
inline LrnCall prepare_relu_lrn_backward(const at::Tensor& grad_y, const at::Tensor& x_in, int64_t size) {
  check_relu_lrn_backward_args(grad_y, x_in, size);
  LrnCall call = lay_out_lrn(x_in);
  call.g = grad_y.to(call.x.scalar_type()).contiguous(call.fmt);
  return call;
}

// A pooling op's tensors laid out in one layout: the forward's input x, pooled values y and argmax offsets
// off; the backward's grad g, offsets off, input x (fused op only) and grad w.r.t. the input gx. si and so
// are the element strides of the input-sized and the pooled tensors.
struct PoolCall {
  at::MemoryFormat fmt;
  at::Tensor x, y, off, g, gx;
  int64_t N, C, H, W, OH, OW;
  Strides4 si, so;

  bool channels_last() const { return fmt == at::MemoryFormat::ChannelsLast; }
};

// Fills the sizes and strides of a pooling call in layout `fmt`.
inline PoolCall pool_geometry(at::MemoryFormat fmt, int64_t N, int64_t C, int64_t H, int64_t W, int64_t kernel_size,
                              int64_t stride) {
  PoolCall call;
  call.fmt = fmt;
  call.N = N, call.C = C, call.H = H, call.W = W;
  call.OH = pool_out_size(H, kernel_size, stride), call.OW = pool_out_size(W, kernel_size, stride);
  call.si = strides_for(fmt, C, H, W), call.so = strides_for(fmt, C, call.OH, call.OW);
  return call;
}

// Pooling forward: checks x (and the fused op's LRN `lrn_size` when > 0), lays it out and allocates y and,
// for the training forms (`offsets`), off; the inference forms leave off undefined.
inline PoolCall prepare_pool(const char* op, const at::Tensor& x_in, int64_t kernel_size, int64_t stride, bool offsets,
                             int64_t lrn_size = 0) {
  check_4d_float(op, x_in);
  if (lrn_size > 0) check_lrn_args(op, lrn_size);
  check_pool_args(op, x_in.size(2), x_in.size(3), kernel_size, stride);
  PoolCall call = pool_geometry(layout_of(x_in), x_in.size(0), x_in.size(1), x_in.size(2), x_in.size(3), kernel_size,
                                stride);
  call.x = x_in.contiguous(call.fmt);
  const auto options = call.x.options().memory_format(call.fmt);
  call.y = at::empty({call.N, call.C, call.OH, call.OW}, options);
  if (offsets) call.off = at::empty({call.N, call.C, call.OH, call.OW}, options.dtype(offset_dtype(kernel_size)));
  return call;
}

// max_pool backward: checks the arguments, lays g and off out in the offsets' layout and allocates gx.
inline PoolCall prepare_max_pool_backward(const at::Tensor& grad_y, const at::Tensor& offsets, int64_t height,
                                          int64_t width, int64_t kernel_size, int64_t stride) {
  check_max_pool_backward_args(grad_y, offsets, height, width, kernel_size, stride);
  PoolCall call = pool_geometry(layout_of(offsets), grad_y.size(0), grad_y.size(1), height, width, kernel_size, stride);
  call.off = offsets.contiguous(call.fmt);
  call.g = grad_y.contiguous(call.fmt);
  call.gx = at::empty({call.N, call.C, height, width}, call.g.options().memory_format(call.fmt));
  return call;
}

// relu_lrn_pool backward: checks the arguments, lays x, g (in x's dtype) and off out in x's layout, allocates gx.
inline PoolCall prepare_relu_lrn_pool_backward(const at::Tensor& grad_y, const at::Tensor& x_in,
                                               const at::Tensor& offsets, int64_t size, int64_t kernel_size,
                                               int64_t stride) {
  check_relu_lrn_pool_backward_args(grad_y, x_in, offsets, size, kernel_size, stride);
  PoolCall call = pool_geometry(layout_of(x_in), x_in.size(0), x_in.size(1), x_in.size(2), x_in.size(3), kernel_size,
                                stride);
  call.x = x_in.contiguous(call.fmt);
  call.g = grad_y.to(call.x.scalar_type()).contiguous(call.fmt);
  call.off = offsets.contiguous(call.fmt);
  call.gx = at::empty(call.x.sizes(), call.x.options().memory_format(call.fmt));
  return call;
}

}  // namespace alexnet_ext

// Registers the ops every device implements, as the functions <op>_<device> of the including translation
// unit: one list for the CPU and the CUDA registrations (their schemas: kernels/custom_ops.py).
#define ALEXNET_IMPL_OPS(m, device)                                                 \
  m.impl("relu_lrn", &alexnet_ext::relu_lrn_##device);                              \
  m.impl("relu_lrn_backward", &alexnet_ext::relu_lrn_backward_##device);            \
  m.impl("max_pool", &alexnet_ext::max_pool_##device);                              \
  m.impl("max_pool_backward", &alexnet_ext::max_pool_backward_##device);            \
  m.impl("relu_lrn_pool", &alexnet_ext::relu_lrn_pool_##device);                    \
  m.impl("relu_lrn_pool_backward", &alexnet_ext::relu_lrn_pool_backward_##device)
