// Float-vector helpers of the extension's CPU kernels: ATen's at::vec::Vectorized<float> (8 lanes with
// AVX2, 16 with AVX-512, a portable array otherwise), chosen by the CPU_CAPABILITY the extension is built
// for (kernels/backends/cpp/__init__.py picks it from the running CPU and keys the build cache by it).
//
// Every kernel computes in float: float inputs are read and written in place, bfloat16/float16 rows are
// converted to float scratch rows first (at::vec::convert) and back after. float64 keeps the scalar path
// in alexnet_ops.cpp.
#pragma once

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace alexnet_ext {
namespace cpu {

// For small vector helpers the compiler would otherwise call out of line (a std::pair of vectors is
// returned through memory, and a call through the PLT costs more than the loads it wraps).
#define ALEXNET_ALWAYS_INLINE inline __attribute__((always_inline))

using Vec = at::vec::Vectorized<float>;
constexpr int64_t kLanes = Vec::size();

// The instruction set this translation unit was compiled for (checked against the CPU at load time).
inline const char* compiled_isa() {
#if defined(CPU_CAPABILITY_AVX512)
  return "AVX512";
#elif defined(CPU_CAPABILITY_AVX2)
  return "AVX2";
#else
  return "DEFAULT";
#endif
}

// Lanes [0, n) of p; the rest are zero. Masked for n < kLanes, so it never reads past p[n - 1].
ALEXNET_ALWAYS_INLINE Vec load(const float* p, int64_t n) {
  if (n >= kLanes) return Vec::loadu(p);
  if (n <= 0) return Vec(0.f);
  return Vec::loadu(p, n);
}

ALEXNET_ALWAYS_INLINE void store(float* p, const Vec& v, int64_t n) {
  if (n >= kLanes) v.store(p);
  else if (n > 0) v.store(p, static_cast<int>(n));
}

// ReLU that keeps NaN (like torch.relu): v <= 0 -> 0, otherwise v. The x86 max returns its second
// operand when either is NaN, so max(0, v) is one instruction (Vec::blendv converts its mask to a vector
// and back: three more).
ALEXNET_ALWAYS_INLINE Vec relu(const Vec& v) {
#if defined(CPU_CAPABILITY_AVX512)
  return _mm512_max_ps(_mm512_setzero_ps(), v);
#elif defined(CPU_CAPABILITY_AVX2)
  return _mm256_max_ps(_mm256_setzero_ps(), v);
#else
  const Vec zero(0.f);
  return Vec::blendv(v, zero, v <= zero);
#endif
}

// v where d is not +Inf, else 0.
ALEXNET_ALWAYS_INLINE Vec zero_where_inf(const Vec& v, const Vec& d) {
#if defined(CPU_CAPABILITY_AVX512)
  return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(d, _mm512_set1_ps(INFINITY), _CMP_EQ_OQ), _mm512_setzero_ps());
#elif defined(CPU_CAPABILITY_AVX2)
  return _mm256_andnot_ps(_mm256_cmp_ps(d, _mm256_set1_ps(INFINITY), _CMP_EQ_OQ), v);
#else
  return Vec::blendv(v, Vec(0.f), d == Vec(INFINITY));
#endif
}

// Lanes [0, n) of v written as scalar_t (float is stored as is).
template <typename scalar_t>
inline void store_as(scalar_t* p, const Vec& v, int64_t n) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    store(p, v, n);
  } else {
    alignas(64) float tmp[kLanes];
    v.store(tmp);
    for (int64_t i = 0; i < std::min(n, kLanes); ++i) p[i] = static_cast<scalar_t>(tmp[i]);
  }
}

// n values converted to float / from float (the 16-bit types two vectors at a time).
template <typename scalar_t>
inline void to_float(const scalar_t* src, float* dst, int64_t n) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    std::copy(src, src + n, dst);
  } else {
    using SVec = at::vec::Vectorized<scalar_t>;
    int64_t i = 0;
    for (; i + SVec::size() <= n; i += SVec::size()) {
      auto [lo, hi] = at::vec::convert_to_float<scalar_t>(SVec::loadu(src + i));
      lo.store(dst + i);
      hi.store(dst + i + kLanes);
    }
    for (; i < n; ++i) dst[i] = static_cast<float>(src[i]);
  }
}

template <typename scalar_t>
inline void from_float(const float* src, scalar_t* dst, int64_t n) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    std::copy(src, src + n, dst);
  } else {
    using SVec = at::vec::Vectorized<scalar_t>;
    int64_t i = 0;
    for (; i + SVec::size() <= n; i += SVec::size()) {
      at::vec::convert_from_float<scalar_t>(Vec::loadu(src + i), Vec::loadu(src + i + kLanes)).store(dst + i);
    }
    for (; i < n; ++i) dst[i] = static_cast<scalar_t>(src[i]);
  }
}

// rows x P values of src (row stride ld_src) as a float block: float input is used in place (its own
// stride is returned in ld), anything else is converted into `scratch` (row stride P).
template <typename scalar_t>
inline const float* float_rows(const scalar_t* src, int64_t ld_src, int64_t rows, int64_t P, float* scratch,
                               int64_t& ld) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    ld = ld_src;
    return src;
  } else {
    for (int64_t r = 0; r < rows; ++r) to_float(src + r * ld_src, scratch + r * P, P);
    ld = P;
    return scratch;
  }
}

// The values a float result takes once stored as scalar_t and read back (identity for float);
// `tmp` holds n scalar_t.
template <typename scalar_t>
inline void round_through(float* v, int64_t n, scalar_t* tmp) {
  if constexpr (!std::is_same_v<scalar_t, float>) {
    from_float(v, tmp, n);
    to_float(tmp, v, n);
  }
}

}  // namespace cpu
}  // namespace alexnet_ext
