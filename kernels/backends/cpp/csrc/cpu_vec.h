// Float-vector helpers of the extension's CPU kernels: ATen's at::vec::Vectorized<float> (8 lanes with
// AVX2, 16 with AVX-512, a portable array otherwise), chosen by the CPU_CAPABILITY the extension is built
// for (kernels/backends/cpp/__init__.py picks it from the running CPU and keys the build cache by it).
//
// Every kernel computes in float: bfloat16/float16 values are widened to float in registers as they are
// loaded (load_float) and rounded back as they are stored (store_as), a vector at a time, so no pass
// converts whole blocks into float scratch and back. float64 keeps the scalar path in alexnet_ops.cpp.
#pragma once

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <type_traits>

#include <unistd.h>

namespace alexnet_ext {
namespace cpu {

// For small vector helpers the compiler would otherwise call out of line (a std::pair of vectors is
// returned through memory, and a call through the PLT costs more than the loads it wraps).
#define ALEXNET_ALWAYS_INLINE inline __attribute__((always_inline))
#define ALEXNET_ALWAYS_INLINE_LAMBDA __attribute__((always_inline))

using Vec = at::vec::Vectorized<float>;
constexpr int64_t kLanes = Vec::size();

// The AVX512_BF16 level: the AVX-512 build with -mavx512bf16, whose bfloat16 stores round a whole vector
// in one instruction (vcvtneps2bf16) instead of ATen's eight integer steps. Like every conversion by that
// instruction, a result below bfloat16's smallest normal (2^-126) is stored as a zero of its sign, and a
// NaN as a quiet NaN of its sign.
#if defined(CPU_CAPABILITY_AVX512) && defined(__AVX512BF16__)
#define ALEXNET_AVX512_BF16 1
#endif

// The instruction set this translation unit was compiled for (checked against the CPU at load time).
inline const char* compiled_isa() {
#if defined(ALEXNET_AVX512_BF16)
  return "AVX512_BF16";
#elif defined(CPU_CAPABILITY_AVX512)
  return "AVX512";
#elif defined(CPU_CAPABILITY_AVX2)
  return "AVX2";
#else
  return "DEFAULT";
#endif
}

// The first `bytes` (< 64) bytes of src copied to dst in at most five fixed-size moves: the tail of a row
// without a call to memcpy or a masked store (vmaskmovps stores are microcoded on AMD Zen).
ALEXNET_ALWAYS_INLINE void copy_tail(void* dst, const void* src, int64_t bytes) {
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
  if (bytes & 32) std::memcpy(d, s, 32), d += 32, s += 32;
  if (bytes & 16) std::memcpy(d, s, 16), d += 16, s += 16;
  if (bytes & 8) std::memcpy(d, s, 8), d += 8, s += 8;
  if (bytes & 4) std::memcpy(d, s, 4), d += 4, s += 4;
  if (bytes & 2) std::memcpy(d, s, 2), d += 2, s += 2;
  if (bytes & 1) *d = *s;
}

// Lanes [0, n) of p; the rest are zero. Masked for n < kLanes, so it never reads past p[n - 1].
ALEXNET_ALWAYS_INLINE Vec load(const float* p, int64_t n) {
  if (n >= kLanes) return Vec::loadu(p);
  if (n <= 0) return Vec(0.f);
  return Vec::loadu(p, n);
}

ALEXNET_ALWAYS_INLINE void store(float* p, const Vec& v, int64_t n) {
  if (n >= kLanes) {
    v.store(p);
  } else if (n > 0) {
    alignas(64) float tmp[kLanes];
    v.store(tmp);
    copy_tail(p, tmp, n * sizeof(float));
  }
}

// Streaming stores: a whole vector written past the caches (no read for ownership of its line, and the
// line is not left in the cache), at an address aligned to kStreamAlign bytes. They pay where an op's
// output cannot stay cached anyway: stream_threshold_bytes() is the last-level cache's size as Linux
// reports it in sysfs (the largest cache of cpu0, as bench.timing reads it; glibc's sysconf reports
// 320 MiB for the 32 MiB cache of a 2-core AMD EPYC VM), else the C library's sysconf, and no size at all
// where neither reports one (the largest int64: never).
// A thread that streamed calls stream_fence() before its results are read elsewhere (they are weakly
// ordered). Without AVX2 or AVX-512 they are plain stores.
constexpr int64_t kStreamAlign = kLanes * static_cast<int64_t>(sizeof(float));
ALEXNET_ALWAYS_INLINE void stream(float* p, const Vec& v) {
#if defined(CPU_CAPABILITY_AVX512)
  _mm512_stream_ps(p, v);
#elif defined(CPU_CAPABILITY_AVX2)
  _mm256_stream_ps(p, v);
#else
  v.store(p);
#endif
}
inline void stream_fence() {
#if defined(CPU_CAPABILITY_AVX512) || defined(CPU_CAPABILITY_AVX2)
  _mm_sfence();
#endif
}
// Bytes from p to the first kStreamAlign boundary at or after it: what goes as plain stores before streaming.
ALEXNET_ALWAYS_INLINE int64_t bytes_to_stream_boundary(const void* p) {
  const int64_t misaligned = static_cast<int64_t>(reinterpret_cast<uintptr_t>(p) % kStreamAlign);
  return (kStreamAlign - misaligned) % kStreamAlign;
}
// n bytes from s to d: the head up to d's first kStreamAlign boundary and the tail copied, the rest as
// streaming stores four vectors at a time (the benchmarks' memory roof: a copy with no read for ownership).
inline void stream_bytes(char* d, const char* s, int64_t n) {
  const int64_t head = std::min<int64_t>(n, bytes_to_stream_boundary(d));
  std::memcpy(d, s, head);
  d += head, s += head, n -= head;
  for (; n >= 4 * kStreamAlign; n -= 4 * kStreamAlign, d += 4 * kStreamAlign, s += 4 * kStreamAlign) {
    const Vec v0 = Vec::loadu(s), v1 = Vec::loadu(s + kStreamAlign), v2 = Vec::loadu(s + 2 * kStreamAlign),
              v3 = Vec::loadu(s + 3 * kStreamAlign);
    stream(reinterpret_cast<float*>(d), v0);
    stream(reinterpret_cast<float*>(d + kStreamAlign), v1);
    stream(reinterpret_cast<float*>(d + 2 * kStreamAlign), v2);
    stream(reinterpret_cast<float*>(d + 3 * kStreamAlign), v3);
  }
  for (; n >= kStreamAlign; n -= kStreamAlign, d += kStreamAlign, s += kStreamAlign)
    stream(reinterpret_cast<float*>(d), Vec::loadu(s));
  std::memcpy(d, s, n);
}

inline int64_t sysfs_largest_cache_bytes() {
  int64_t best = 0;
  for (int index = 0; index < 8; ++index) {
    std::ifstream f("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/size");
    int64_t size = 0;
    char unit = 0;
    if (!(f >> size) || size <= 0) continue;
    if (f >> unit) size <<= unit == 'K' ? 10 : unit == 'M' ? 20 : unit == 'G' ? 30 : 0;
    best = std::max(best, size);
  }
  return best;
}
inline int64_t stream_threshold_bytes() {
  static const int64_t bytes = [] {
    int64_t llc = sysfs_largest_cache_bytes();
#if defined(_SC_LEVEL3_CACHE_SIZE)
    if (llc <= 0) llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (llc <= 0) llc = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    return llc > 0 ? llc : std::numeric_limits<int64_t>::max();
  }();
  return bytes;
}

// body(q, m) for q = 0, kLanes, ... < n with m the lanes left: kLanes (a constant, so that the
// load/store helpers' partial-vector branches fold away) for every whole vector, then n - q once for a
// partial last vector.
template <typename Body>
ALEXNET_ALWAYS_INLINE void for_each_vector(int64_t n, const Body& body) {
  int64_t q = 0;
  for (; q + kLanes <= n; q += kLanes) body(q, kLanes);
  if (q < n) body(q, n - q);
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

// Lanes [0, n) of p (float, bfloat16 or float16) widened to float; the rest are zero. Never reads past
// p[n - 1]. A full 16-bit vector is one load and one widening (a shift for bfloat16, vcvtph2ps for float16).
template <typename scalar_t>
ALEXNET_ALWAYS_INLINE Vec load_float(const scalar_t* p, int64_t n) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    return load(p, n);
  } else {
    if (n >= kLanes) {
      Vec v;
      at::vec::load_to_float<scalar_t>(p, v);
      return v;
    }
    if (n <= 0) return Vec(0.f);
    alignas(64) scalar_t tmp[kLanes] = {};
    copy_tail(tmp, p, n * sizeof(scalar_t));
    Vec v;
    at::vec::load_to_float<scalar_t>(tmp, v);
    return v;
  }
}

// The largest of a, b and c, NaN where any of them is NaN (the value the reference's max-pool gives a
// window of three). The x86 max returns its second operand when either is NaN, so b's NaN passes through
// both maxima, and one unordered compare of a and c catches theirs: four instructions, against six for
// two at::vec::maximum (each a max, an unordered compare and an or). A NaN result is a NaN, not
// necessarily the input's payload. Used by both values passes: NCHW (about 5% off its warm time, AVX2) and
// channels_last, whose windows it reduces in four maxima of three.
ALEXNET_ALWAYS_INLINE Vec maximum3(const Vec& a, const Vec& b, const Vec& c) {
#if defined(CPU_CAPABILITY_AVX512)
  const __m512 m = _mm512_max_ps(c, _mm512_max_ps(a, b));
  return _mm512_mask_mov_ps(m, _mm512_cmp_ps_mask(a, c, _CMP_UNORD_Q), _mm512_set1_ps(NAN));
#elif defined(CPU_CAPABILITY_AVX2)
  const __m256 m = _mm256_max_ps(c, _mm256_max_ps(a, b));
  return _mm256_or_ps(m, _mm256_cmp_ps(a, c, _CMP_UNORD_Q));
#else
  return at::vec::maximum(at::vec::maximum(a, b), c);
#endif
}

// Lanes 1 to kLanes - 1 of v, then lane 0 of w: v moved down one lane with w's first lane shifted in (the
// columns 2j + 2 of a de-interleaved row are its even columns moved down one: no load at an odd offset).
ALEXNET_ALWAYS_INLINE Vec shift_in_lane(const Vec& v, const Vec& w) {
#if defined(CPU_CAPABILITY_AVX512)
  return _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(w), _mm512_castps_si512(v), 1));
#elif defined(CPU_CAPABILITY_AVX2)
  const __m256 down = _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0));
  return _mm256_blend_ps(down, _mm256_broadcastss_ps(_mm256_castps256_ps128(w)), 0x80);
#else
  alignas(64) float lanes[2 * kLanes];
  v.store(lanes);
  w.store(lanes + kLanes);
  return Vec::loadu(lanes + 1);
#endif
}

#if defined(CPU_CAPABILITY_AVX512)
using Half16 = __m256i;  // kLanes 16-bit values
#elif defined(CPU_CAPABILITY_AVX2)
using Half16 = __m128i;
#endif

#if defined(CPU_CAPABILITY_AVX512) || defined(CPU_CAPABILITY_AVX2)
// Lanes [0, n) of the kLanes 16-bit values h written to p.
template <typename scalar_t>
ALEXNET_ALWAYS_INLINE void store_half(scalar_t* p, const Half16& h, int64_t n) {
  if (n >= kLanes) {
#if defined(CPU_CAPABILITY_AVX512)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), h);
#else
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), h);
#endif
  } else if (n > 0) {
    alignas(64) scalar_t tmp[kLanes];  // not &h: that would keep h in memory on the full-vector path too
    std::memcpy(tmp, &h, sizeof(h));
    copy_tail(p, tmp, n * sizeof(scalar_t));
  }
}
#endif

// Lanes [0, n) of v written as scalar_t, rounded to nearest even (float is stored as is). A full vector
// is one vector conversion and one store; for bfloat16, one instruction at the AVX512_BF16 level.
template <typename scalar_t>
ALEXNET_ALWAYS_INLINE void store_as(scalar_t* p, const Vec& v, int64_t n) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    store(p, v, n);
  } else {
#if defined(ALEXNET_AVX512_BF16)
    if constexpr (std::is_same_v<scalar_t, at::BFloat16>) store_half(p, (__m256i)_mm512_cvtneps_pbh(v), n);
    else store_half(p, at::vec::cvtfp32_fp16(v), n);
#elif defined(CPU_CAPABILITY_AVX512) || defined(CPU_CAPABILITY_AVX2)
    if constexpr (std::is_same_v<scalar_t, at::BFloat16>) store_half(p, at::vec::cvtfp32_bf16(v), n);
    else store_half(p, at::vec::cvtfp32_fp16(v), n);
#else
    const auto h = at::vec::convert_from_float<scalar_t>(v, v);
    if (n > 0) h.store(p, static_cast<int>(std::min(n, kLanes)));
#endif
  }
}

// store_as for a v whose lanes are exactly representable in scalar_t (widened scalar_t values, or maxima
// of them, as in a max-pool): bfloat16 keeps each float's upper half, with no rounding to do (a shift
// and a pack against the rounding conversion's eight instructions); other types as store_as.
template <typename scalar_t>
ALEXNET_ALWAYS_INLINE void store_exact(scalar_t* p, const Vec& v, int64_t n) {
#if defined(CPU_CAPABILITY_AVX512)
  if constexpr (std::is_same_v<scalar_t, at::BFloat16>) {
    store_half(p, _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(v), 16)), n);
    return;
  }
#elif defined(CPU_CAPABILITY_AVX2)
  if constexpr (std::is_same_v<scalar_t, at::BFloat16>) {
    const __m256i upper = _mm256_srli_epi32(_mm256_castps_si256(v), 16);
    store_half(p, _mm_packus_epi32(_mm256_castsi256_si128(upper), _mm256_extracti128_si256(upper, 1)), n);
    return;
  }
#endif
  store_as(p, v, n);
}

// Whether store_as rounds a vector of floats to scalar_t in one instruction (bfloat16 at the AVX512_BF16
// level): then a kernel stores its 16-bit results as it computes them, with no float row to convert after.
template <typename scalar_t>
#if defined(ALEXNET_AVX512_BF16)
inline constexpr bool kOneInstructionStores = std::is_same_v<scalar_t, at::BFloat16>;
#else
inline constexpr bool kOneInstructionStores = false;
#endif

// n floats converted to scalar_t two vectors at a time (one pack for both), then the tail; bfloat16 at
// the AVX512_BF16 level a vector at a time (one instruction each).
template <typename scalar_t>
inline void from_float(const float* src, scalar_t* dst, int64_t n) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    std::copy(src, src + n, dst);
#if defined(ALEXNET_AVX512_BF16)
  } else if constexpr (std::is_same_v<scalar_t, at::BFloat16>) {
    for (int64_t i = 0; i < n; i += kLanes) store_as(dst + i, load(src + i, n - i), n - i);
#endif
  } else {
    using SVec = at::vec::Vectorized<scalar_t>;
    int64_t i = 0;
    for (; i + SVec::size() <= n; i += SVec::size())
      at::vec::convert_from_float<scalar_t>(Vec::loadu(src + i), Vec::loadu(src + i + kLanes)).store(dst + i);
    for (; i < n; i += kLanes) store_as(dst + i, load(src + i, n - i), n - i);
  }
}

}  // namespace cpu
}  // namespace alexnet_ext
