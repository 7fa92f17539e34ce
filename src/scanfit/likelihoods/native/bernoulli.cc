// scanfit's fused Bernoulli pass for the CPU: one loop over the observations computes the mean
// log-likelihood, the counts behind accuracy / false_pos / false_neg / predavg, and the
// gradient's per-observation weight, where XLA's CPU code runs a dozen separate kernels.
// Built on first use by scanfit/native/__init__.py and called through jax.ffi; the pure-JAX
// version of the same numbers is scanfit.likelihoods.bernoulli._pass_jax (the tests compare the two).
//
// Compiled without -ffast-math: NaN and inf propagate as in the JAX twin (a NaN index makes e and
// the objective NaN, -inf for a 1 makes it -inf; the engine's divergence check needs them);
// -fassociative-math lets the compiler vectorize the sums.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// exp(x) for x <= 0, branch-free so that it vectorizes: Cephes' expf polynomial (about 1 ulp).
// Below -87 it returns exp(-87) ~ 1.6e-38, a difference no float32 result here can show.
inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const int32_t k = static_cast<int32_t>(x * 1.44269504088896341f - 0.5f);  // round(x / ln 2), x <= 0
  const float n = static_cast<float>(k);
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (k + 127) << 23;  // 2^k
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

constexpr int64_t kBlock = 64;  // factors (1 + e) <= 2 per product: at most 2^64, one log each

struct Sums {
  float negative = 0.f, ones = 0.f, signed_ones = 0.f;
};

// One observation: adds to the sums, writes g = y * sigmoid(-y x) / n, returns e = exp(-|y x|).
inline float Observe(float x, float y, float inv, float* __restrict g, Sums& sums) {
  const float s = y * x;
  const float e = exp_nonpositive(-fabsf(s));
  sums.negative += s < 0.f ? s : 0.f;
  const float pred = x >= 0.f ? 1.f : 0.f;
  sums.ones += pred;
  sums.signed_ones += pred * y;
  *g = y * (s >= 0.f ? e : 1.f) / (1.f + e) * inv;
  return e;
}

// One start. x: index (n), y: +-1 (n), then possibly rows with y = 0: padding, which the engine
// appends so that fits of nearby sizes share one compiled program. out: [mean log-likelihood,
// share predicted 1, share (TP - FP)] over the observations before the padding; g: y *
// sigmoid(-y x) / n there and 0 on the padding, the derivative of the mean log-likelihood.
// log1p(e) is summed as the log of products of 64 factors (1 + e): one log per block.
void Pass(const float* __restrict x, const float* __restrict y, float* __restrict g, int64_t rows,
          float* __restrict out) {
  int64_t n = rows;  // the observations: the rows before a trailing run of y = 0 (none unpadded: one test)
  while (n > 0 && y[n - 1] == 0.f) --n;
  for (int64_t i = n; i < rows; ++i) g[i] = 0.f;
  const float inv = 1.0f / static_cast<float>(n);
  Sums sums;
  float logs = 0.f;
  const int64_t blocked = n / kBlock * kBlock;
  for (int64_t start = 0; start < blocked; start += kBlock) {
    float product = 1.f;
    for (int64_t i = start; i < start + kBlock; ++i) product *= 1.f + Observe(x[i], y[i], inv, g + i, sums);
    logs += logf(product);
  }
  for (int64_t i = blocked; i < n; ++i) logs += log1pf(Observe(x[i], y[i], inv, g + i, sums));
  out[0] = (sums.negative - logs) * inv;
  out[1] = sums.ones * inv;
  out[2] = sums.signed_ones * inv;
}

// The starts of a vmap (restarts) as pieces of work: the calling thread and helpers scheduled on
// XLA's intra-op pool claim starts from a counter. The caller waits only for starts that another
// running thread has claimed, so a busy pool can delay the work but never deadlock it.
struct Job {
  const float *x, *y;
  float *g, *out;
  int64_t n, starts;
  bool shared_y;
  std::atomic<int64_t> next{0}, finished{0};
  std::mutex mutex;
  std::condition_variable all_done;

  void Work() {
    for (int64_t b; (b = next.fetch_add(1)) < starts;) {
      Pass(x + b * n, y + (shared_y ? 0 : b * n), g + b * n, n, out + 3 * b);
      if (finished.fetch_add(1) + 1 == starts) {
        std::lock_guard<std::mutex> lock(mutex);
        all_done.notify_all();
      }
    }
  }
};

constexpr int64_t kParallelWork = 32768;  // observations x starts below which one thread is faster

// index (..., n); y (..., n) with the same leading size or 1 (y shared by every start).
ffi::Error BernoulliPass(ffi::Buffer<ffi::F32> index, ffi::Buffer<ffi::F32> y,
                         ffi::ResultBuffer<ffi::F32> sums, ffi::ResultBuffer<ffi::F32> grad,
                         ffi::ThreadPool pool) {
  const auto dims = index.dimensions();
  if (dims.size() == 0) return ffi::Error::InvalidArgument("index must have an observation axis");
  const int64_t n = dims.back();
  if (n == 0) return ffi::Error::InvalidArgument("no observations");
  const int64_t starts = index.element_count() / n;
  const int64_t ystarts = y.element_count() / n;
  if (y.dimensions().back() != n || (ystarts != starts && ystarts != 1))
    return ffi::Error::InvalidArgument("y must match index's observations");
  auto job = std::make_shared<Job>();
  job->x = index.typed_data();
  job->y = y.typed_data();
  job->g = grad->typed_data();
  job->out = sums->typed_data();
  job->n = n;
  job->starts = starts;
  job->shared_y = ystarts == 1;
  const int64_t helpers = starts * n >= kParallelWork ? std::min(pool.num_threads(), starts) - 1 : 0;
  for (int64_t h = 0; h < helpers; ++h) pool.Schedule([job] { job->Work(); });
  job->Work();
  std::unique_lock<std::mutex> lock(job->mutex);
  job->all_done.wait(lock, [&] { return job->finished.load() == starts; });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(scanfit_bernoulli_pass, BernoulliPass,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ctx<ffi::ThreadPool>());
