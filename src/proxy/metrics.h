#pragma once

// Per-route counters for Edge::Metrics(): requests by status class, bytes, and a latency
// histogram with fixed log-scale buckets.
//
// Every worker thread writes only its own cache-line-aligned slot with relaxed atomic
// stores (one writer per slot, so no read-modify-write and no lock); a snapshot adds the
// slots up. A reader may see a request's status counted before its bytes: snapshots
// are approximate while traffic flows, exact when it is quiet.
//
// Thread-safety: Record() from worker thread `thread` only; Snapshot() from any thread.

#include <atomic>
#include <cstdint>
#include <memory>

#include "proxy/edge.h"

namespace slipway::proxy {

// Buckets in microseconds: 0,1,2,3 exactly, then 4 per doubling up to 2^37 us (~38 h).
constexpr int kLatencyBuckets = 4 * 37;
int LatencyBucketIndex(uint64_t micros);
// Exclusive upper bound of bucket `index`, in microseconds.
uint64_t LatencyBucketUpperMicros(int index);

class RouteStats {
 public:
  explicit RouteStats(int threads);
  RouteStats(const RouteStats&) = delete;
  RouteStats& operator=(const RouteStats&) = delete;

  void Record(int thread, unsigned status, uint64_t bytes_in, uint64_t bytes_out, uint64_t micros);
  // Fills the counters and latency fields of `out` (not its names).
  void Snapshot(RouteMetrics* out) const;

 private:
  struct alignas(64) Slot {
    std::atomic<uint64_t> classes[5];
    std::atomic<uint64_t> bytes_in;
    std::atomic<uint64_t> bytes_out;
    std::atomic<uint64_t> latency[kLatencyBuckets];
  };
  const int threads_;
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace slipway::proxy
