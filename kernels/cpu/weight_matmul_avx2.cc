// The AVX2+FMA+F16C path of weight_matmul.h: 8 f32 lanes. Every function here carries the target
// attribute (no global -mavx2), has internal linkage, and runs only after the dispatcher saw the
// features. A tile of 4 weight rows x 2 rows of x (or 2 x 4 when M >= 4) keeps 8 accumulators,
// the x vectors and one widened weight vector in the 16 ymm registers; each weight vector
// loaded serves every row of x in the tile, and each x vector every weight row. The tile code
// is shared by every format: a format is a row type with Load8 (8 weights widened to f32), At
// (one weight, for the tail) and its prefetch stride.
#if defined(__x86_64__)

#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/weight_matmul_paths.h"

#define KUBEMOE_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace kubemoe::cpu::paths {
namespace {

// One weight row of each format. kPrefetchEvery: elements per prefetch hint, at least one per
// 64-byte line (Q8_0 keeps the one per block it had, two per line).
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

// Weights c..c+7 of a row in f32. bf16 widens by a shift into the high half of each lane.
KUBEMOE_AVX2 inline __m256 Load8(const Bf16Row& r, int64_t c) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r.w + c));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
// F16C's vcvtph2ps is exact (subnormals included), as F16ToF32.
KUBEMOE_AVX2 inline __m256 Load8(const F16Row& r, int64_t c) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r.w + c)));
}
KUBEMOE_AVX2 inline __m256 Load8(const F32Row& r, int64_t c) { return _mm256_loadu_ps(r.w + c); }
// c is a multiple of 8, so the 8 weights share one block's scale.
KUBEMOE_AVX2 inline __m256 Load8(const Q8Row& r, int64_t c) {
  const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(r.q + c));
  return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)),
                       _mm256_set1_ps(r.s[c / kQ8_0Block]));
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

// Weight rows are read once, so the hardware prefetcher alone leaves DRAM latency exposed (it
// does not run far enough ahead over 4 interleaved row streams). Each tile asks for the same
// column of the rows RB further on, which is the next tile (the tile after next in the fused
// gate-up); one hint per 64-byte line. Prefetching past the matrix is harmless (never faults).
// Measured on the AVX2 machine of docs/cpu-kernels.md: Q8_0 decode 5.9 -> 7.3 GB/s.
KUBEMOE_AVX2 inline void Prefetch(const void* p) {
  _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0);
}

inline const uint16_t* RowBytes(const Bf16Row& r) { return r.w; }
inline const uint16_t* RowBytes(const F16Row& r) { return r.w; }
inline const float* RowBytes(const F32Row& r) { return r.w; }
inline const int8_t* RowBytes(const Q8Row& r) { return r.q; }

KUBEMOE_AVX2 inline float HSum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// out[r][i] = dot(x row i, weight row r) for RB weight rows and MB rows of x (stride ldx).
template <int RB, int MB, class Row>
KUBEMOE_AVX2 inline void TileChunks(const Row* rows, const float* x, int64_t ldx, int64_t k,
                                    float (&out)[RB][MB]) {
  __m256 acc[RB][MB];
  for (int r = 0; r < RB; ++r)
    for (int i = 0; i < MB; ++i) acc[r][i] = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 8 <= k; c += 8) {
    __m256 xv[MB];
    for (int i = 0; i < MB; ++i) xv[i] = _mm256_loadu_ps(x + i * ldx + c);
    for (int r = 0; r < RB; ++r) {
      if ((c & (Row::kPrefetchEvery - 1)) == 0) Prefetch(RowBytes(rows[r]) + c + RB * k);
      const __m256 w = Load8(rows[r], c);
      for (int i = 0; i < MB; ++i) acc[r][i] = _mm256_fmadd_ps(w, xv[i], acc[r][i]);
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int i = 0; i < MB; ++i) out[r][i] = HSum(acc[r][i]);
  for (; c < k; ++c)  // K not a multiple of 8 (not Q8_0: its rows are whole blocks)
    for (int r = 0; r < RB; ++r)
      for (int i = 0; i < MB; ++i) out[r][i] += At(rows[r], c) * x[i * ldx + c];
}

// Q8_0 rows at M = 1 go a block at a time: the block's 32 quants are widened once into 4
// vectors, their unscaled products with x summed, and the block's scale applied once per row
// instead of once per 8 weights (decode ~25% faster in cache). With two rows of x the extra
// registers it needs spill, so there the 8-weight chunks of TileChunks are faster.
// (Rows are whole blocks, so there is no tail.)
template <int RB, int MB>
KUBEMOE_AVX2 inline void TileQ8Blocks(const Q8Row* rows, const float* x, int64_t ldx, int64_t k,
                                      float (&out)[RB][MB]) {
  __m256 acc[RB][MB];
  for (int r = 0; r < RB; ++r)
    for (int i = 0; i < MB; ++i) acc[r][i] = _mm256_setzero_ps();
  for (int64_t c = 0; c < k; c += kQ8_0Block) {
    for (int r = 0; r < RB; ++r) {
      if ((c & 63) == 0) Prefetch(rows[r].q + c + RB * k);
      __m256 w[4];
      for (int j = 0; j < 4; ++j) {
        const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[r].q + c + 8 * j));
        w[j] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
      }
      const __m256 scale = _mm256_set1_ps(rows[r].s[c / kQ8_0Block]);
      for (int i = 0; i < MB; ++i) {
        const float* xi = x + i * ldx + c;
        __m256 t = _mm256_mul_ps(w[0], _mm256_loadu_ps(xi));
        t = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(xi + 8), t);
        t = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(xi + 16), t);
        t = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(xi + 24), t);
        acc[r][i] = _mm256_fmadd_ps(t, scale, acc[r][i]);
      }
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int i = 0; i < MB; ++i) out[r][i] = HSum(acc[r][i]);
}

template <int RB, int MB, class Row>
KUBEMOE_AVX2 inline void Tile(const Row* rows, const float* x, int64_t ldx, int64_t k,
                              float (&out)[RB][MB]) {
  if constexpr (MB == 1 && std::is_same_v<Row, Q8Row>) {
    TileQ8Blocks<RB, MB>(rows, x, ldx, k, out);
  } else {
    TileChunks<RB, MB>(rows, x, ldx, k, out);
  }
}

// Runs the RB weight rows against every row of x, four, two or one at a time; store(i, v) receives
// v[r] = dot(x row i, weight row r).
template <int RB, class Row, class Store>
KUBEMOE_AVX2 void AllRowsOfX(const Row* rows, const Product& p, int64_t k, Store store) {
  int64_t i = 0;
  if constexpr (RB % 2 == 0) {
    // Four rows of x at a time, against half the weight rows per tile (2 x 4 accumulators, 4 x
    // vectors, 1 weight vector fit the 16 registers): each weight vector is widened once per 4
    // rows of x instead of per 2, which is what bounds M >= 4.
    for (; i + 4 <= p.m; i += 4) {
      float lo[RB / 2][4], hi[RB / 2][4];
      TileChunks<RB / 2, 4>(rows, p.x + i * p.ldx, p.ldx, k, lo);
      TileChunks<RB / 2, 4>(rows + RB / 2, p.x + i * p.ldx, p.ldx, k, hi);
      for (int j = 0; j < 4; ++j) {
        float v[RB];
        for (int r = 0; r < RB / 2; ++r) v[r] = lo[r][j], v[RB / 2 + r] = hi[r][j];
        store(i + j, v);
      }
    }
  }
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
KUBEMOE_AVX2 void Matmul(const Product& p) {
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
KUBEMOE_AVX2 void GateUp(const Product& p) {
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

template <class Row>
KUBEMOE_AVX2 void RowsToF32(const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* out) {
  const int64_t k = w.cols;
  for (int64_t n = row_begin; n < row_end; ++n) {
    Row row;
    MakeRow(w, n, &row);
    float* o = out + (n - row_begin) * k;
    int64_t c = 0;
    for (; c + 8 <= k; c += 8) _mm256_storeu_ps(o + c, Load8(row, c));
    for (; c < k; ++c) o[c] = At(row, c);
  }
}

}  // namespace

KUBEMOE_AVX2 void MatmulAvx2(const Product& p) {
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

KUBEMOE_AVX2 void GateUpAvx2(const Product& p) {
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

KUBEMOE_AVX2 void RowsToF32Avx2(const WeightMatrix& w, int64_t row_begin, int64_t row_end,
                                float* out) {
  switch (w.format) {
    case WeightFormat::kBf16:
      return RowsToF32<Bf16Row>(w, row_begin, row_end, out);
    case WeightFormat::kF16:
      return RowsToF32<F16Row>(w, row_begin, row_end, out);
    case WeightFormat::kF32:
      return RowsToF32<F32Row>(w, row_begin, row_end, out);
    case WeightFormat::kQ8_0:
      return RowsToF32<Q8Row>(w, row_begin, row_end, out);
  }
}

}  // namespace kubemoe::cpu::paths

#endif  // __x86_64__
