// Vectorized ReLU + cross-channel LRN on the CPU, forward and backward, in float.
//
//   y_c = a_c * d_c^-beta,   d_c = k + alpha * sum_{j in W(c)} a_j^2,   a = relu(x)
//   dx_j = [a_j != 0] * (g_j d_j^-beta - 2 alpha beta a_j sum_{c in W(j)} g_c a_c d_c^-1 d_c^-beta)
//
// Two shapes of the same math, one per memory layout:
// * planes (NCHW): C rows of P positions, vectors run along positions and the window walks rows;
// * rows (channels_last): one position's C channels, vectors run along channels and the window is the
//   sum of `size` shifted loads from a zero-padded copy of the squares.
// Window sums are formed directly, never as a running sum, so a NaN or Inf stays inside its own
// windows exactly as in the reference. For the paper's beta = 3/4, d^-beta comes from two refined
// reciprocal-square-root estimates (pow_neg_three_quarters, a few ulp; the bfloat16 forward takes the
// estimates unrefined, within one bfloat16 ulp: LrnScale); any other beta uses Sleef's vectorized pow (1 ulp).
#pragma once

#include <limits>
#include <vector>

#include "cpu_vec.h"

namespace alexnet_ext {
namespace cpu {

// d^-1/2 from the hardware estimate (14 bits with AVX-512, 12 with AVX2) and one Newton step written as a
// correction to r, r + (r / 2) (1 - d r r), with fused multiply-adds so that the rounding errors fall on
// the small correction: as many operations as r (3/2 - d r^2 / 2), less error. No divide or square root;
// exact 1 / sqrt(d) without either ISA. Max error of the whole LRN forward against float64 math (AVX2,
// conv1-shaped inputs scaled 1e-3 to 1e15, 93M outputs): 4.5 float32 ulp, against 5.3 with the former
// step and 4.8 for the exact DEFAULT build, whose error is the float32 window sum's; a second step
// (4.6 ulp) made the forward 35-55% slower.
ALEXNET_ALWAYS_INLINE Vec newton_rsqrt_step(const Vec& d, const Vec& r) {
  const Vec e = at::vec::fnmadd(d * r, r, Vec(1.f));
  return at::vec::fmadd(Vec(0.5f) * r, e, r);
}

// The hardware estimate of d^-1/2 (rsqrt_refine refines it); without AVX the exact value.
ALEXNET_ALWAYS_INLINE Vec rsqrt_estimate(const Vec& d) {
#if defined(CPU_CAPABILITY_AVX512)
  return _mm512_rsqrt14_ps(d);
#elif defined(CPU_CAPABILITY_AVX2)
  return _mm256_rsqrt_ps(d);
#else
  return d.sqrt().reciprocal();
#endif
}

// r = rsqrt_estimate(d) refined: one Newton step after a hardware estimate, nothing after the exact value.
ALEXNET_ALWAYS_INLINE Vec rsqrt_refine(const Vec& d, const Vec& r) {
#if defined(CPU_CAPABILITY_AVX512) || defined(CPU_CAPABILITY_AVX2)
  return newton_rsqrt_step(d, r);
#else
  return r;
#endif
}

ALEXNET_ALWAYS_INLINE Vec rsqrt_newton(const Vec& d) { return rsqrt_refine(d, rsqrt_estimate(d)); }

// d^-3/4 = d^-1/2 (d d^-1/2)^-1/2, two refined estimates and three multiplies instead of two square
// roots and a division (the divider was the bottleneck of the forward): within 4 float32 eps of the
// float64 result for d from 1e-29 to 1e36, with AVX-512 and AVX2 (tests/test_cpp_backend.py).
// d = +Inf gives 0 and NaN stays NaN, as pow does. kRefined = false: the estimates alone (LrnScale).
template <bool kRefined = true>
ALEXNET_ALWAYS_INLINE Vec pow_neg_three_quarters(const Vec& d) {
  const auto rsqrt = [](const Vec& x) ALEXNET_ALWAYS_INLINE_LAMBDA {
    return kRefined ? rsqrt_newton(x) : rsqrt_estimate(x);
  };
  const Vec r = rsqrt(d);
  return zero_where_inf(r * rsqrt(d * r), d);
}

struct Lrn {
  int64_t size, half;
  float alpha, beta, k, two_alpha_beta;
  bool three_quarters;

  Lrn(int64_t size_, double alpha_, double beta_, double k_)
      : size(size_),
        half(size_ / 2),
        alpha(static_cast<float>(alpha_)),
        beta(static_cast<float>(beta_)),
        k(static_cast<float>(k_)),
        two_alpha_beta(2.f * static_cast<float>(alpha_) * static_cast<float>(beta_)),
        three_quarters(beta_ == 0.75 && k_ >= 1e-30 && alpha_ >= 0) {}  // then d >= 1e-30, or NaN
};

// d^-beta from a window sum with the constants held as vectors and the choice of power made once, outside
// the loops: with pow's out-of-line call inside a loop the compiler must assume it clobbers every vector
// register, and reloads the constants on every vector.
//
// kRefined = false (beta = 3/4 only) skips both Newton steps and takes d^-3/4 from the two hardware
// estimates alone: relative error below 2.25 * 2^-12 (5.5e-4) with AVX2's 12-bit estimate, 2^-13 with
// AVX-512's 14-bit one, exact without either. The bfloat16 forward uses it (kEstimatesSuffice): a
// bfloat16 holds 8 significant bits, so the rounded output stays within one bfloat16 ulp of the exact
// result (half an ulp of rounding plus at most 0.14 ulp before it; kernels/tolerances.py), while the
// refinements are about a third of the forward's vector operations. float16 (11 bits) and float32 keep
// both steps, and so does every backward, whose difference of two terms would magnify the estimate's error.
template <bool kThreeQuarters, bool kRefined = true>
struct LrnScale {
  static_assert(kRefined || kThreeQuarters, "only the beta = 3/4 chains have an unrefined form");
  Vec alpha, k, neg_beta;
  explicit LrnScale(const Lrn& p) : alpha(p.alpha), k(p.k), neg_beta(-p.beta) {}
  ALEXNET_ALWAYS_INLINE Vec operator()(const Vec& window_sum) const {
    const Vec d = at::vec::fmadd(alpha, window_sum, k);
    if constexpr (kThreeQuarters) return pow_neg_three_quarters<kRefined>(d);
    else return d.pow(neg_beta);
  }
  // For G window sums v (beta = 3/4): d = k + alpha v, r = d^-1/2 and e = (d r)^-1/2, each step taken across
  // the group so that G independent chains (about 60 cycles of latency each) are in flight at once;
  // d^-3/4 = r e as pow_neg_three_quarters computes it, and 1 / d = r r.
  template <int G>
  ALEXNET_ALWAYS_INLINE void three_quarter_chains(const Vec (&v)[G], Vec (&d)[G], Vec (&r)[G], Vec (&e)[G]) const {
    Vec dr[G];
#pragma GCC unroll 8
    for (int i = 0; i < G; ++i) d[i] = at::vec::fmadd(alpha, v[i], k);
#pragma GCC unroll 8
    for (int i = 0; i < G; ++i) r[i] = rsqrt_estimate(d[i]);
    if constexpr (kRefined) {
#pragma GCC unroll 8
      for (int i = 0; i < G; ++i) r[i] = rsqrt_refine(d[i], r[i]);
    }
#pragma GCC unroll 8
    for (int i = 0; i < G; ++i) dr[i] = d[i] * r[i];
#pragma GCC unroll 8
    for (int i = 0; i < G; ++i) e[i] = rsqrt_estimate(dr[i]);
    if constexpr (kRefined) {
#pragma GCC unroll 8
      for (int i = 0; i < G; ++i) e[i] = rsqrt_refine(dr[i], e[i]);
    }
  }
  // For G window sums v: d^-beta in v and 1 / d in inv. For beta = 3/4, 1 / d is the square of the refined
  // d^-1/2 that d^-3/4 is built from, so the backward's d^(-beta-1) costs no divide; otherwise a reciprocal.
  template <int G>
  ALEXNET_ALWAYS_INLINE void group_with_inverse(Vec (&v)[G], Vec (&inv)[G]) const {
    if constexpr (!kThreeQuarters) {
      for (int i = 0; i < G; ++i) {
        const Vec d = at::vec::fmadd(alpha, v[i], k);
        inv[i] = d.reciprocal();
        v[i] = d.pow(neg_beta);
      }
    } else {
      Vec d[G], r[G], e[G];
      three_quarter_chains(v, d, r, e);
#pragma GCC unroll 8
      for (int i = 0; i < G; ++i) inv[i] = zero_where_inf(r[i] * r[i], d[i]);  // rsqrt of +Inf is NaN; 1 / Inf is 0
#pragma GCC unroll 8
      for (int i = 0; i < G; ++i) v[i] = zero_where_inf(r[i] * e[i], d[i]);
    }
  }
  // operator() for G vectors, the chains in flight together (three_quarter_chains).
  template <int G>
  ALEXNET_ALWAYS_INLINE void group(Vec (&v)[G]) const {
    if constexpr (!kThreeQuarters) {
      for (int i = 0; i < G; ++i) v[i] = (*this)(v[i]);
    } else {
      Vec d[G], r[G], e[G];
      three_quarter_chains(v, d, r, e);
#pragma GCC unroll 8
      for (int i = 0; i < G; ++i) v[i] = zero_where_inf(r[i] * e[i], d[i]);
    }
  }
};

// Whether a forward whose input (and so output) is scalar_t may take d^-3/4 from the unrefined estimates
// (LrnScale's kRefined = false): bfloat16 only.
template <typename scalar_t>
inline constexpr bool kEstimatesSuffice = std::is_same_v<scalar_t, c10::BFloat16>;

// f(scale) with the LrnScale that p calls for; kEstimatesOnly: a bfloat16 forward (kEstimatesSuffice).
template <bool kEstimatesOnly = false, typename F>
ALEXNET_ALWAYS_INLINE void with_lrn_scale(const Lrn& p, const F& f) {
  if (p.three_quarters) f(LrnScale<true, !kEstimatesOnly>(p));
  else f(LrnScale<false>(p));
}

// G vectors of window sums from q0 (m lanes each: kLanes, or fewer for a row's last, partial vector), their
// d^-beta as one LrnScale group, and emit(q, m, d^-beta) for each; with kInverse (an emit that takes a
// fourth argument, the backward's) through group_with_inverse, emit(q, m, d^-beta, 1 / d).
template <int G, typename Scale, typename SumAt, typename Emit>
ALEXNET_ALWAYS_INLINE void scale_group(int64_t q0, int64_t m, const Scale& scale, const SumAt& sum_at,
                                       const Emit& emit) {
  constexpr bool kInverse = std::is_invocable_v<const Emit&, int64_t, int64_t, const Vec&, const Vec&>;
  Vec v[G], inv[G];
#pragma GCC unroll 16
  for (int i = 0; i < G; ++i) v[i] = sum_at(q0 + i * kLanes, m);
  if constexpr (kInverse) scale.group_with_inverse(v, inv);
  else scale.group(v);
#pragma GCC unroll 16
  for (int i = 0; i < G; ++i) {
    if constexpr (kInverse) emit(q0 + i * kLanes, m, v[i], inv[i]);
    else emit(q0 + i * kLanes, m, v[i]);
  }
}

// scale_group over each vector of n values (as for_each_vector): whole vectors G at a time, then what is
// left in groups of G/2, G/4, ..., one: measured 23% faster than one vector at a time on the NCHW forward
// (AVX2, Zen 2), whose single chain leaves the floating-point scheduler waiting; the halving groups keep
// chains paired on short rows (a tower's 48 channels are 4 + 2 AVX2 vectors). The forward's emit takes
// (q, m, d^-beta), the backward's (q, m, d^-beta, 1 / d).
template <int G, typename Scale, typename SumAt, typename Emit>
ALEXNET_ALWAYS_INLINE void for_each_scaled(int64_t n, const Scale& scale, const SumAt& sum_at, const Emit& emit,
                                           int64_t q0 = 0) {
  for (; q0 + G * kLanes <= n; q0 += G * kLanes) scale_group<G>(q0, kLanes, scale, sum_at, emit);
  if constexpr (G > 1) {
    for_each_scaled<G / 2>(n, scale, sum_at, emit, q0);
  } else if (q0 < n) {  // the last, partial vector
    scale_group<1>(q0, n - q0, scale, sum_at, emit);
  }
}

// Vectors per LrnScale::group: 8 along a plane row (hundreds of positions), 4 across one position's
// channels (12 vectors for 96 channels with AVX2); measured best of 2, 4 and 8 on each (AVX2, Zen 2).
constexpr int kPlaneScaleGroup = 8, kRowScaleGroup = 4;

// ---- planes (NCHW): x row c at x + c * ldx, P positions per row ------------------------------------
// x, g and the results may each be float, bfloat16 or float16: values are widened as they are loaded and
// rounded as they are stored (load_float / store_as), the math is in float.

// Scratch floats the plane kernels need for P positions.
inline int64_t lrn_planes_scratch(int64_t C, int64_t P) { return C * P; }

// sq[c * P + q] = relu(x_c[q])^2
template <typename x_t>
inline void squares_planes(const x_t* x, int64_t ldx, int64_t C, int64_t P, float* sq) {
  for (int64_t c = 0; c < C; ++c) {
    for_each_vector(P, [&](int64_t q, int64_t m) ALEXNET_ALWAYS_INLINE_LAMBDA {
      const Vec a = relu(load_float(x + c * ldx + q, m));
      store(sq + c * P + q, a * a, m);
    });
  }
}

inline Vec window_sum_planes(const float* v, int64_t P, int64_t q, int64_t lo, int64_t hi) {
  Vec s(0.f);
  for (int64_t j = lo; j <= hi; ++j) s = s + load(v + j * P + q, P - q);
  return s;
}

// Scratch floats of the forward's ring of squared rows for P positions.
inline int64_t lrn_forward_planes_scratch(int64_t P, const Lrn& p) { return p.size * P; }

// y_c = relu(x_c) * d_c^-beta. The squares of rows c-half..c+half live in a ring of `size` rows
// (sq: lrn_forward_planes_scratch floats): row c+half is squared just before output row c needs it,
// so x streams through once (row c itself is re-read from cache) and y is written once. With stream_y
// (float y only), each output row's whole vectors from its first kStreamAlign boundary on are streaming
// stores: relu_lrn's output when it is larger than the last-level cache, whose rows, 4 KiB runs at a
// channel stride, otherwise cost a read for ownership of every line (NCHW conv1 at batch 16: 18.6 MB,
// 1.2-1.4x faster with them in an A/B on Zen 4; 15% slower at batch 2, whose output stays cached).
// Rows ahead of the one being squared whose cache lines are prefetched: each plane row is a short run
// (a band of a few input rows) at a channel stride, too short for the hardware prefetcher to pick up;
// 12% faster on the fused NCHW forward (AVX2, Zen 2), 1, 2 and 4 rows ahead alike.
constexpr int64_t kPrefetchRows = 2;
template <typename x_t, typename y_t>
inline void lrn_forward_planes(const x_t* x, int64_t ldx, y_t* y, int64_t ldy, int64_t C, int64_t P,
                               const Lrn& p, float* sq, bool stream_y = false) {
  stream_y = stream_y && std::is_same_v<y_t, float>;
  auto square_row = [&](int64_t j) {
    float* dst = sq + (j % p.size) * P;
    const x_t* xj = x + j * ldx;
    const x_t* ahead = x + std::min(j + kPrefetchRows, C - 1) * ldx;
    for_each_vector(P, [&](int64_t q, int64_t m) {
      __builtin_prefetch(ahead + q);
      const Vec a = relu(load_float(xj + q, m));
      store(dst + q, a * a, m);
    });
  };
  std::vector<const float*> window(p.size);
  for (int64_t j = 0; j < std::min(p.half, C); ++j) square_row(j);
  with_lrn_scale<kEstimatesSuffice<x_t>>(p, [&](const auto& scale) {
    for (int64_t c = 0; c < C; ++c) {
      if (c + p.half < C) square_row(c + p.half);
      const int64_t lo = std::max<int64_t>(0, c - p.half), hi = std::min<int64_t>(C - 1, c + p.half);
      for (int64_t j = lo; j <= hi; ++j) window[j - lo] = sq + (j % p.size) * P;
      const x_t* xc = x + c * ldx;
      y_t* yc = y + c * ldy;
      if (hi - lo == 4) {  // the paper's n = 5 away from the edges: five named rows, the loop unrolled
        const float *w0 = window[0], *w1 = window[1], *w2 = window[2], *w3 = window[3], *w4 = window[4];
        // positions [q0, q0 + n); kStream: whole vectors as streaming stores (yc + q0 aligned)
        const auto span = [&](int64_t q0, int64_t n, auto kStream) ALEXNET_ALWAYS_INLINE_LAMBDA {
          for_each_scaled<kPlaneScaleGroup>(
              n, scale,
              [&](int64_t q, int64_t m) ALEXNET_ALWAYS_INLINE_LAMBDA {
                q += q0;
                return load(w0 + q, m) + load(w1 + q, m) + load(w2 + q, m) + load(w3 + q, m) + load(w4 + q, m);
              },
              [&](int64_t q, int64_t m, const Vec& s) ALEXNET_ALWAYS_INLINE_LAMBDA {
                q += q0;
                const Vec v = relu(load_float(xc + q, m)) * s;
                if constexpr (decltype(kStream)::value && std::is_same_v<y_t, float>) {
                  if (m == kLanes) return stream(yc + q, v);
                }
                store_as(yc + q, v, m);
              });
        };
        if (stream_y) {  // the row's unaligned head as plain stores, then the rest from the boundary
          const int64_t head = std::min<int64_t>(P, bytes_to_stream_boundary(yc) / sizeof(y_t));
          if (head > 0) span(0, head, std::false_type{});
          span(head, P - head, std::true_type{});
        } else {
          span(0, P, std::false_type{});
        }
        continue;
      }
      for_each_vector(P, [&](int64_t q, int64_t m) {
        Vec sum(0.f);
        for (int64_t j = 0; j <= hi - lo; ++j) sum = sum + load(window[j] + q, m);
        store_as(yc + q, relu(load_float(xc + q, m)) * scale(sum), m);
      });
    }
  });
  if (stream_y) stream_fence();
}

// dx from x and the output gradient g; sq, u, t: lrn_planes_scratch(C, P) floats each.
template <typename x_t, typename g_t, typename dx_t>
inline void lrn_backward_planes(const x_t* x, int64_t ldx, const g_t* g, int64_t ldg, dx_t* dx, int64_t lddx,
                                int64_t C, int64_t P, const Lrn& p, float* sq, float* u, float* t) {
  squares_planes(x, ldx, C, P, sq);
  // u_c = g_c d_c^-beta and t_c = u_c a_c / d_c: kPlaneScaleGroup d^-beta chains in flight at once, as in
  // the forward. A window of squares needs no leading zero (squares are +0 or more, or NaN).
  with_lrn_scale(p, [&](const auto& scale) {
    for (int64_t c = 0; c < C; ++c) {
      const int64_t lo = std::max<int64_t>(0, c - p.half), hi = std::min<int64_t>(C - 1, c + p.half);
      const x_t* xc = x + c * ldx;
      const g_t* gc = g + c * ldg;
      float* uc = u + c * P;
      float* tc = t + c * P;
      const auto emit = [&](int64_t q, int64_t m, const Vec& s, const Vec& inv_d) ALEXNET_ALWAYS_INLINE_LAMBDA {
        const Vec a = relu(load_float(xc + q, m));
        const Vec uq = load_float(gc + q, m) * s;
        store(uc + q, uq, m);
        store(tc + q, uq * a * inv_d, m);
      };
      if (hi - lo == 4) {  // n = 5 away from the edges: five named rows
        const float *w0 = sq + lo * P, *w1 = w0 + P, *w2 = w1 + P, *w3 = w2 + P, *w4 = w3 + P;
        for_each_scaled<kPlaneScaleGroup>(
            P, scale,
            [&](int64_t q, int64_t m) ALEXNET_ALWAYS_INLINE_LAMBDA {
              return load(w0 + q, m) + load(w1 + q, m) + load(w2 + q, m) + load(w3 + q, m) + load(w4 + q, m);
            },
            emit);
      } else {
        for_each_scaled<kPlaneScaleGroup>(
            P, scale, [&](int64_t q, int64_t m) { return window_sum_planes(sq, P, q, lo, hi); }, emit);
      }
    }
  });
  // dx_j = [a_j != 0] (u_j - 2 alpha beta a_j sum_{c in W(j)} t_c); the t window sums from zero, as the
  // one-vector form did (t holds signed zeros).
  const Vec zero(0.f), tab(p.two_alpha_beta);
  for (int64_t j = 0; j < C; ++j) {
    const int64_t lo = std::max<int64_t>(0, j - p.half), hi = std::min<int64_t>(C - 1, j + p.half);
    const x_t* xj = x + j * ldx;
    const float* uj = u + j * P;
    dx_t* dxj = dx + j * lddx;
    const auto emit = [&](int64_t q, int64_t m, const Vec& window) ALEXNET_ALWAYS_INLINE_LAMBDA {
      const Vec a = relu(load_float(xj + q, m));
      const Vec gx = load(uj + q, m) - tab * a * window;
      store_as(dxj + q, Vec::blendv(gx, zero, a == zero), m);
    };
    if (hi - lo == 4) {
      const float *w0 = t + lo * P, *w1 = w0 + P, *w2 = w1 + P, *w3 = w2 + P, *w4 = w3 + P;
      for_each_vector(P, [&](int64_t q, int64_t m) ALEXNET_ALWAYS_INLINE_LAMBDA {
        emit(q, m, zero + load(w0 + q, m) + load(w1 + q, m) + load(w2 + q, m) + load(w3 + q, m) + load(w4 + q, m));
      });
    } else {
      for_each_vector(P, [&](int64_t q, int64_t m) { emit(q, m, window_sum_planes(t, P, q, lo, hi)); });
    }
  }
}

// ---- rows (channels_last): one position's C contiguous channels ------------------------------------

// Floats of one zero-padded row buffer: `half` zeros, C values, `half` zeros, one vector of slack.
inline int64_t padded_row_floats(int64_t C, const Lrn& p) { return C + 2 * p.half + kLanes; }

// A padded row buffer with its pads zeroed once; the C values start at the returned pointer.
inline float* init_padded_row(float* buf, int64_t C, const Lrn& p) {
  std::fill(buf, buf + padded_row_floats(C, p), 0.f);
  return buf + p.half;
}

ALEXNET_ALWAYS_INLINE Vec window_sum_row(const float* padded, int64_t q, const Lrn& p) {
  const float* c = padded + q;
  if (p.half == 2) return Vec::loadu(c - 2) + Vec::loadu(c - 1) + Vec::loadu(c) + Vec::loadu(c + 1) + Vec::loadu(c + 2);
  Vec s(0.f);
  for (int64_t o = -p.half; o <= p.half; ++o) s = s + Vec::loadu(padded + q + o);
  return s;
}

// Positions ahead of the one being normalised whose cache lines the fused forward prefetches. A
// channels_last row is one position's C channels (a few hundred bytes) and the next position follows it;
// its loads are the first thing a row's squares wait on. A prefetch past the tensor's end is harmless (it
// never faults).
constexpr int64_t kPrefetchPositions = 4;

template <typename x_t>
ALEXNET_ALWAYS_INLINE void prefetch_positions_ahead(const x_t* x, int64_t C) {
  const char* ahead = reinterpret_cast<const char*>(x + kPrefetchPositions * C);
  for (int64_t b = 0; b < C * static_cast<int64_t>(sizeof(x_t)); b += 64) __builtin_prefetch(ahead + b);
}

// sq: init_padded_row buffer; arow: C floats, used for a 16-bit x only (widened and rectified once, read
// back by the second pass), may be null for float. scale: the LrnScale of p (with_lrn_scale), built once
// per caller rather than per position.
template <typename Scale, typename x_t, typename y_t>
inline void lrn_forward_row(const Scale& scale, const x_t* x, y_t* y, int64_t C, const Lrn& p, float* sq,
                            float* arow) {
  constexpr bool kWiden = !std::is_same_v<x_t, float>;
  for_each_vector(C, [&](int64_t q, int64_t m) ALEXNET_ALWAYS_INLINE_LAMBDA {
    const Vec a = relu(load_float(x + q, m));
    if constexpr (kWiden) store(arow + q, a, m);
    store(sq + q, a * a, m);
  });
  for_each_scaled<kRowScaleGroup>(
      C, scale, [&](int64_t q, int64_t) ALEXNET_ALWAYS_INLINE_LAMBDA { return window_sum_row(sq, q, p); },
      [&](int64_t q, int64_t m, const Vec& s) ALEXNET_ALWAYS_INLINE_LAMBDA {
        if constexpr (kWiden) store_as(y + q, load(arow + q, m) * s, m);
        else store_as(y + q, relu(load_float(x + q, m)) * s, m);
      });
}

// sq, t: init_padded_row buffers; u: C floats. scale: the LrnScale of p (with_lrn_scale), built once per
// caller rather than per position.
template <typename Scale, typename x_t, typename g_t, typename dx_t>
inline void lrn_backward_row(const Scale& scale, const x_t* x, const g_t* g, dx_t* dx, int64_t C, const Lrn& p,
                             float* sq, float* u, float* t) {
  for_each_vector(C, [&](int64_t q, int64_t m) ALEXNET_ALWAYS_INLINE_LAMBDA {
    const Vec a = relu(load_float(x + q, m));
    store(sq + q, a * a, m);
  });
  // u_c = g_c d_c^-beta and t_c = u_c a_c / d_c, kRowScaleGroup d^-beta chains in flight at once (as the
  // forward's rows).
  for_each_scaled<kRowScaleGroup>(
      C, scale, [&](int64_t q, int64_t) ALEXNET_ALWAYS_INLINE_LAMBDA { return window_sum_row(sq, q, p); },
      [&](int64_t q, int64_t m, const Vec& s, const Vec& inv_d) ALEXNET_ALWAYS_INLINE_LAMBDA {
        const Vec a = relu(load_float(x + q, m));
        const Vec uq = load_float(g + q, m) * s;
        store(u + q, uq, m);
        store(t + q, uq * a * inv_d, m);
      });
  const Vec zero(0.f), tab(p.two_alpha_beta);
  for_each_vector(C, [&](int64_t q, int64_t m) ALEXNET_ALWAYS_INLINE_LAMBDA {
    const Vec a = relu(load_float(x + q, m));
    const Vec gx = load(u + q, m) - tab * a * window_sum_row(t, q, p);
    store_as(dx + q, Vec::blendv(gx, zero, a == zero), m);
  });
}

}  // namespace cpu
}  // namespace alexnet_ext
