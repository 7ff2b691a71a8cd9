// Vectorized max-pool (unpadded, floor mode) with argmax offsets on the CPU, in float: inputs of any of
// float, bfloat16 and float16 are widened as loaded (a max is exact, so the pooled value rounds back to
// itself). With AVX-512, the channels_last values-only form (inference) takes bfloat16 and float16 maxima in
// the values' own bits instead (OrderedHalfMax).
//
// The argmax rule is the reference's: scan the window row by row, a value replaces the best when it is
// larger or NaN, so the first maximum wins and NaN wins over everything (the last NaN). Taking each
// window row's best first and then the best row (larger or NaN again) gives exactly that element.
// Offsets are kh * kernel_size + kw, computed as exact small floats and stored as int8/int32.
//
// * rows (NCHW): one pooled row from `kernel_size` input rows, vectors along the output columns; for
//   stride 2 (every AlexNet pool) the columns 2j, 2j+1, 2j+2 come from de-interleaved loads;
// * channels (channels_last): vectors along the channels of one output position.
#pragma once

#include "alexnet_ops_elementwise.h"
#include "cpu_vec.h"

namespace alexnet_ext {
namespace cpu {

// A max of in_t values written as scalar_t: exact (store_exact) when the two are the same type, else rounded.
template <typename in_t, typename scalar_t>
ALEXNET_ALWAYS_INLINE void store_max(scalar_t* p, const Vec& v, int64_t n) {
  if constexpr (std::is_same_v<in_t, scalar_t>) store_exact(p, v, n);
  else store_as(p, v, n);
}

// The element type a pointer type points at (a window row accessor's result).
template <typename P>
using pointee_t = std::remove_cv_t<std::remove_pointer_t<P>>;

// (best, off) <- (v, v_off) where v > best or v is NaN.
inline void take_if_better(Vec& best, Vec& off, const Vec& v, const Vec& v_off) {
  const Vec better = (v > best) | v.isnan();
  best = Vec::blendv(best, v, better);
  off = Vec::blendv(off, v_off, better);
}

// Lanes [0, n) of the (small, exact) float offsets written as off_t; full int8 vectors with one
// convert-and-pack, the rest lane by lane.
template <typename off_t>
inline void store_offsets(off_t* p, const Vec& off, int64_t n) {
#if defined(CPU_CAPABILITY_AVX512)
  if (n >= kLanes) {
    const __m512i i32 = _mm512_cvtps_epi32(off);
    if constexpr (sizeof(off_t) == 1) _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(i32));
    else _mm512_storeu_si512(p, i32);
    return;
  }
#elif defined(CPU_CAPABILITY_AVX2)
  if (n >= kLanes) {
    const __m256i i32 = _mm256_cvtps_epi32(off);
    if constexpr (sizeof(off_t) == 1) {
      const __m128i i16 = _mm_packs_epi32(_mm256_castsi256_si128(i32), _mm256_extracti128_si256(i32, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packs_epi16(i16, i16));
    } else {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), i32);
    }
    return;
  }
#endif
  alignas(64) float tmp[kLanes];
  off.store(tmp);
  for (int64_t i = 0; i < std::min(n, kLanes); ++i) p[i] = static_cast<off_t>(tmp[i]);
}

// Even and odd columns 2j, 2j+1 for j in [j0, j0 + kLanes) of a row; `end` bounds what may be read (the
// end of the buffer or tensor, not of the row: reading into the next row is a full load, not a masked one,
// and those lanes only reach outputs that are not stored).
template <typename in_t>
ALEXNET_ALWAYS_INLINE std::pair<Vec, Vec> columns_s2(const in_t* row, const in_t* end, int64_t start) {
  const int64_t n = end - row - start;
  return at::vec::deinterleave2(load_float(row + start, n), load_float(row + start + kLanes, n - kLanes));
}

// One pooled row: rows[kh] is input row oh * stride + kh (W values, readable up to `end`); writes OW
// outputs and, unless off is null (inference; pool_row_values_s2 is faster where it applies), their offsets.
template <typename in_t, typename scalar_t, typename off_t>
void pool_row(const in_t* const* rows, const in_t* end, int64_t kernel_size, int64_t stride, int64_t W, int64_t OW,
              scalar_t* y, off_t* off) {
  int64_t ow = 0;
  if (stride == 2 && (kernel_size == 2 || kernel_size == 3)) {
    for (; ow < OW; ow += kLanes) {
      Vec best, boff;
      for (int64_t kh = 0; kh < kernel_size; ++kh) {
        auto [even, odd] = columns_s2(rows[kh], end, 2 * ow);
        Vec rbest = even, roff(static_cast<float>(kh * kernel_size));
        take_if_better(rbest, roff, odd, Vec(static_cast<float>(kh * kernel_size + 1)));
        if (kernel_size == 3) {
          const Vec next = columns_s2(rows[kh], end, 2 * ow + 2).first;
          take_if_better(rbest, roff, next, Vec(static_cast<float>(kh * kernel_size + 2)));
        }
        if (kh == 0) {
          best = rbest;
          boff = roff;
        } else {
          take_if_better(best, boff, rbest, roff);
        }
      }
      store_max<in_t>(y + ow, best, OW - ow);
      if (off) store_offsets(off + ow, boff, OW - ow);
    }
    return;
  }
  for (; ow < OW; ++ow) {
    float best;
    int64_t best_off;
    window_argmax<float>(
        kernel_size, [&](int64_t kh, int64_t kw) { return static_cast<float>(rows[kh][ow * stride + kw]); }, best,
        best_off);
    y[ow] = static_cast<scalar_t>(best);
    if (off) off[ow] = static_cast<off_t>(best_off);
  }
}

// Whether pool_row_values_s2 covers this pool (every AlexNet pool does).
inline bool values_s2(int64_t kernel_size, int64_t stride) {
  return stride == 2 && (kernel_size == 2 || kernel_size == 3);
}

// One pooled row, values only (NCHW inference), stride 2 and window 2 or 3: the maxima over the
// kernel_size input rows first, a vector of columns at a time with no shuffles, then over neighbouring
// columns of those maxima from de-interleaved registers: a third of the shuffles of window rows one by one.
// The column maxima stay in registers (an output vector's last one is the next one's first): a round trip
// through a scratch row cost a store and three reloads per output vector. NaN-propagating (the
// reference's value); rows are readable up to `end`.
template <int K, typename in_t, typename scalar_t>
void pool_row_values_s2(const in_t* const* rows, const in_t* end, int64_t OW, scalar_t* y) {
  // Columns the last output vector's loads reach: whole-vector loads (no per-load bound checks) where they
  // stay inside the tensor, which is every row but the last few of the last plane. Columns past the row's
  // used ones only reach output lanes past OW, which are not stored.
  const int64_t reach = 2 * ((OW - 1) / kLanes * kLanes) + (K == 3 ? 3 : 2) * kLanes;
  auto run = [&](auto whole) ALEXNET_ALWAYS_INLINE_LAMBDA {
    const auto column_max = [&](int64_t i) ALEXNET_ALWAYS_INLINE_LAMBDA {
      const int64_t m = decltype(whole)::value ? kLanes : std::clamp<int64_t>(end - rows[K - 1] - i, 0, kLanes);
      if constexpr (K == 3) {
        return maximum3(load_float(rows[0] + i, m), load_float(rows[1] + i, m), load_float(rows[2] + i, m));
      } else {
        return at::vec::maximum(load_float(rows[0] + i, m), load_float(rows[1] + i, m));
      }
    };
    Vec lo = K == 3 ? column_max(0) : Vec(0.f);  // a window of 3: the previous output vector's last columns
    for_each_vector(OW, [&](int64_t ow, int64_t m) ALEXNET_ALWAYS_INLINE_LAMBDA {
      auto [even, odd] = at::vec::deinterleave2(K == 3 ? lo : column_max(2 * ow), column_max(2 * ow + kLanes));
      if constexpr (K == 3) {
        // Columns 2j + 2: the even columns moved down a lane, the next vector's first column shifted in.
        const Vec hi = column_max(2 * ow + 2 * kLanes);
        store_max<in_t>(y + ow, maximum3(even, odd, shift_in_lane(even, hi)), m);
        lo = hi;
      } else {
        store_max<in_t>(y + ow, at::vec::maximum(even, odd), m);
      }
    });
  };
  if (rows[K - 1] + reach <= end) run(std::true_type{});
  else run(std::false_type{});
}

// pool_row_values_s2 for a kernel_size of 2 or 3 (values_s2).
template <typename in_t, typename scalar_t>
void pool_row_values_s2(const in_t* const* rows, const in_t* end, int64_t kernel_size, int64_t OW, scalar_t* y) {
  if (kernel_size == 3) pool_row_values_s2<3>(rows, end, OW, y);
  else pool_row_values_s2<2>(rows, end, OW, y);
}

// One pooled output position over C channels: at(kh, kw) points at the C values of window element
// (kh, kw), at(kh, kw) = at(0, 0) + kh * row_step + kw * col_step; writes C outputs and their offsets (values
// only: pool_row_channels_values). Whole vectors with no partial-vector branches, the window unrolled for
// 2 and 3 (every AlexNet pool), its element addresses a constant step apart.
template <int K, typename in_t, typename scalar_t, typename off_t>
void pool_channels(const in_t* base, int64_t row_step, int64_t col_step, int64_t kernel_size, int64_t C, scalar_t* y,
                   off_t* off) {
  const int64_t window = K > 0 ? K : kernel_size;
  for_each_vector(C, [&](int64_t q, int64_t m) ALEXNET_ALWAYS_INLINE_LAMBDA {
    Vec best(-std::numeric_limits<float>::infinity()), boff(0.f);
    for (int64_t kh = 0; kh < window; ++kh) {
      const in_t* row = base + kh * row_step + q;
      for (int64_t kw = 0; kw < window; ++kw)
        take_if_better(best, boff, load_float(row + kw * col_step, m), Vec(static_cast<float>(kh * window + kw)));
    }
    store_max<in_t>(y + q, best, m);
    store_offsets(off + q, boff, m);
  });
}

template <typename scalar_t, typename off_t, typename At>
void pool_channels(const At& at, int64_t kernel_size, int64_t C, scalar_t* y, off_t* off) {
  const auto* base = at(0, 0);
  const int64_t row_step = kernel_size > 1 ? at(1, 0) - base : 0, col_step = kernel_size > 1 ? at(0, 1) - base : 0;
  if (kernel_size == 3) return pool_channels<3>(base, row_step, col_step, kernel_size, C, y, off);
  if (kernel_size == 2) return pool_channels<2>(base, row_step, col_step, kernel_size, C, y, off);
  pool_channels<0>(base, row_step, col_step, kernel_size, C, y, off);
}

#if defined(CPU_CAPABILITY_AVX512)
// Maxima of bfloat16 and float16 values in their own 16 bits, 32 lanes to a vector and no widening (AVX-512BW
// integer maxima). A 16-bit float is sign and magnitude; its key is an int16 whose order is the float order
// with every NaN above +Inf:
//   key(x) = (x ^ ((x >> 15) & 0x7FFF)) - nan_codes   (arithmetic shift, wrapping subtraction)
// The xor turns sign and magnitude into two's complement (-Inf lowest, -0 just below +0, NaNs of either sign
// at the two ends); subtracting nan_codes, the number of NaN encodings of one sign (0x7F bfloat16, 0x3FF
// float16), wraps the negative NaNs from the bottom to the top and moves everything else down alike. The
// largest key of a window is then the reference's maximum (of two zeros, +0, where the reference keeps the
// first), a NaN (one of the window's, with its bits) where the window has one, and the inverse (add back,
// then the same xor) gives its bits. Against widening to float: half the loads and about half the vector
// operations per value; the float form's widening and NaN-propagating maxima had made the bfloat16 pool no
// faster than float32's when warm. (Measured at AlexNet's conv1, batch 16, 3/2, 2 threads, Zen 4, twelve
// alternations with the float form, medians of single calls and of 20-call loops: bfloat16 0.15-0.20 ms warm
// in eleven of them, 0.30 in one, against 0.23-0.29.)
template <typename half_t>
struct OrderedHalfMax {
  static_assert(sizeof(half_t) == 2, "16-bit floats only");
  static constexpr int64_t kHalfLanes = 32;
  const __m512i magnitude = _mm512_set1_epi16(0x7FFF);
  const __m512i nan_codes = _mm512_set1_epi16(std::is_same_v<half_t, at::BFloat16> ? 0x7F : 0x3FF);

  // x ^ ((x >> 15) & 0x7FFF): its own inverse.
  ALEXNET_ALWAYS_INLINE __m512i flip(__m512i x) const {
    return _mm512_ternarylogic_epi32(x, _mm512_srai_epi16(x, 15), magnitude, 0x78);  // a ^ (b & c)
  }
  ALEXNET_ALWAYS_INLINE __m512i key(__m512i x) const { return _mm512_sub_epi16(flip(x), nan_codes); }
  ALEXNET_ALWAYS_INLINE __m512i bits(__m512i k) const { return flip(_mm512_add_epi16(k, nan_codes)); }
  // Lanes [0, m) of p as keys (the rest: the key of +0, never stored).
  ALEXNET_ALWAYS_INLINE __m512i load_key(const half_t* p, __mmask32 m) const {
    return key(_mm512_maskz_loadu_epi16(m, p));
  }
};

// pool_row_channels_window for 16-bit floats: the same windows, maxima of keys (OrderedHalfMax).
template <int K, typename half_t, typename RowAt>
void pool_row_channels_window_half(const RowAt& rows, int64_t stride, int64_t OW, int64_t C, half_t* y) {
  const OrderedHalfMax<half_t> order;
  constexpr int64_t kHalfLanes = OrderedHalfMax<half_t>::kHalfLanes;
  const half_t* row[K];
  for (int64_t kh = 0; kh < K; ++kh) row[kh] = rows(kh);
  for (int64_t ow = 0; ow < OW; ++ow) {
    const int64_t first = ow * stride * C;
    for (int64_t q = 0; q < C; q += kHalfLanes) {
      const __mmask32 m = C - q >= kHalfLanes ? ~__mmask32(0) : (__mmask32(1) << (C - q)) - 1;
      __m512i best = order.load_key(row[0] + first + q, m);
#pragma GCC unroll 9
      for (int64_t i = 1; i < K * K; ++i)
        best = _mm512_max_epi16(best, order.load_key(row[i / K] + first + (i % K) * C + q, m));
      _mm512_mask_storeu_epi16(y + ow * C + q, m, order.bits(best));
    }
  }
}
#endif

// One pooled output row, values only (channels_last inference), for a window of K = 2 or 3 (every AlexNet
// pool): each output vector straight from the K x K loads of its window (rows(kh) points at input row kh's
// W * C values), maxima of three by maximum3. NaN-propagating (the reference's value).
// (Measured at AlexNet's conv1, batch 16, 2 threads, Zen 4, AVX-512, against the row-buffer form below,
// which took each column's maximum over the window rows first: float32 3/2 0.23-0.24 against 0.36-0.41 ms
// warm and 0.68 against 0.83-0.90 cold; bfloat16 0.23-0.26 against 0.29-0.35 warm; with AVX2 code on the
// same CPU, bfloat16 0.31-0.34 against 0.39-0.46 warm. The row-buffer form had measured faster than windows
// reduced by two-operand maxima alone.)
template <int K, typename scalar_t, typename RowAt>
void pool_row_channels_window(const RowAt& rows, int64_t stride, int64_t OW, int64_t C, scalar_t* y) {
  using in_t = pointee_t<decltype(rows(0))>;
#if defined(CPU_CAPABILITY_AVX512)
  if constexpr (std::is_same_v<in_t, scalar_t> && sizeof(scalar_t) == 2) {
    return pool_row_channels_window_half<K>(rows, stride, OW, C, y);
  }
#endif
  const in_t* row[K];
  for (int64_t kh = 0; kh < K; ++kh) row[kh] = rows(kh);
  for (int64_t ow = 0; ow < OW; ++ow) {
    const int64_t first = ow * stride * C;
    for_each_vector(C, [&](int64_t q, int64_t m) ALEXNET_ALWAYS_INLINE_LAMBDA {
      const auto row_max = [&](const in_t* p) ALEXNET_ALWAYS_INLINE_LAMBDA {
        p += first + q;
        if constexpr (K == 3) return maximum3(load_float(p, m), load_float(p + C, m), load_float(p + 2 * C, m));
        else return at::vec::maximum(load_float(p, m), load_float(p + C, m));
      };
      if constexpr (K == 3) {
        store_max<in_t>(y + ow * C + q, maximum3(row_max(row[0]), row_max(row[1]), row_max(row[2])), m);
      } else {
        store_max<in_t>(y + ow * C + q, at::vec::maximum(row_max(row[0]), row_max(row[1])), m);
      }
    });
  }
}

// Any other window: the maxima over the kernel_size input rows at each of the row's used positions first,
// into `colmax` (W * C floats, in L1), then over kernel_size neighbouring positions.
template <typename scalar_t, typename RowAt>
void pool_row_channels_colmax(const RowAt& rows, int64_t kernel_size, int64_t stride, int64_t OW, int64_t C,
                              float* colmax, scalar_t* y) {
  using in_t = pointee_t<decltype(rows(0))>;
  const int64_t used = ((OW - 1) * stride + kernel_size) * C;
  for_each_vector(used, [&](int64_t i, int64_t m) ALEXNET_ALWAYS_INLINE_LAMBDA {
    Vec v = load_float(rows(0) + i, m);
    for (int64_t k = 1; k < kernel_size; ++k) v = at::vec::maximum(v, load_float(rows(k) + i, m));
    store(colmax + i, v, m);
  });
  for (int64_t ow = 0; ow < OW; ++ow) {
    const float* first = colmax + ow * stride * C;
    scalar_t* out = y + ow * C;
    for_each_vector(C, [&](int64_t q, int64_t m) ALEXNET_ALWAYS_INLINE_LAMBDA {
      Vec best = load(first + q, m);
      for (int64_t k = 1; k < kernel_size; ++k) best = at::vec::maximum(best, load(first + k * C + q, m));
      store_max<in_t>(out + q, best, m);
    });
  }
}

// Floats of the row buffer pool_row_channels_values needs: none for the windows of 2 and 3, which read
// their windows directly.
inline int64_t channels_colmax_floats(int64_t kernel_size, int64_t W, int64_t C) {
  return kernel_size == 2 || kernel_size == 3 ? 0 : W * C;
}

// One pooled output row, values only (channels_last inference); `colmax` holds channels_colmax_floats.
template <typename scalar_t, typename RowAt>
void pool_row_channels_values(const RowAt& rows, int64_t kernel_size, int64_t stride, int64_t OW, int64_t C,
                              float* colmax, scalar_t* y) {
  if (kernel_size == 3) return pool_row_channels_window<3>(rows, stride, OW, C, y);
  if (kernel_size == 2) return pool_row_channels_window<2>(rows, stride, OW, C, y);
  pool_row_channels_colmax(rows, kernel_size, stride, OW, C, colmax, y);
}

// Lanes [0, n) of the offsets at p as exact small floats (the rest zero).
template <typename off_t>
ALEXNET_ALWAYS_INLINE Vec load_offsets(const off_t* p, int64_t n) {
#if defined(CPU_CAPABILITY_AVX512)
  if constexpr (sizeof(off_t) == 1) {
    alignas(16) int8_t bytes[16] = {};
    copy_tail(bytes, p, std::clamp<int64_t>(n, 0, kLanes));
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(bytes))));
  }
#elif defined(CPU_CAPABILITY_AVX2)
  if constexpr (sizeof(off_t) == 1) {
    int64_t bytes = 0;
    if (n >= kLanes) std::memcpy(&bytes, p, 8);
    else copy_tail(&bytes, p, std::max<int64_t>(n, 0));
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(bytes)));
  }
#endif
  alignas(64) float tmp[kLanes] = {};
  for (int64_t i = 0; i < std::min(n, kLanes); ++i) tmp[i] = static_cast<float>(p[i]);
  return Vec::loadu(tmp);
}

// Gradient of one input position over C channels from the pooled gradients of the windows covering it
// (channels_last): dst[c] = sum over covering windows (in output order, from zero) of g[c] where off[c] is
// this position, written as out_t (rounded to nearest even for a 16-bit type). gy / offs: the image's
// pooled gradients and offsets, [OH][OW][C]. Channels go kGatherBlock vectors at a time, summed in
// registers over the windows and stored once (no float scratch row to clear, add into and copy out).
constexpr int64_t kGatherBlock = 4;

template <int64_t kVectors, typename scalar_t, typename off_t, typename out_t>
ALEXNET_ALWAYS_INLINE void gather_pool_grad_block(const CoveringWindows& rows, const CoveringWindows& cols, int64_t h,
                                                  int64_t w, int64_t OW, int64_t kernel_size, int64_t stride, int64_t C,
                                                  const scalar_t* gy, const off_t* offs, out_t* dst, int64_t lanes) {
  Vec sum[kVectors];
#pragma GCC unroll 8
  for (int64_t j = 0; j < kVectors; ++j) sum[j] = Vec(0.f);
  for (int64_t oh = rows.lo; oh <= rows.hi; ++oh) {
    for (int64_t ow = cols.lo; ow <= cols.hi; ++ow) {
      const Vec target(static_cast<float>((h - oh * stride) * kernel_size + (w - ow * stride)));
      const scalar_t* g = gy + (oh * OW + ow) * C;
      const off_t* o = offs + (oh * OW + ow) * C;
#pragma GCC unroll 8
      for (int64_t j = 0; j < kVectors; ++j) {
        const int64_t m = kVectors == 1 ? lanes : kLanes;
        sum[j] = sum[j] + (load_float(g + j * kLanes, m) & (load_offsets(o + j * kLanes, m) == target));
      }
    }
  }
#pragma GCC unroll 8
  for (int64_t j = 0; j < kVectors; ++j) store_as(dst + j * kLanes, sum[j], kVectors == 1 ? lanes : kLanes);
}

template <typename scalar_t, typename off_t, typename out_t>
void gather_pool_grad(int64_t h, int64_t w, int64_t OH, int64_t OW, int64_t kernel_size, int64_t stride, int64_t C,
                      const scalar_t* gy, const off_t* offs, out_t* dst) {
  const CoveringWindows rows = covering_windows(h, OH, kernel_size, stride);
  const CoveringWindows cols = covering_windows(w, OW, kernel_size, stride);
  int64_t q = 0;
  for (; q + kGatherBlock * kLanes <= C; q += kGatherBlock * kLanes)
    gather_pool_grad_block<kGatherBlock>(rows, cols, h, w, OW, kernel_size, stride, C, gy + q, offs + q, dst + q, kLanes);
  for_each_vector(C - q, [&](int64_t v, int64_t m) ALEXNET_ALWAYS_INLINE_LAMBDA {
    gather_pool_grad_block<1>(rows, cols, h, w, OW, kernel_size, stride, C, gy + q + v, offs + q + v, dst + q + v, m);
  });
}

// Adds pooled row oh's gradients (NCHW: g, off hold its OW values) at their argmax in the input rows its
// windows cover, in the reference's order: row(dh) is input row oh * stride + dh (W floats), or null when
// that row is not to be written. The window position comes from a table instead of a division where the
// window has at most 128 positions. Element by element: measured at AlexNet's conv1 (batch 16, AVX2,
// one thread) it beat a vectorized form that builds each input row once from interleaved even/odd
// columns (5.1 against 7.4 ms in float32, 4.9 against 10.6 in bfloat16), whose shifted loads and row
// tails cost more than this loop's scalar stores.
template <typename g_t, typename off_t, typename RowAt>
void scatter_pool_grad_row(const g_t* g, const off_t* off, int64_t OW, int64_t kernel_size, int64_t stride,
                           const RowAt& row) {
  int64_t dh_of[128], dw_of[128];
  const bool table = kernel_size * kernel_size <= 128;
  if (table) {
    for (int64_t kk = 0; kk < kernel_size * kernel_size; ++kk) dh_of[kk] = kk / kernel_size, dw_of[kk] = kk % kernel_size;
  }
  for (int64_t ow = 0; ow < OW; ++ow) {
    const int64_t kk = off[ow];
    const int64_t dh = table ? dh_of[kk] : kk / kernel_size, dw = table ? dw_of[kk] : kk % kernel_size;
    float* dst = row(dh);
    if (dst) dst[ow * stride + dw] += static_cast<float>(g[ow]);
  }
}

}  // namespace cpu
}  // namespace alexnet_ext
