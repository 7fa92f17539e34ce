// scanfit's streamed GLM pass for the CPU: one loop over a chunk's rows gives the sums of a Newton
// pass of a linear model with a scalar GLM family (engine/passes.py's _linear_glm computes the same
// numbers with XLA): the total weight, the weighted sums of the statistics' terms, the gradient,
// and as asked the information X'WX and the scores' outer products, in float64 throughout.
// Built on first use by native/__init__.py and called with ctypes on the chunks' host memory
// (engine/native_pass.py); the tests compare it with the XLA pass.
//
// Families: 0 Gaussian (the loop's objective -(y - index)^2), 1 Bernoulli with the logit link.
// The rows are split into tiles of kTile rows, each summed on its own (by any of the threads) and
// the tiles' sums added in order: the result does not depend on the number of threads.
//
// Compiled without -ffast-math: NaN and inf propagate (the engine's divergence checks need them).
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <thread>
#include <vector>

namespace {

constexpr int64_t kRows = 128;   // rows per block: a block's standardized columns stay in L1
constexpr int64_t kTile = 8192;  // rows per tile: the unit of work and of the sums' order

// exp(x) for x <= 0, branch-free so that it vectorizes: Cody-Waite reduction by ln 2 and Taylor's
// series to degree 13 on |r| <= 0.35 (truncation below 1e-17; a few ulp in all). Below -708 it
// returns exp(-708) ~ 3e-308, a difference none of the sums can show.
inline double exp_nonpositive(double x) {
  x = x < -708.0 ? -708.0 : x;
  const int64_t k = static_cast<int64_t>(x * 1.4426950408889634 - 0.5);  // about round(x / ln 2), x <= 0
  const double n = static_cast<double>(k);
  const double r = (x - n * 6.93145751953125e-1) - n * 1.42860682030941723212e-6;
  double p = 1.0 / 6227020800.0;  // 1/13!
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  const int64_t bits = (k + 1023) << 52;  // 2^k
  double scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// log(1 + e) for 0 <= e <= 1, as 2 atanh(t) with t = e / (2 + e) <= 1/3 (no cancellation for small e):
// the odd series to t^37 (truncation below 1e-18).
inline double log1p_unit(double e) {
  const double t = e / (2.0 + e);
  const double t2 = t * t;
  double s = 1.0 / 37.0;  // written out: a loop here would keep the rows' loop from vectorizing
  s = s * t2 + 1.0 / 35.0;
  s = s * t2 + 1.0 / 33.0;
  s = s * t2 + 1.0 / 31.0;
  s = s * t2 + 1.0 / 29.0;
  s = s * t2 + 1.0 / 27.0;
  s = s * t2 + 1.0 / 25.0;
  s = s * t2 + 1.0 / 23.0;
  s = s * t2 + 1.0 / 21.0;
  s = s * t2 + 1.0 / 19.0;
  s = s * t2 + 1.0 / 17.0;
  s = s * t2 + 1.0 / 15.0;
  s = s * t2 + 1.0 / 13.0;
  s = s * t2 + 1.0 / 11.0;
  s = s * t2 + 1.0 / 9.0;
  s = s * t2 + 1.0 / 7.0;
  s = s * t2 + 1.0 / 5.0;
  s = s * t2 + 1.0 / 3.0;
  s = s * t2 + 1.0 / 1.0;
  return 2.0 * t * s;
}

// mat (p x p, row-major) += the products of zv's columns (column-major, kRows apart; columns p up to
// a multiple of 4 are zero) over nb rows, in 4 x 4 tiles of the lower triangle (the diagonal tiles
// whole): 16 sums per pass over 8 columns keep the multiply-adds, not the loads, the limit.
inline void Products(const double* __restrict zv, int64_t p, int64_t nb, double* __restrict mat) {
  for (int64_t jb = 0; jb < p; jb += 4) {
    const double *a0 = zv + jb * kRows, *a1 = a0 + kRows, *a2 = a1 + kRows, *a3 = a2 + kRows;
    for (int64_t kb = 0; kb <= jb; kb += 4) {
      const double *b0 = zv + kb * kRows, *b1 = b0 + kRows, *b2 = b1 + kRows, *b3 = b2 + kRows;
      double s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      double s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
      for (int64_t i = 0; i < nb; ++i) {
        const double x0 = a0[i], x1 = a1[i], x2 = a2[i], x3 = a3[i];
        const double y0 = b0[i], y1 = b1[i], y2 = b2[i], y3 = b3[i];
        s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
        s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
        s20 += x2 * y0; s21 += x2 * y1; s22 += x2 * y2; s23 += x2 * y3;
        s30 += x3 * y0; s31 += x3 * y1; s32 += x3 * y2; s33 += x3 * y3;
      }
      const double sums[4][4] = {{s00, s01, s02, s03}, {s10, s11, s12, s13}, {s20, s21, s22, s23},
                                 {s30, s31, s32, s33}};
      for (int64_t u = 0; u < 4 && jb + u < p; ++u)
        for (int64_t v = 0; v < 4 && kb + v <= jb + u; ++v) mat[(jb + u) * p + kb + v] += sums[u][v];
    }
  }
}

struct Spec {
  int64_t d, p, m, size;  // features, coefficients (with the intercept), terms, doubles in the sums
  int family, intercept, want_h, want_meat, want_extreme;
  double beta0, extreme;
  const double *beta, *center, *inv_scale;
};

// One block of rows (at most kRows): adds the block's sums to out (the layout of scanfit_glm_pass).
template <typename T>
void Block(const Spec& s, const T* __restrict x, const double* __restrict y, const double* __restrict w,
           const double* __restrict off, int64_t nb, double* __restrict z, double* __restrict zv,
           double* __restrict out) {
  const int64_t d = s.d, p = s.p, ic = s.intercept;
  double idx[kRows], wt[kRows], r[kRows], v1[kRows], v2[kRows];
  // standardized columns, column-major: z[(ic + j) * kRows + i]; the intercept's column is 1
  for (int64_t i = 0; i < nb; ++i) {
    const T* row = x + i * d;
    for (int64_t j = 0; j < d; ++j) z[(ic + j) * kRows + i] = (static_cast<double>(row[j]) - s.center[j]) * s.inv_scale[j];
  }
  for (int64_t i = 0; i < nb; ++i) {
    idx[i] = (ic ? s.beta0 : 0.0) + (off ? off[i] : 0.0);
    wt[i] = w ? w[i] : 1.0;
  }
  for (int64_t j = 0; j < d; ++j) {
    const double b = s.beta[j];
    const double* col = z + (ic + j) * kRows;
    for (int64_t i = 0; i < nb; ++i) idx[i] += b * col[i];
  }
  double* terms = out + 1;
  double* g = out + 1 + s.m;
  double weight = 0.0, t0 = 0.0, t1 = 0.0, t2 = 0.0, t3 = 0.0, extreme = 0.0;
  if (s.family == 1) {  // Bernoulli, logit link; y is -1 or 1
    for (int64_t i = 0; i < nb; ++i) {
      const double a = idx[i], yi = y[i], wi = wt[i];
      const double e = exp_nonpositive(-fabs(a));
      const double inv = 1.0 / (1.0 + e);
      const double prob = a >= 0.0 ? inv : e * inv;  // sigmoid(index)
      const double sy = yi * a;
      const double loglik = (sy < 0.0 ? sy : 0.0) - log1p_unit(e);  // log sigmoid(y index)
      const double pred = a > 0.0 ? 1.0 : 0.0;
      const double ri = 0.5 * (yi + 1.0) - prob;
      weight += wi;
      t0 += wi * loglik;
      t1 += wi * pred;
      t2 += wi * yi * pred;
      t3 += wi * yi;
      extreme += fabs(a) > s.extreme ? wi : 0.0;
      r[i] = ri * wi;
      v1[i] = e * inv * inv * wi;  // p (1 - p) w
      v2[i] = ri * ri * wi;
    }
  } else {  // Gaussian: the objective -(y - index)^2, score 2 (y - index), information 2
    for (int64_t i = 0; i < nb; ++i) {
      const double res = y[i] - idx[i], wi = wt[i];
      weight += wi;
      t0 -= wi * res * res;
      r[i] = 2.0 * res * wi;
      v1[i] = 2.0 * wi;
      v2[i] = 4.0 * res * res * wi;
    }
  }
  out[0] += weight;
  terms[0] += t0;
  if (s.family == 1) {
    terms[1] += t1;
    terms[2] += t2;
    terms[3] += t3;
  }
  if (ic) {
    double sum = 0.0;
    for (int64_t i = 0; i < nb; ++i) sum += r[i];
    g[0] += sum;
    for (int64_t i = 0; i < nb; ++i) z[i] = 1.0;
  }
  for (int64_t j = ic; j < p; ++j) {
    const double* col = z + j * kRows;
    double sum = 0.0;
    for (int64_t i = 0; i < nb; ++i) sum += col[i] * r[i];
    g[j] += sum;
  }
  double* mat = g + p;
  for (int which = 0; which < 2; ++which) {
    if (which == 0 ? !s.want_h : !s.want_meat) continue;
    const double* v = which == 0 ? v1 : v2;
    double sq[kRows];
    for (int64_t i = 0; i < nb; ++i) sq[i] = sqrt(v[i]);  // v >= 0
    for (int64_t j = 0; j < p; ++j) {
      const double* col = z + j * kRows;
      double* dst = zv + j * kRows;
      for (int64_t i = 0; i < nb; ++i) dst[i] = col[i] * sq[i];
    }
    Products(zv, p, nb, mat);
    mat += p * p;
  }
  if (s.want_extreme) *mat += extreme;
}

template <typename T>
void Tiles(const Spec& s, const T* x, const double* y, const double* w, const double* off, int64_t rows,
           int64_t first, int64_t step, double* partial) {
  const int64_t padded = (s.p + 3) / 4 * 4;  // the products' tiles read up to 3 zero columns more
  std::vector<double> z(padded * kRows, 0.0), zv(padded * kRows, 0.0);
  const int64_t tiles = (rows + kTile - 1) / kTile;
  for (int64_t t = first; t < tiles; t += step) {
    double* out = partial + t * s.size;
    const int64_t end = std::min(rows, (t + 1) * kTile);
    for (int64_t r0 = t * kTile; r0 < end; r0 += kRows) {
      const int64_t nb = std::min(kRows, end - r0);
      Block<T>(s, x + r0 * s.d, y + r0, w ? w + r0 : nullptr, off ? off + r0 : nullptr, nb, z.data(), zv.data(), out);
    }
  }
}

template <typename T>
void Pass(const Spec& s, const T* x, const double* y, const double* w, const double* off, int64_t rows,
          int threads, double* out) {
  const int64_t tiles = (rows + kTile - 1) / kTile;
  std::vector<double> partial(std::max<int64_t>(tiles, 1) * s.size, 0.0);
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(threads, tiles));
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < workers; ++t)
    pool.emplace_back(Tiles<T>, std::cref(s), x, y, w, off, rows, t, workers, partial.data());
  Tiles<T>(s, x, y, w, off, rows, 0, workers, partial.data());
  for (auto& th : pool) th.join();
  for (int64_t t = 0; t < tiles; ++t)
    for (int64_t k = 0; k < s.size; ++k) out[k] += partial[t * s.size + k];
  double* mat = out + 1 + s.m + s.p;  // the matrices were summed in their lower triangles
  for (int which = 0; which < s.want_h + s.want_meat; ++which, mat += s.p * s.p)
    for (int64_t j = 0; j < s.p; ++j)
      for (int64_t k = j + 1; k < s.p; ++k) mat[j * s.p + k] = mat[k * s.p + j];
}

// The two passes of scanfit_chunk_moments: sums and the count of non-finite values per column (a
// comparison: the compiler may not rewrite it, as it may v - v), then squared deviations about the means.
template <typename T>
void Moments(const T* __restrict x, int64_t rows, int64_t padded, int64_t d, const double* __restrict y,
             const double* __restrict w, int moments, double* __restrict out) {
  std::vector<double> sum(d, 0.0), check(d, 0.0), m2(d, 0.0), mean(d, 0.0);
  double weight = 0.0, ysum = 0.0;
  for (int64_t i = 0; i < padded; ++i) {
    const T* row = x + i * d;
    const double wi = i < rows ? (w ? w[i] : 1.0) : 0.0;
    if (i < rows) {
      weight += wi;
      ysum += wi * y[i];
    }
    for (int64_t j = 0; j < d; ++j) {
      const double v = static_cast<double>(row[j]);
      check[j] += fabs(v) <= 1.7976931348623157e308 ? 0.0 : 1.0;  // NaN and +-inf count
      if (moments) sum[j] += wi * v;
    }
  }
  const double safe = weight > 0.0 ? weight : 2.2250738585072014e-308;
  const double ymean = ysum / safe;
  double ym2 = 0.0;
  for (int64_t i = 0; i < rows; ++i) {
    const double dev = y[i] - ymean;
    ym2 += (w ? w[i] : 1.0) * dev * dev;
  }
  if (moments) {
    for (int64_t j = 0; j < d; ++j) mean[j] = sum[j] / safe;
    for (int64_t i = 0; i < rows; ++i) {
      const T* row = x + i * d;
      const double wi = w ? w[i] : 1.0;
      for (int64_t j = 0; j < d; ++j) {
        const double dev = static_cast<double>(row[j]) - mean[j];
        m2[j] += wi * dev * dev;
      }
    }
  }
  out[0] = weight;
  out[1] = ymean;
  out[2] = ym2;
  for (int64_t j = 0; j < d; ++j) {
    out[3 + j] = mean[j];
    out[3 + d + j] = m2[j];
    out[3 + 2 * d + j] = check[j] == 0.0 ? 1.0 : 0.0;
  }
}

template <typename T>
void Gather(const T* const* cols, int64_t rows, int64_t d, T* __restrict out) {
  for (int64_t i = 0; i < rows; ++i) {
    T* __restrict row = out + i * d;
    for (int64_t j = 0; j < d; ++j) row[j] = cols[j][i];
  }
}

}  // namespace

extern "C" {

// The size of the sums for these options (doubles): weight, terms, gradient, [X'WX], [meat], [extreme].
int64_t scanfit_glm_size(int64_t d, int intercept, int family, int want_h, int want_meat, int want_extreme) {
  const int64_t p = d + (intercept ? 1 : 0), m = family == 1 ? 4 : 1;
  return 1 + m + p + (want_h ? p * p : 0) + (want_meat ? p * p : 0) + (want_extreme ? 1 : 0);
}

// Adds one chunk's sums to out. x: rows x d, row-major, float32 (x_double 0) or float64; y, w, off:
// float64 (w, off may be null); only the first `rows` rows are read. Returns 0, or -1 for bad options.
int scanfit_glm_pass(const void* x, int x_double, int64_t rows, int64_t d, const double* y, const double* w,
                     const double* off, const double* beta, double beta0, int intercept, const double* center,
                     const double* inv_scale, int family, int want_h, int want_meat, int want_extreme,
                     double extreme, int threads, double* out) {
  if (rows < 0 || d < 0 || (family != 0 && family != 1)) return -1;
  Spec s;
  s.d = d;
  s.p = d + (intercept ? 1 : 0);
  s.m = family == 1 ? 4 : 1;
  s.size = scanfit_glm_size(d, intercept, family, want_h, want_meat, want_extreme);
  s.family = family;
  s.intercept = intercept ? 1 : 0;
  s.want_h = want_h ? 1 : 0;
  s.want_meat = want_meat ? 1 : 0;
  s.want_extreme = want_extreme ? 1 : 0;
  s.beta0 = beta0;
  s.extreme = extreme;
  s.beta = beta;
  s.center = center;
  s.inv_scale = inv_scale;
  if (x_double)
    Pass<double>(s, static_cast<const double*>(x), y, w, off, rows, threads, out);
  else
    Pass<float>(s, static_cast<const float*>(x), y, w, off, rows, threads, out);
  return 0;
}

// A chunk's numbers for a first pass, weighted by w (null: 1) over the first `rows` rows: out =
// [weight, y's mean, y's sum of squared deviations, then per column: mean, sum of squared deviations
// (both 0 unless `moments`), 1 if every value of the column is finite (padding rows included) else 0].
int scanfit_chunk_moments(const void* x, int x_double, int64_t rows, int64_t padded, int64_t d,
                          const double* y, const double* w, int moments, double* out) {
  if (rows < 0 || padded < rows || d < 0) return -1;
  if (x_double)
    Moments<double>(static_cast<const double*>(x), rows, padded, d, y, w, moments, out);
  else
    Moments<float>(static_cast<const float*>(x), rows, padded, d, y, w, moments, out);
  return 0;
}

// Rows from columns: out (rows x d, row-major) gets column j of cols at out[i * d + j]; the columns
// are float32 (x_double 0) or float64, as out. Blocks of 512 rows keep the block's rows in the caches.
int scanfit_gather_rows(const void* const* cols, int x_double, int64_t rows, int64_t d, void* out) {
  if (rows < 0 || d < 0) return -1;
  if (x_double)
    Gather<double>(reinterpret_cast<const double* const*>(cols), rows, d, static_cast<double*>(out));
  else
    Gather<float>(reinterpret_cast<const float* const*>(cols), rows, d, static_cast<float*>(out));
  return 0;
}

}  // extern "C"
