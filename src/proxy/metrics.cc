#include "proxy/metrics.h"

#include <algorithm>
#include <bit>

namespace slipway::proxy {

namespace {

void Add(std::atomic<uint64_t>& counter, uint64_t n) {
  // Single writer per slot: a plain load + store is enough and avoids a locked add.
  counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

}  // namespace

int LatencyBucketIndex(uint64_t micros) {
  if (micros < 4) return static_cast<int>(micros);
  const int msb = 63 - std::countl_zero(micros);  // >= 2
  const int sub = static_cast<int>((micros >> (msb - 2)) & 3);
  return std::min(4 * (msb - 1) + sub, kLatencyBuckets - 1);
}

uint64_t LatencyBucketUpperMicros(int index) {
  if (index < 4) return static_cast<uint64_t>(index) + 1;
  const int msb = index / 4 + 1;
  const uint64_t sub = static_cast<uint64_t>(index % 4);
  return (5 + sub) << (msb - 2);
}

RouteStats::RouteStats(int threads)
    : threads_(std::max(1, threads)), slots_(std::make_unique<Slot[]>(threads_)) {
  for (int t = 0; t < threads_; ++t) {
    Slot& s = slots_[t];
    for (auto& c : s.classes) c.store(0, std::memory_order_relaxed);
    s.bytes_in.store(0, std::memory_order_relaxed);
    s.bytes_out.store(0, std::memory_order_relaxed);
    for (auto& c : s.latency) c.store(0, std::memory_order_relaxed);
  }
}

void RouteStats::Record(int thread, unsigned status, uint64_t bytes_in, uint64_t bytes_out,
                        uint64_t micros) {
  if (thread < 0 || thread >= threads_) return;
  Slot& s = slots_[thread];
  const unsigned cls = std::clamp(status / 100, 1u, 5u) - 1;
  Add(s.classes[cls], 1);
  if (bytes_in != 0) Add(s.bytes_in, bytes_in);
  if (bytes_out != 0) Add(s.bytes_out, bytes_out);
  Add(s.latency[LatencyBucketIndex(micros)], 1);
}

void RouteStats::Snapshot(RouteMetrics* out) const {
  uint64_t latency[kLatencyBuckets] = {};
  out->status_classes = {};
  out->bytes_in = out->bytes_out = out->requests = 0;
  for (int t = 0; t < threads_; ++t) {
    const Slot& s = slots_[t];
    for (int c = 0; c < 5; ++c)
      out->status_classes[c] += s.classes[c].load(std::memory_order_relaxed);
    out->bytes_in += s.bytes_in.load(std::memory_order_relaxed);
    out->bytes_out += s.bytes_out.load(std::memory_order_relaxed);
    for (int b = 0; b < kLatencyBuckets; ++b) {
      latency[b] += s.latency[b].load(std::memory_order_relaxed);
    }
  }
  uint64_t total = 0;
  out->latency.clear();
  for (int b = 0; b < kLatencyBuckets; ++b) {
    total += latency[b];
    if (latency[b] != 0) {
      out->latency.push_back(
          LatencyBucket{static_cast<double>(LatencyBucketUpperMicros(b)) / 1000.0, latency[b]});
    }
  }
  out->requests = total;
  auto percentile = [&](double q) {
    if (total == 0) return 0.0;
    const auto rank = static_cast<uint64_t>(q * static_cast<double>(total - 1)) + 1;
    uint64_t seen = 0;
    for (int b = 0; b < kLatencyBuckets; ++b) {
      seen += latency[b];
      if (seen >= rank) return static_cast<double>(LatencyBucketUpperMicros(b)) / 1000.0;
    }
    return static_cast<double>(LatencyBucketUpperMicros(kLatencyBuckets - 1)) / 1000.0;
  };
  out->p50_ms = percentile(0.50);
  out->p95_ms = percentile(0.95);
  out->p99_ms = percentile(0.99);
}

}  // namespace slipway::proxy
