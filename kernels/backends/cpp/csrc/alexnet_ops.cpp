// CPU kernels and operator schemas of the `cpp` backend extension (namespace alexnet_cpp_ext).
//
// Ops (forward and backward of each; autograd is attached in kernels/backends/cpp/__init__.py):
//   relu_lrn(x, size, alpha, beta, k) -> y                      alpha in the paper's convention
//   relu_lrn_backward(grad_y, x, size, alpha, beta, k) -> grad_x   recomputes the LRN from x
//   max_pool(x, kernel_size, stride) -> (y, offsets)           offsets: argmax index inside the window
//   max_pool_backward(grad_y, offsets, height, width, kernel_size, stride) -> grad_x
//   relu_lrn_pool(x, size, alpha, beta, k, kernel_size, stride) -> (y, offsets)
//   relu_lrn_pool_backward(grad_y, x, offsets, size, alpha, beta, k, kernel_size, stride) -> grad_x
//   max_pool_values, relu_lrn_pool_values: the CPU inference forms (pooled values, no offsets)
//
// float, bfloat16 and float16 run the vectorized bodies in cpu_ops.h. The scalar kernels below are the
// float64 path: they work on tiles, a block of spatial positions gathered into a [C][positions] buffer
// in double, the cross-channel window sums formed directly (no running sum, so NaN/Inf stay local to
// their window exactly as in the reference), and the result scattered back. Tiles run in parallel
// through at::parallel_for.
#include <torch/library.h>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "alexnet_ops.h"
#include "alexnet_ops_elementwise.h"
#include "cpu_ops.h"

namespace alexnet_ext {
namespace {

constexpr int64_t kPositionsPerTile = 64;
constexpr int64_t kTileBytes = 256 * 1024;

// A[c * P + q] = (relu)(x[c * sC + (p0 + q) * sP]) for the P positions starting at p0.
template <typename scalar_t, typename acc_t>
void gather(const scalar_t* x, int64_t sC, int64_t sP, int64_t C, int64_t p0, int64_t P, bool apply_relu,
            acc_t* A) {
  if (sP == 1) {
    for (int64_t c = 0; c < C; ++c) {
      const scalar_t* row = x + c * sC + p0;
      for (int64_t q = 0; q < P; ++q) A[c * P + q] = static_cast<acc_t>(row[q]);
    }
  } else {
    for (int64_t q = 0; q < P; ++q) {
      const scalar_t* col = x + (p0 + q) * sP;
      for (int64_t c = 0; c < C; ++c) A[c * P + q] = static_cast<acc_t>(col[c * sC]);
    }
  }
  if (apply_relu) {
    for (int64_t i = 0; i < C * P; ++i) A[i] = relu(A[i]);
  }
}

template <typename scalar_t, typename acc_t>
void scatter(const acc_t* Y, int64_t sC, int64_t sP, int64_t C, int64_t p0, int64_t P, scalar_t* y) {
  if (sP == 1) {
    for (int64_t c = 0; c < C; ++c) {
      scalar_t* row = y + c * sC + p0;
      for (int64_t q = 0; q < P; ++q) row[q] = static_cast<scalar_t>(Y[c * P + q]);
    }
  } else {
    for (int64_t q = 0; q < P; ++q) {
      scalar_t* col = y + (p0 + q) * sP;
      for (int64_t c = 0; c < C; ++c) col[c * sC] = static_cast<scalar_t>(Y[c * P + q]);
    }
  }
}

// S[q] = sum over channels j in [lo, hi] of V[j * P + q] (squared when `square`).
template <typename acc_t>
inline void window_sum(const acc_t* V, int64_t P, int64_t lo, int64_t hi, bool square, acc_t* S) {
  for (int64_t q = 0; q < P; ++q) S[q] = acc_t(0);
  for (int64_t j = lo; j <= hi; ++j) {
    const acc_t* v = V + j * P;
    if (square) {
      for (int64_t q = 0; q < P; ++q) S[q] += v[q] * v[q];
    } else {
      for (int64_t q = 0; q < P; ++q) S[q] += v[q];
    }
  }
}

struct LrnParams {
  int64_t size;
  double alpha, beta, k;
};

// Y = A * (k + alpha * sum_{W(c)} A^2)^-beta for a [C][P] tile of ReLU outputs A.
template <typename acc_t>
void lrn_forward_tile(const acc_t* A, int64_t C, int64_t P, const LrnParams& p, acc_t* S, acc_t* Y) {
  const int64_t half = p.size / 2;
  const acc_t alpha = p.alpha, beta = p.beta, k = p.k;
  for (int64_t c = 0; c < C; ++c) {
    window_sum(A, P, std::max<int64_t>(0, c - half), std::min<int64_t>(C - 1, c + half), true, S);
    for (int64_t q = 0; q < P; ++q) Y[c * P + q] = A[c * P + q] * std::pow(k + alpha * S[q], -beta);
  }
}

// Gradient w.r.t. the pre-ReLU input, given ReLU outputs A and output grads G ([C][P] tiles):
//   grad_a_j = g_j d_j^-beta - 2 alpha beta a_j sum_{c in W(j)} g_c a_c d_c^(-beta-1),  times (x_j > 0).
// The ReLU mask is `a_j != 0`, which also lets NaN through like torch's threshold_backward.
template <typename acc_t>
void lrn_backward_tile(const acc_t* A, const acc_t* G, int64_t C, int64_t P, const LrnParams& p, acc_t* S,
                       acc_t* T, acc_t* U, acc_t* GX) {
  const int64_t half = p.size / 2;
  const acc_t alpha = p.alpha, beta = p.beta, k = p.k;
  for (int64_t c = 0; c < C; ++c) {
    window_sum(A, P, std::max<int64_t>(0, c - half), std::min<int64_t>(C - 1, c + half), true, S);
    for (int64_t q = 0; q < P; ++q) {
      const int64_t i = c * P + q;
      const acc_t d = k + alpha * S[q];
      const acc_t u = G[i] * std::pow(d, -beta);
      U[i] = u;
      T[i] = u * A[i] / d;
    }
  }
  const acc_t two_alpha_beta = acc_t(2) * alpha * beta;
  for (int64_t j = 0; j < C; ++j) {
    window_sum(T, P, std::max<int64_t>(0, j - half), std::min<int64_t>(C - 1, j + half), false, S);
    for (int64_t q = 0; q < P; ++q) {
      const int64_t i = j * P + q;
      GX[i] = A[i] != acc_t(0) ? U[i] - two_alpha_beta * A[i] * S[q] : acc_t(0);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// relu_lrn
// ---------------------------------------------------------------------------------------------

// The scalar (float64) path of relu_lrn (call.g undefined) and of its backward (call.g the output grad): tiles of
// positions, in parallel, gathered into [C][positions] buffers, run through the LRN forward or backward and
// scattered into call.out.
template <typename scalar_t>
void relu_lrn_tiles(const LrnCall& call, const LrnParams& params) {
  using acc_t = at::opmath_type<scalar_t>;
  const bool backward = call.g.defined();
  const int64_t N = call.N, C = call.C, P = call.P;
  const Strides4 st = call.st;
  const scalar_t* xp = call.x.const_data_ptr<scalar_t>();
  const scalar_t* gp = backward ? call.g.const_data_ptr<scalar_t>() : nullptr;
  scalar_t* outp = call.out.mutable_data_ptr<scalar_t>();
  const int64_t tiles = (P + kPositionsPerTile - 1) / kPositionsPerTile;
  at::parallel_for(0, N * tiles, 1, [&](int64_t begin, int64_t end) {
    const int64_t cap = C * kPositionsPerTile, grad_cap = backward ? cap : 0;
    std::vector<acc_t> A(cap), OUT(cap), S(kPositionsPerTile), G(grad_cap), T(grad_cap), U(grad_cap);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / tiles, p0 = (t % tiles) * kPositionsPerTile;
      const int64_t np = std::min(kPositionsPerTile, P - p0);
      gather(xp + n * st.n, st.c, st.w, C, p0, np, true, A.data());
      if (backward) {
        gather(gp + n * st.n, st.c, st.w, C, p0, np, false, G.data());
        lrn_backward_tile(A.data(), G.data(), C, np, params, S.data(), T.data(), U.data(), OUT.data());
      } else {
        lrn_forward_tile(A.data(), C, np, params, S.data(), OUT.data());
      }
      scatter(OUT.data(), st.c, st.w, C, p0, np, outp + n * st.n);
    }
  });
}

at::Tensor relu_lrn_cpu(const at::Tensor& x_in, int64_t size, double alpha, double beta, double k) {
  LrnCall call = prepare_relu_lrn(x_in, size);
  if (cpu::vectorized_dtype(call.x.scalar_type())) {
    const cpu::Lrn lrn(size, alpha, beta, k);
    cpu::dispatch_vectorized(call.x.scalar_type(), [&](auto t) {
      cpu::relu_lrn_forward<decltype(t)>(call.x, call.out, call.fmt, lrn);
    });
    return call.out;
  }
  const LrnParams params{size, alpha, beta, k};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, call.x.scalar_type(), "relu_lrn_cpu",
                                  [&] { relu_lrn_tiles<scalar_t>(call, params); });
  return call.out;
}

at::Tensor relu_lrn_backward_cpu(const at::Tensor& grad_y, const at::Tensor& x_in, int64_t size, double alpha,
                                 double beta, double k) {
  LrnCall call = prepare_relu_lrn_backward(grad_y, x_in, size);
  if (cpu::vectorized_dtype(call.x.scalar_type())) {
    const cpu::Lrn lrn(size, alpha, beta, k);
    cpu::dispatch_vectorized(call.x.scalar_type(), [&](auto t) {
      cpu::relu_lrn_backward<decltype(t)>(call.g, call.x, call.out, call.fmt, lrn);
    });
    return call.out;
  }
  const LrnParams params{size, alpha, beta, k};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, call.x.scalar_type(), "relu_lrn_backward_cpu",
                                  [&] { relu_lrn_tiles<scalar_t>(call, params); });
  return call.out;
}

// ---------------------------------------------------------------------------------------------
// max_pool
// ---------------------------------------------------------------------------------------------

std::tuple<at::Tensor, at::Tensor> max_pool_cpu(const at::Tensor& x_in, int64_t kernel_size, int64_t stride) {
  PoolCall call = prepare_pool("max_pool", x_in, kernel_size, stride, /*offsets=*/true);
  const at::Tensor& x = call.x;
  at::Tensor &y = call.y, &off = call.off;
  if (cpu::vectorized_dtype(x.scalar_type())) {
    cpu::dispatch_vectorized(x.scalar_type(), [&](auto t) {
      cpu::max_pool_forward<decltype(t)>(x, y, off, call.fmt, kernel_size, stride);
    });
    return {y, off};
  }
  const int64_t N = call.N, C = call.C, OH = call.OH, OW = call.OW;
  const Strides4 si = call.si, so = call.so;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "max_pool_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* yp = y.mutable_data_ptr<scalar_t>();
    const bool small = off.scalar_type() == at::kChar;
    int8_t* op8 = small ? off.mutable_data_ptr<int8_t>() : nullptr;
    int32_t* op32 = small ? nullptr : off.mutable_data_ptr<int32_t>();
    at::parallel_for(0, N * C * OH, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t oh = r % OH, c = (r / OH) % C, n = r / (OH * C);
        const scalar_t* plane = xp + n * si.n + c * si.c;
        for (int64_t ow = 0; ow < OW; ++ow) {
          const scalar_t* corner = plane + oh * stride * si.h + ow * stride * si.w;
          acc_t best;
          int64_t best_off;
          window_argmax<acc_t>(
              kernel_size, [&](int64_t kh, int64_t kw) { return static_cast<acc_t>(corner[kh * si.h + kw * si.w]); },
              best, best_off);
          const int64_t o = n * so.n + c * so.c + oh * so.h + ow * so.w;
          yp[o] = static_cast<scalar_t>(best);
          if (small) op8[o] = static_cast<int8_t>(best_off);
          else op32[o] = static_cast<int32_t>(best_off);
        }
      }
    });
  });
  return {y, off};
}

inline int64_t load_offset(const at::Tensor& off, const void* base, int64_t i) {
  return off.scalar_type() == at::kChar ? static_cast<const int8_t*>(base)[i] : static_cast<const int32_t*>(base)[i];
}

at::Tensor max_pool_backward_cpu(const at::Tensor& grad_y, const at::Tensor& offsets, int64_t height, int64_t width,
                                 int64_t kernel_size, int64_t stride) {
  PoolCall call = prepare_max_pool_backward(grad_y, offsets, height, width, kernel_size, stride);
  const at::Tensor &off = call.off, &g = call.g;
  at::Tensor& gx = call.gx;
  if (cpu::vectorized_dtype(g.scalar_type())) {
    cpu::dispatch_vectorized(g.scalar_type(), [&](auto t) {
      cpu::max_pool_backward<decltype(t)>(g, off, gx, call.fmt, kernel_size, stride);
    });
    return gx;
  }
  const int64_t N = call.N, C = call.C, OH = call.OH, OW = call.OW;
  const Strides4 si = call.si, so = call.so;
  const void* offp = off.const_data_ptr();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "max_pool_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    scalar_t* gxp = gx.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, N * C, 1, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> plane(height * width);
      for (int64_t nc = begin; nc < end; ++nc) {
        const int64_t n = nc / C, c = nc % C;
        std::fill(plane.begin(), plane.end(), acc_t(0));
        for (int64_t oh = 0; oh < OH; ++oh) {
          for (int64_t ow = 0; ow < OW; ++ow) {
            const int64_t o = n * so.n + c * so.c + oh * so.h + ow * so.w;
            const int64_t k = load_offset(off, offp, o);
            plane[(oh * stride + k / kernel_size) * width + ow * stride + k % kernel_size] += static_cast<acc_t>(gp[o]);
          }
        }
        scalar_t* out = gxp + n * si.n + c * si.c;
        for (int64_t h = 0; h < height; ++h)
          for (int64_t w = 0; w < width; ++w) out[h * si.h + w * si.w] = static_cast<scalar_t>(plane[h * width + w]);
      }
    });
  });
  return gx;
}

// ---------------------------------------------------------------------------------------------
// relu_lrn_pool (fused)
// ---------------------------------------------------------------------------------------------

// Output rows per tile so that the tile's [C][rows*W] LRN buffer stays near kTileBytes.
int64_t output_rows_per_tile(int64_t C, int64_t W, int64_t elem_bytes, int64_t kernel_size, int64_t stride) {
  const int64_t rows_fit = std::max<int64_t>(kernel_size, kTileBytes / std::max<int64_t>(1, C * W * elem_bytes));
  return std::clamp<int64_t>((rows_fit - kernel_size) / stride + 1, 1, 16);
}

std::tuple<at::Tensor, at::Tensor> relu_lrn_pool_cpu(const at::Tensor& x_in, int64_t size, double alpha, double beta,
                                                     double k, int64_t kernel_size, int64_t stride) {
  PoolCall call = prepare_pool("relu_lrn_pool", x_in, kernel_size, stride, /*offsets=*/true, size);
  const at::Tensor& x = call.x;
  at::Tensor &y = call.y, &off = call.off;
  if (cpu::vectorized_dtype(x.scalar_type())) {
    const cpu::Lrn lrn(size, alpha, beta, k);
    cpu::dispatch_vectorized(x.scalar_type(), [&](auto t) {
      cpu::relu_lrn_pool_forward<decltype(t)>(x, y, off, call.fmt, lrn, kernel_size, stride);
    });
    return {y, off};
  }
  const int64_t N = call.N, C = call.C, W = call.W, OH = call.OH, OW = call.OW;
  const Strides4 si = call.si, so = call.so;
  const LrnParams params{size, alpha, beta, k};
  const bool small = off.scalar_type() == at::kChar;
  void* offp = off.mutable_data_ptr();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "relu_lrn_pool_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* yp = y.mutable_data_ptr<scalar_t>();
    const int64_t R = output_rows_per_tile(C, W, sizeof(acc_t), kernel_size, stride);
    const int64_t row_tiles = (OH + R - 1) / R;
    at::parallel_for(0, N * row_tiles, 1, [&](int64_t begin, int64_t end) {
      const int64_t cap = C * ((R - 1) * stride + kernel_size) * W;
      std::vector<acc_t> A(cap), Y(cap), S(cap / C);
      for (int64_t t = begin; t < end; ++t) {
        const int64_t n = t / row_tiles, oh0 = (t % row_tiles) * R, oh1 = std::min(OH, oh0 + R);
        const int64_t h0 = oh0 * stride, h1 = (oh1 - 1) * stride + kernel_size, np = (h1 - h0) * W;
        gather(xp + n * si.n, si.c, si.w, C, h0 * W, np, true, A.data());
        lrn_forward_tile(A.data(), C, np, params, S.data(), Y.data());
        // Pool the values the unfused path would see: the LRN output rounded to the input dtype.
        for (int64_t i = 0; i < C * np; ++i) Y[i] = static_cast<acc_t>(static_cast<scalar_t>(Y[i]));
        for (int64_t c = 0; c < C; ++c) {
          for (int64_t oh = oh0; oh < oh1; ++oh) {
            for (int64_t ow = 0; ow < OW; ++ow) {
              const acc_t* corner = Y.data() + c * np + (oh * stride - h0) * W + ow * stride;
              acc_t best;
              int64_t best_off;
              window_argmax<acc_t>(kernel_size, [&](int64_t kh, int64_t kw) { return corner[kh * W + kw]; }, best,
                                   best_off);
              const int64_t o = n * so.n + c * so.c + oh * so.h + ow * so.w;
              yp[o] = static_cast<scalar_t>(best);
              if (small) static_cast<int8_t*>(offp)[o] = static_cast<int8_t>(best_off);
              else static_cast<int32_t*>(offp)[o] = static_cast<int32_t>(best_off);
            }
          }
        }
      }
    });
  });
  return {y, off};
}

at::Tensor relu_lrn_pool_backward_cpu(const at::Tensor& grad_y, const at::Tensor& x_in, const at::Tensor& offsets,
                                      int64_t size, double alpha, double beta, double k, int64_t kernel_size,
                                      int64_t stride) {
  PoolCall call = prepare_relu_lrn_pool_backward(grad_y, x_in, offsets, size, kernel_size, stride);
  const at::Tensor &x = call.x, &g = call.g, &off = call.off;
  at::Tensor& gx = call.gx;
  if (cpu::vectorized_dtype(x.scalar_type())) {
    const cpu::Lrn lrn(size, alpha, beta, k);
    cpu::dispatch_vectorized(x.scalar_type(), [&](auto t) {
      cpu::relu_lrn_pool_backward<decltype(t)>(g, x, off, gx, call.fmt, lrn, kernel_size, stride);
    });
    return gx;
  }
  const int64_t N = call.N, C = call.C, H = call.H, W = call.W, OH = call.OH, OW = call.OW;
  const Strides4 si = call.si, so = call.so;
  const LrnParams params{size, alpha, beta, k};
  const void* offp = off.const_data_ptr();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "relu_lrn_pool_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    scalar_t* gxp = gx.mutable_data_ptr<scalar_t>();
    const int64_t rows = std::max<int64_t>(1, kTileBytes / std::max<int64_t>(1, C * W * (int64_t)sizeof(acc_t)));
    const int64_t row_tiles = (H + rows - 1) / rows;
    at::parallel_for(0, N * row_tiles, 1, [&](int64_t begin, int64_t end) {
      const int64_t cap = C * rows * W;
      std::vector<acc_t> A(cap), G(cap), T(cap), U(cap), GX(cap), S(rows * W);
      for (int64_t t = begin; t < end; ++t) {
        const int64_t n = t / row_tiles, h0 = (t % row_tiles) * rows, h1 = std::min(H, h0 + rows);
        const int64_t np = (h1 - h0) * W;
        // Gather the gradient w.r.t. the LRN output: each pooled grad goes to its window's argmax.
        std::fill(G.begin(), G.begin() + C * np, acc_t(0));
        // pooled rows whose windows touch input rows [h0, h1)
        const int64_t oh_lo = covering_windows(h0, OH, kernel_size, stride).lo;
        const int64_t oh_hi = covering_windows(h1 - 1, OH, kernel_size, stride).hi;
        for (int64_t c = 0; c < C; ++c) {
          for (int64_t oh = oh_lo; oh <= oh_hi; ++oh) {
            for (int64_t ow = 0; ow < OW; ++ow) {
              const int64_t o = n * so.n + c * so.c + oh * so.h + ow * so.w;
              const int64_t kk = load_offset(off, offp, o);
              const int64_t h = oh * stride + kk / kernel_size;
              if (h < h0 || h >= h1) continue;
              G[c * np + (h - h0) * W + ow * stride + kk % kernel_size] += static_cast<acc_t>(gp[o]);
            }
          }
        }
        gather(xp + n * si.n, si.c, si.w, C, h0 * W, np, true, A.data());
        lrn_backward_tile(A.data(), G.data(), C, np, params, S.data(), T.data(), U.data(), GX.data());
        scatter(GX.data(), si.c, si.w, C, h0 * W, np, gxp + n * si.n);
      }
    });
  });
  return gx;
}

// Inference forms of the pooling ops: the pooled values only, no offsets to keep for a backward.
at::Tensor max_pool_values_cpu(const at::Tensor& x_in, int64_t kernel_size, int64_t stride) {
  if (!cpu::vectorized_dtype(x_in.scalar_type())) return std::get<0>(max_pool_cpu(x_in, kernel_size, stride));
  PoolCall call = prepare_pool("max_pool_values", x_in, kernel_size, stride, /*offsets=*/false);
  cpu::dispatch_vectorized(call.x.scalar_type(), [&](auto t) {
    cpu::max_pool_forward<decltype(t)>(call.x, call.y, call.off, call.fmt, kernel_size, stride);
  });
  return call.y;
}

at::Tensor relu_lrn_pool_values_cpu(const at::Tensor& x_in, int64_t size, double alpha, double beta, double k,
                                    int64_t kernel_size, int64_t stride) {
  if (!cpu::vectorized_dtype(x_in.scalar_type()))
    return std::get<0>(relu_lrn_pool_cpu(x_in, size, alpha, beta, k, kernel_size, stride));
  PoolCall call = prepare_pool("relu_lrn_pool_values", x_in, kernel_size, stride, /*offsets=*/false, size);
  const cpu::Lrn lrn(size, alpha, beta, k);
  cpu::dispatch_vectorized(call.x.scalar_type(), [&](auto t) {
    cpu::relu_lrn_pool_forward<decltype(t)>(call.x, call.y, call.off, call.fmt, lrn, kernel_size, stride);
  });
  return call.y;
}

std::string cpu_isa() { return cpu::compiled_isa(); }
int64_t stream_threshold_bytes() { return cpu::stream_threshold_bytes(); }

// dst = src with streaming stores, in 64 KiB chunks over the threads: the benchmarks' memory roof beside
// ATen's copy_, whose ordinary stores read every destination line first.
void stream_copy_cpu(at::Tensor dst, const at::Tensor& src) {
  TORCH_CHECK(dst.is_cpu() && src.is_cpu(), "stream_copy_: CPU tensors only, got ", dst.device(), " and ",
              src.device());
  TORCH_CHECK(dst.is_contiguous() && src.is_contiguous() && dst.scalar_type() == src.scalar_type() &&
                  dst.sizes() == src.sizes(),
              "stream_copy_: two contiguous tensors of one dtype and shape, got ", dst.scalar_type(), dst.sizes(),
              " and ", src.scalar_type(), src.sizes());
  char* d = static_cast<char*>(dst.data_ptr());
  const char* s = static_cast<const char*>(src.const_data_ptr());
  const int64_t n = static_cast<int64_t>(dst.nbytes());
  constexpr int64_t kChunk = 1 << 16;
  at::parallel_for(0, (n + kChunk - 1) / kChunk, 1, [&](int64_t begin, int64_t end) {
    const int64_t lo = begin * kChunk, hi = std::min(n, end * kChunk);
    cpu::stream_bytes(d + lo, s + lo, hi - lo);
    cpu::stream_fence();
  });
}

}  // namespace
}  // namespace alexnet_ext

// The ops' schemas are defined once, in Python (kernels/custom_ops.py), before this library loads; here
// only the build's own queries and the implementations.
TORCH_LIBRARY(alexnet_cpp_ext, m) {
  m.def("cpu_isa() -> str");
  m.def("stream_threshold_bytes() -> int");  // relu_lrn's NCHW float output streams past this (in + out)
  m.def("stream_copy_(Tensor(a!) dst, Tensor src) -> ()");  // a yardstick for the benchmarks
}

TORCH_LIBRARY_IMPL(alexnet_cpp_ext, CompositeExplicitAutograd, m) {
  m.impl("cpu_isa", &alexnet_ext::cpu_isa);
  m.impl("stream_threshold_bytes", &alexnet_ext::stream_threshold_bytes);
}

TORCH_LIBRARY_IMPL(alexnet_cpp_ext, CPU, m) {
  ALEXNET_IMPL_OPS(m, cpu);
  // The CPU's inference-only forms of the pooling ops (no argmax offsets).
  m.impl("max_pool_values", &alexnet_ext::max_pool_values_cpu);
  m.impl("relu_lrn_pool_values", &alexnet_ext::relu_lrn_pool_values_cpu);
  m.impl("stream_copy_", &alexnet_ext::stream_copy_cpu);
}
