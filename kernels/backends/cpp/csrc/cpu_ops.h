// The vectorized CPU bodies of the six ops for float, bfloat16 and float16 tensors (float64 keeps the
// scalar path in alexnet_ops.cpp). Each takes inputs already checked and made contiguous in `fmt`, and
// outputs allocated in `fmt`; work is split into tiles run through at::parallel_for, each thread with
// its own scratch.
//
// Tiles: NCHW relu_lrn works on (image, block of positions) across all channels;
// channels_last on (image, block of positions), one position's channels at a time. The fused ops take
// bands of rows: the forward computes the LRN of the input rows that a band of pooled rows reads into a
// buffer of the input dtype (rounded as the unfused path would store it) and pools from there;
// the backward routes each pooled gradient to its argmax, then runs the LRN backward on the band.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstring>
#include <vector>

#include "alexnet_ops.h"
#include "cpu_lrn.h"
#include "cpu_pool.h"

namespace alexnet_ext {
namespace cpu {

constexpr int64_t kPlanePositions = 1024;  // positions per NCHW LRN forward block: 4 KiB runs of each channel row
constexpr int64_t kBackwardPositions = 256;  // the backward keeps three C x P buffers: C x 256 floats each
constexpr int64_t kRowPositions = 64;      // channels_last positions per task
constexpr int64_t kBandBytes = 192 * 1024; // target size of a fused tile's float LRN buffer

inline bool vectorized_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kBFloat16 || t == at::kHalf;
}

template <typename F>
void dispatch_vectorized(at::ScalarType t, const F& f) {
  switch (t) {
    case at::kFloat: f(float{}); break;
    case at::kBFloat16: f(at::BFloat16{}); break;
    case at::kHalf: f(at::Half{}); break;
    default: TORCH_CHECK(false, "alexnet_ext: no vectorized CPU path for ", t);
  }
}

// f(offset pointer): int8 or int32 as the tensor is; a null int8 pointer for an undefined tensor (the
// inference ops, which keep no offsets).
template <typename F>
void dispatch_offsets(const at::Tensor& off, const F& f) {
  if (!off.defined()) f(static_cast<int8_t*>(nullptr));
  else if (off.scalar_type() == at::kChar) f(off.data_ptr<int8_t>());
  else f(off.data_ptr<int32_t>());
}

// Input rows [h0, h1) of a band.
struct Band {
  int64_t h0, h1;
  int64_t positions(int64_t W) const { return (h1 - h0) * W; }
};

// Output rows per fused forward tile so that its [C][rows * W] float buffer stays near kBandBytes.
inline int64_t pooled_rows_per_band(int64_t C, int64_t W, int64_t kernel_size, int64_t stride) {
  const int64_t rows_fit = std::max<int64_t>(kernel_size, kBandBytes / std::max<int64_t>(1, C * W * 4));
  return std::clamp<int64_t>((rows_fit - kernel_size) / stride + 1, 1, 16);
}

// ------------------------------------------------------------------------------------------------
// relu_lrn
// ------------------------------------------------------------------------------------------------

template <typename scalar_t>
void relu_lrn_forward(const at::Tensor& x, at::Tensor& y, at::MemoryFormat fmt, const Lrn& p) {
  const int64_t N = x.size(0), C = x.size(1), P = x.size(2) * x.size(3);
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  scalar_t* yp = y.mutable_data_ptr<scalar_t>();
  constexpr bool is_float = std::is_same_v<scalar_t, float>;
  // Outputs stored as computed, a vector at a time: float, and bfloat16 where one instruction rounds a vector.
  constexpr bool direct = is_float || kOneInstructionStores<scalar_t>;
  if (fmt == at::MemoryFormat::ChannelsLast) {
    at::parallel_for(0, N * P, kRowPositions, [&](int64_t begin, int64_t end) {
      std::vector<float> sq_buf(padded_row_floats(C, p)), ys(direct ? 0 : C), arow(is_float ? 0 : C);
      float* sq = init_padded_row(sq_buf.data(), C, p);
      with_lrn_scale<kEstimatesSuffice<scalar_t>>(p, [&](const auto& scale) {
        for (int64_t pos = begin; pos < end; ++pos) {
          if constexpr (direct) {
            lrn_forward_row(scale, xp + pos * C, yp + pos * C, C, p, sq, arow.data());
          } else {  // as the planes below: the row in float, then converted two vectors at a time
            lrn_forward_row(scale, xp + pos * C, ys.data(), C, p, sq, arow.data());
            from_float(ys.data(), yp + pos * C, C);
          }
        }
      });
    });
    return;
  }
  const int64_t blocks = (P + kPlanePositions - 1) / kPlanePositions;
  const bool stream_y = is_float && x.nbytes() + y.nbytes() > stream_threshold_bytes();
  at::parallel_for(0, N * blocks, 1, [&](int64_t begin, int64_t end) {
    // Other 16-bit outputs: each channel row computed in float, then converted two vectors at a time
    // (measured faster than ATen's conversion per vector inside the LRN loop, whose extra live constants spill).
    std::vector<float> sq(lrn_forward_planes_scratch(kPlanePositions, p)), ys(direct ? 0 : C * kPlanePositions);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / blocks, p0 = (t % blocks) * kPlanePositions, np = std::min(kPlanePositions, P - p0);
      const int64_t base = n * C * P + p0;
      if constexpr (direct) {
        lrn_forward_planes(xp + base, P, yp + base, P, C, np, p, sq.data(), stream_y);
      } else {
        lrn_forward_planes(xp + base, P, ys.data(), np, C, np, p, sq.data());
        for (int64_t c = 0; c < C; ++c) from_float(ys.data() + c * np, yp + base + c * P, np);
      }
    }
  });
}

template <typename scalar_t>
void relu_lrn_backward(const at::Tensor& g, const at::Tensor& x, at::Tensor& gx, at::MemoryFormat fmt, const Lrn& p) {
  const int64_t N = x.size(0), C = x.size(1), P = x.size(2) * x.size(3);
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  const scalar_t* gp = g.const_data_ptr<scalar_t>();
  scalar_t* gxp = gx.mutable_data_ptr<scalar_t>();
  if (fmt == at::MemoryFormat::ChannelsLast) {
    at::parallel_for(0, N * P, kRowPositions, [&](int64_t begin, int64_t end) {
      const int64_t padded = padded_row_floats(C, p);
      std::vector<float> sq_buf(padded), t_buf(padded), u(C);
      float* sq = init_padded_row(sq_buf.data(), C, p);
      float* t = init_padded_row(t_buf.data(), C, p);
      with_lrn_scale(p, [&](const auto& scale) {
        for (int64_t pos = begin; pos < end; ++pos)
          lrn_backward_row(scale, xp + pos * C, gp + pos * C, gxp + pos * C, C, p, sq, u.data(), t);
      });
    });
    return;
  }
  const int64_t blocks = (P + kBackwardPositions - 1) / kBackwardPositions;
  at::parallel_for(0, N * blocks, 1, [&](int64_t begin, int64_t end) {
    const int64_t cap = lrn_planes_scratch(C, kBackwardPositions);
    std::vector<float> sq(cap), u(cap), tt(cap);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / blocks, p0 = (t % blocks) * kBackwardPositions, np = std::min(kBackwardPositions, P - p0);
      const int64_t base = n * C * P + p0;
      lrn_backward_planes(xp + base, P, gp + base, P, gxp + base, P, C, np, p, sq.data(), u.data(), tt.data());
    }
  });
}

// ------------------------------------------------------------------------------------------------
// max_pool
// ------------------------------------------------------------------------------------------------

template <typename scalar_t>
void max_pool_forward(const at::Tensor& x, at::Tensor& y, at::Tensor& off, at::MemoryFormat fmt, int64_t kernel_size,
                      int64_t stride) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), OH = y.size(2), OW = y.size(3);
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  scalar_t* yp = y.mutable_data_ptr<scalar_t>();
  dispatch_offsets(off, [&](auto* op) {
    if (fmt == at::MemoryFormat::ChannelsLast) {
      // (image, pooled row) tasks; each window element is C contiguous values.
      at::parallel_for(0, N * OH, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> colmax(op ? 0 : channels_colmax_floats(kernel_size, W, C));
        for (int64_t r = begin; r < end; ++r) {
          const int64_t n = r / OH, oh = r % OH;
          const scalar_t* first = xp + ((n * H) + oh * stride) * W * C;
          if (!op) {
            pool_row_channels_values([&](int64_t kh) { return first + kh * W * C; }, kernel_size, stride, OW, C,
                                     colmax.data(), yp + r * OW * C);
            continue;
          }
          for (int64_t ow = 0; ow < OW; ++ow) {
            const int64_t o = (r * OW + ow) * C;
            pool_channels([&](int64_t kh, int64_t kw) { return first + (kh * W + ow * stride + kw) * C; },
                          kernel_size, C, yp + o, op + o);
          }
        }
      });
      return;
    }
    // (image, channel) planes.
    const scalar_t* x_end = xp + N * C * H * W;
    at::parallel_for(0, N * C, 1, [&](int64_t begin, int64_t end) {
      std::vector<const scalar_t*> rows(kernel_size);
      const bool values = !op && values_s2(kernel_size, stride);
      for (int64_t nc = begin; nc < end; ++nc) {
        const scalar_t* plane = xp + nc * H * W;
        for (int64_t oh = 0; oh < OH; ++oh) {
          for (int64_t kh = 0; kh < kernel_size; ++kh) rows[kh] = plane + (oh * stride + kh) * W;
          const int64_t o = (nc * OH + oh) * OW;
          if (values) pool_row_values_s2(rows.data(), x_end, kernel_size, OW, yp + o);
          else pool_row(rows.data(), x_end, kernel_size, stride, W, OW, yp + o, op ? op + o : op);
        }
      }
    });
  });
}

// n floats of src stored as scalar_t.
template <typename scalar_t>
inline void store_row(const float* src, scalar_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; i += kLanes) store_as(dst + i, load(src + i, n - i), n - i);
}

template <typename scalar_t>
void max_pool_backward(const at::Tensor& g, const at::Tensor& off, at::Tensor& gx, at::MemoryFormat fmt,
                       int64_t kernel_size, int64_t stride) {
  const int64_t N = gx.size(0), C = gx.size(1), H = gx.size(2), W = gx.size(3), OH = g.size(2), OW = g.size(3);
  const scalar_t* gp = g.const_data_ptr<scalar_t>();
  scalar_t* gxp = gx.mutable_data_ptr<scalar_t>();
  constexpr bool is_float = std::is_same_v<scalar_t, float>;
  dispatch_offsets(off, [&](auto* op_mut) {
    using off_t = std::remove_pointer_t<decltype(op_mut)>;
    const off_t* op = op_mut;
    if (fmt == at::MemoryFormat::ChannelsLast) {
      // Each input position gathers from the (at most ceil(k/s)^2) windows covering it: written once.
      at::parallel_for(0, N * H, 1, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const int64_t n = r / H, h = r % H;
          for (int64_t w = 0; w < W; ++w) {
            const int64_t pooled = n * OH * OW;
            gather_pool_grad(h, w, OH, OW, kernel_size, stride, C, gp + pooled * C, op + pooled * C,
                             gxp + (r * W + w) * C);
          }
        }
      });
      return;
    }
    // Planes: zero, then add each pooled gradient at its argmax (float accumulation).
    at::parallel_for(0, N * C, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> plane_buf(is_float ? 0 : H * W);
      for (int64_t nc = begin; nc < end; ++nc) {
        const scalar_t* gr = gp + nc * OH * OW;
        const off_t* orow = op + nc * OH * OW;
        float* plane;
        if constexpr (is_float) plane = gxp + nc * H * W;
        else plane = plane_buf.data();
        std::fill(plane, plane + H * W, 0.f);
        for (int64_t oh = 0; oh < OH; ++oh) {
          scatter_pool_grad_row(gr + oh * OW, orow + oh * OW, OW, kernel_size, stride,
                                [&](int64_t dh) { return plane + (oh * stride + dh) * W; });
        }
        if constexpr (!is_float) store_row(plane, gxp + nc * H * W, H * W);
      }
    });
  });
}

// ------------------------------------------------------------------------------------------------
// relu_lrn_pool (fused)
// ------------------------------------------------------------------------------------------------

template <typename scalar_t>
void relu_lrn_pool_forward(const at::Tensor& x, at::Tensor& y, at::Tensor& off, at::MemoryFormat fmt, const Lrn& p,
                           int64_t kernel_size, int64_t stride) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), OH = y.size(2), OW = y.size(3);
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  scalar_t* yp = y.mutable_data_ptr<scalar_t>();
  const int64_t R = pooled_rows_per_band(C, W, kernel_size, stride);
  const int64_t bands = (OH + R - 1) / R;
  const int64_t band_rows = (R - 1) * stride + kernel_size;
  const bool cl = fmt == at::MemoryFormat::ChannelsLast;
  dispatch_offsets(off, [&](auto* op) {
    // buf_t: the element type of the band's LRN buffer (below).
    auto run_bands = [&](auto buf_tag) {
      using buf_t = decltype(buf_tag);
      at::parallel_for(0, N * bands, 1, [&](int64_t begin, int64_t end) {
        // The band's LRN outputs, row r of the band at: channels_last lrn[(r * W + w) * C + c], position-major
        // like the input; NCHW lrn[c * ld + r * W + w], channel-major with a fixed channel stride.
        const int64_t ld = band_rows * W;
        std::vector<buf_t> lrn(C * ld + 2 * kLanes);  // + slack: the pooling's loads are whole vectors
        const buf_t* lrn_end = lrn.data() + lrn.size();
        std::vector<float> sq(cl ? padded_row_floats(C, p) : lrn_forward_planes_scratch(kPlanePositions, p));
        float* sq_row = cl ? init_padded_row(sq.data(), C, p) : nullptr;
        std::vector<float> arow(cl && !std::is_same_v<scalar_t, float> ? C : 0);
        std::vector<const buf_t*> rows(kernel_size);
        std::vector<float> colmax(!op && cl ? channels_colmax_floats(kernel_size, W, C) : 0);
        const bool values = !op && values_s2(kernel_size, stride);
        // Consecutive bands of an image share kernel_size - stride input rows (one, for 3/2): when the
        // buffer holds the previous band, its last rows move to the front instead of being computed again.
        int64_t have_n = -1, have_h0 = 0, have_h1 = 0;
        for (int64_t t = begin; t < end; ++t) {
          const int64_t n = t / bands, oh0 = (t % bands) * R, oh1 = std::min(OH, oh0 + R);
          const Band band{oh0 * stride, (oh1 - 1) * stride + kernel_size};
          const int64_t carried = (have_n == n && band.h0 >= have_h0 && band.h0 < have_h1) ? have_h1 - band.h0 : 0;
          const int64_t from = (band.h0 - have_h0) * W, q_fresh = carried * W, np = band.positions(W);
          have_n = n, have_h0 = band.h0, have_h1 = band.h1;
          if (cl) {
            if (carried) std::memmove(lrn.data(), lrn.data() + from * C, q_fresh * C * sizeof(buf_t));
            const scalar_t* xb = xp + (n * H + band.h0) * W * C;
            with_lrn_scale<kEstimatesSuffice<scalar_t>>(p, [&](const auto& scale) {
              for (int64_t q = q_fresh; q < np; ++q) {
                prefetch_positions_ahead(xb + q * C, C);
                lrn_forward_row(scale, xb + q * C, lrn.data() + q * C, C, p, sq_row, arow.data());
              }
            });
            for (int64_t oh = oh0; oh < oh1; ++oh) {
              const buf_t* top = lrn.data() + (oh * stride - band.h0) * W * C;
              if (!op) {
                pool_row_channels_values([&](int64_t kh) { return top + kh * W * C; }, kernel_size, stride, OW, C,
                                         colmax.data(), yp + (n * OH + oh) * OW * C);
                continue;
              }
              for (int64_t ow = 0; ow < OW; ++ow) {
                const int64_t o = ((n * OH + oh) * OW + ow) * C;
                pool_channels([&](int64_t kh, int64_t kw) { return top + (kh * W + ow * stride + kw) * C; },
                              kernel_size, C, yp + o, op + o);
              }
            }
            continue;
          }
          if (carried) {
            for (int64_t c = 0; c < C; ++c)
              std::memmove(lrn.data() + c * ld, lrn.data() + c * ld + from, q_fresh * sizeof(buf_t));
          }
          const scalar_t* xb = xp + n * C * H * W + band.h0 * W;
          for (int64_t q0 = q_fresh; q0 < np; q0 += kPlanePositions) {
            const int64_t nq = std::min(kPlanePositions, np - q0);
            lrn_forward_planes(xb + q0, H * W, lrn.data() + q0, ld, C, nq, p, sq.data());
          }
          for (int64_t c = 0; c < C; ++c) {
            for (int64_t oh = oh0; oh < oh1; ++oh) {
              for (int64_t kh = 0; kh < kernel_size; ++kh)
                rows[kh] = lrn.data() + c * ld + (oh * stride + kh - band.h0) * W;
              const int64_t o = ((n * C + c) * OH + oh) * OW;
              if (values) pool_row_values_s2(rows.data(), lrn_end, kernel_size, OW, yp + o);
              else pool_row(rows.data(), lrn_end, kernel_size, stride, W, OW, yp + o, op ? op + o : op);
            }
          }
        }
      });
    };
    // With offsets (training) the LRN values are stored in the input dtype, as the unfused op stores them, so
    // that a 16-bit input's ties pick the same argmax as eager. Without (inference) they stay in float:
    // rounding to nearest is monotonic, so the maximum of the rounded values is the rounded maximum - the
    // same outputs, without rounding every LRN value and widening it again for the pooling.
    if (op == nullptr) run_bands(float{});
    else run_bands(scalar_t{});
  });
}

template <typename scalar_t>
void relu_lrn_pool_backward(const at::Tensor& g, const at::Tensor& x, const at::Tensor& off, at::Tensor& gx,
                            at::MemoryFormat fmt, const Lrn& p, int64_t kernel_size, int64_t stride) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), OH = g.size(2), OW = g.size(3);
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  const scalar_t* gp = g.const_data_ptr<scalar_t>();
  scalar_t* gxp = gx.mutable_data_ptr<scalar_t>();
  dispatch_offsets(off, [&](auto* op_mut) {
    using off_t = std::remove_pointer_t<decltype(op_mut)>;
    const off_t* op = op_mut;
    if (fmt == at::MemoryFormat::ChannelsLast) {
      // Per input position: its LRN-output gradient gathered from the covering windows, then the LRN backward.
      at::parallel_for(0, N * H, 1, [&](int64_t begin, int64_t end) {
        const int64_t padded = padded_row_floats(C, p);
        std::vector<float> sq_buf(padded), t_buf(padded), u(C), acc(C);
        float* sq = init_padded_row(sq_buf.data(), C, p);
        float* t = init_padded_row(t_buf.data(), C, p);
        with_lrn_scale(p, [&](const auto& scale) {
          for (int64_t r = begin; r < end; ++r) {
            const int64_t n = r / H, h = r % H, pooled = n * OH * OW;
            for (int64_t w = 0; w < W; ++w) {
              gather_pool_grad(h, w, OH, OW, kernel_size, stride, C, gp + pooled * C, op + pooled * C, acc.data());
              const int64_t pos = (r * W + w) * C;
              lrn_backward_row(scale, xp + pos, acc.data(), gxp + pos, C, p, sq, u.data(), t);
            }
          }
        });
      });
      return;
    }
    // NCHW: bands of input rows; G = the LRN-output gradient of the band ([C][np]), then the LRN backward
    // on blocks of its positions.
    const int64_t band_rows = std::max<int64_t>(1, kBandBytes / std::max<int64_t>(1, C * W * 4));
    const int64_t bands = (H + band_rows - 1) / band_rows;
    at::parallel_for(0, N * bands, 1, [&](int64_t begin, int64_t end) {
      const int64_t plane_cap = lrn_planes_scratch(C, kBackwardPositions);
      std::vector<float> G(C * band_rows * W), sq(plane_cap), u(plane_cap), tt(plane_cap);
      for (int64_t t = begin; t < end; ++t) {
        const int64_t n = t / bands;
        const Band band{(t % bands) * band_rows, std::min(H, (t % bands) * band_rows + band_rows)};
        const int64_t np = band.positions(W);
        const int64_t oh_lo = covering_windows(band.h0, OH, kernel_size, stride).lo;
        const int64_t oh_hi = covering_windows(band.h1 - 1, OH, kernel_size, stride).hi;
        std::fill(G.begin(), G.begin() + C * np, 0.f);
        for (int64_t c = 0; c < C; ++c) {
          const scalar_t* gr = gp + (n * C + c) * OH * OW;
          const off_t* orow = op + (n * C + c) * OH * OW;
          float* Gc = G.data() + c * np;
          for (int64_t oh = oh_lo; oh <= oh_hi; ++oh) {
            scatter_pool_grad_row(gr + oh * OW, orow + oh * OW, OW, kernel_size, stride, [&](int64_t dh) {
              const int64_t h = oh * stride + dh;
              return h < band.h0 || h >= band.h1 ? nullptr : Gc + (h - band.h0) * W;
            });
          }
        }
        const int64_t base = n * C * H * W + band.h0 * W;
        for (int64_t q0 = 0; q0 < np; q0 += kBackwardPositions) {
          const int64_t nq = std::min(kBackwardPositions, np - q0);
          lrn_backward_planes(xp + base + q0, H * W, G.data() + q0, np, gxp + base + q0, H * W, C, nq, p, sq.data(),
                              u.data(), tt.data());
        }
      }
    });
  });
}

}  // namespace cpu
}  // namespace alexnet_ext
