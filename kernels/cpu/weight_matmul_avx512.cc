// The AVX-512F path of weight_matmul.h: 16 f32 lanes. Every function here carries the target
// attribute (no global -mavx512f), has internal linkage, and runs only after the dispatcher saw the
// features. A tile of 4 weight rows x 2 rows of x keeps 8 accumulators, 2 x vectors and one
// widened weight vector in zmm registers; each weight vector loaded is used for both
// rows of x, and each x vector for 4 weight rows. The tile code is shared by every format: a
// format is a row type with Load16 (16 weights widened to f32), At (one weight, for the tail)
// and its prefetch stride.
#if defined(__x86_64__)

// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*() values, which it then reports as
// -Wmaybe-uninitialized when they are inlined (GCC bug 105593); the code is correct.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/weight_matmul_paths.h"

#define KUBEMOE_AVX512 __attribute__((target("avx512f")))

namespace kubemoe::cpu::paths {
namespace {

// One weight row of each format. kPrefetchEvery: elements per prefetch hint (>= one per 64-byte
// line).
struct Bf16Row {
  static constexpr int64_t kPrefetchEvery = 32;
  const uint16_t* w;
};
struct F16Row {
  static constexpr int64_t kPrefetchEvery = 32;
  const uint16_t* w;
};
struct F32Row {
  static constexpr int64_t kPrefetchEvery = 16;
  const float* w;
};
struct Q8Row {
  static constexpr int64_t kPrefetchEvery = 32;
  const int8_t* q;
  const float* s;
};

void MakeRow(const WeightMatrix& w, int64_t n, Bf16Row* r) { r->w = w.bf16 + n * w.cols; }
void MakeRow(const WeightMatrix& w, int64_t n, F16Row* r) { r->w = w.f16 + n * w.cols; }
void MakeRow(const WeightMatrix& w, int64_t n, F32Row* r) { r->w = w.f32 + n * w.cols; }
void MakeRow(const WeightMatrix& w, int64_t n, Q8Row* r) {
  r->q = w.quants + n * w.cols;
  r->s = w.scales + n * (w.cols / kQ8_0Block);
}

// Weights c..c+15 of a row in f32. bf16 widens by a shift into the high half of each lane.
KUBEMOE_AVX512 inline __m512 Load16(const Bf16Row& r, int64_t c) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.w + c));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
// vcvtph2ps is exact (subnormals included), as F16ToF32.
KUBEMOE_AVX512 inline __m512 Load16(const F16Row& r, int64_t c) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.w + c)));
}
KUBEMOE_AVX512 inline __m512 Load16(const F32Row& r, int64_t c) { return _mm512_loadu_ps(r.w + c); }
// c is a multiple of 16, so the 16 weights share one block's scale.
KUBEMOE_AVX512 inline __m512 Load16(const Q8Row& r, int64_t c) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r.q + c));
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b)),
                       _mm512_set1_ps(r.s[c / kQ8_0Block]));
}

inline float At(const Bf16Row& r, int64_t c) {
  const uint32_t u = static_cast<uint32_t>(r.w[c]) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline float At(const F16Row& r, int64_t c) {
  float f;
  F16ToF32(r.w + c, &f, 1);
  return f;
}
inline float At(const F32Row& r, int64_t c) { return r.w[c]; }
inline float At(const Q8Row& r, int64_t c) {
  return static_cast<float>(r.q[c]) * r.s[c / kQ8_0Block];
}

// As in the AVX2 path: ask for the same column of the rows RB further on (the next tile), since
// the hardware prefetcher alone leaves DRAM latency exposed over interleaved row streams.
// Prefetching past the matrix is harmless (never faults). Offsets count elements of the row.
KUBEMOE_AVX512 inline void Prefetch(const void* p) {
  _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0);
}
inline const uint16_t* RowBytes(const Bf16Row& r) { return r.w; }
inline const uint16_t* RowBytes(const F16Row& r) { return r.w; }
inline const float* RowBytes(const F32Row& r) { return r.w; }
inline const int8_t* RowBytes(const Q8Row& r) { return r.q; }

// Folds the four 128-bit quarters, then the four lanes.
KUBEMOE_AVX512 inline float HSum(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  const __m128 s = _mm512_castps512_ps128(v);
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// out[r][i] = dot(x row i, weight row r) for RB weight rows and MB rows of x (stride ldx).
template <int RB, int MB, class Row>
KUBEMOE_AVX512 inline void Tile(const Row* rows, const float* x, int64_t ldx, int64_t k,
                                float (&out)[RB][MB]) {
  __m512 acc[RB][MB];
  for (int r = 0; r < RB; ++r)
    for (int i = 0; i < MB; ++i) acc[r][i] = _mm512_setzero_ps();
  int64_t c = 0;
  for (; c + 16 <= k; c += 16) {
    __m512 xv[MB];
    for (int i = 0; i < MB; ++i) xv[i] = _mm512_loadu_ps(x + i * ldx + c);
    for (int r = 0; r < RB; ++r) {
      if ((c & (Row::kPrefetchEvery - 1)) == 0) Prefetch(RowBytes(rows[r]) + c + RB * k);
      const __m512 w = Load16(rows[r], c);
      for (int i = 0; i < MB; ++i) acc[r][i] = _mm512_fmadd_ps(w, xv[i], acc[r][i]);
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int i = 0; i < MB; ++i) out[r][i] = HSum(acc[r][i]);
  for (; c < k; ++c)  // K not a multiple of 16 (not Q8_0: its rows are whole blocks)
    for (int r = 0; r < RB; ++r)
      for (int i = 0; i < MB; ++i) out[r][i] += At(rows[r], c) * x[i * ldx + c];
}

// Runs the RB weight rows against every row of x, two at a time; store(i, v) receives
// v[r] = dot(x row i, weight row r).
template <int RB, class Row, class Store>
KUBEMOE_AVX512 void AllRowsOfX(const Row* rows, const Product& p, int64_t k, Store store) {
  int64_t i = 0;
  for (; i + 2 <= p.m; i += 2) {
    float out[RB][2];
    Tile<RB, 2>(rows, p.x + i * p.ldx, p.ldx, k, out);
    float v0[RB], v1[RB];
    for (int r = 0; r < RB; ++r) v0[r] = out[r][0], v1[r] = out[r][1];
    store(i, v0);
    store(i + 1, v1);
  }
  if (i < p.m) {
    float out[RB][1];
    Tile<RB, 1>(rows, p.x + i * p.ldx, p.ldx, k, out);
    float v[RB];
    for (int r = 0; r < RB; ++r) v[r] = out[r][0];
    store(i, v);
  }
}

template <class Row>
KUBEMOE_AVX512 void Matmul(const Product& p) {
  const WeightMatrix& w = *p.w;
  int64_t n = p.n_begin;
  for (; n + 4 <= p.n_end; n += 4) {
    Row rows[4];
    for (int r = 0; r < 4; ++r) MakeRow(w, n + r, &rows[r]);
    AllRowsOfX<4>(rows, p, w.cols, [&](int64_t i, const float* v) {
      for (int r = 0; r < 4; ++r) p.y[i * p.ldy + n + r] = v[r];
    });
  }
  for (; n < p.n_end; ++n) {
    Row rows[1];
    MakeRow(w, n, &rows[0]);
    AllRowsOfX<1>(rows, p, w.cols, [&](int64_t i, const float* v) { p.y[i * p.ldy + n] = v[0]; });
  }
}

// Gate and up rows n, n+1 go through one tile, so x is loaded once for both products.
template <class Row>
KUBEMOE_AVX512 void GateUp(const Product& p) {
  const WeightMatrix& g = *p.w;
  const WeightMatrix& u = *p.up;
  int64_t n = p.n_begin;
  for (; n + 2 <= p.n_end; n += 2) {
    Row rows[4];
    MakeRow(g, n, &rows[0]);
    MakeRow(g, n + 1, &rows[1]);
    MakeRow(u, n, &rows[2]);
    MakeRow(u, n + 1, &rows[3]);
    AllRowsOfX<4>(rows, p, g.cols, [&](int64_t i, const float* v) {
      p.y[i * p.ldy + n] = SiluMul(v[0], v[2]);
      p.y[i * p.ldy + n + 1] = SiluMul(v[1], v[3]);
    });
  }
  if (n < p.n_end) {
    Row rows[2];
    MakeRow(g, n, &rows[0]);
    MakeRow(u, n, &rows[1]);
    AllRowsOfX<2>(rows, p, g.cols,
                  [&](int64_t i, const float* v) { p.y[i * p.ldy + n] = SiluMul(v[0], v[1]); });
  }
}

}  // namespace

KUBEMOE_AVX512 void MatmulAvx512(const Product& p) {
  switch (p.w->format) {
    case WeightFormat::kBf16:
      return Matmul<Bf16Row>(p);
    case WeightFormat::kF16:
      return Matmul<F16Row>(p);
    case WeightFormat::kF32:
      return Matmul<F32Row>(p);
    case WeightFormat::kQ8_0:
      return Matmul<Q8Row>(p);
  }
}

KUBEMOE_AVX512 void GateUpAvx512(const Product& p) {
  switch (p.w->format) {
    case WeightFormat::kBf16:
      return GateUp<Bf16Row>(p);
    case WeightFormat::kF16:
      return GateUp<F16Row>(p);
    case WeightFormat::kF32:
      return GateUp<F32Row>(p);
    case WeightFormat::kQ8_0:
      return GateUp<Q8Row>(p);
  }
}

}  // namespace kubemoe::cpu::paths

#endif  // __x86_64__
