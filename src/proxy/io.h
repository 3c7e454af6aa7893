#pragma once

// The edge's I/O vocabulary: sockets, timers and coroutines on a worker's io_context
// executor (concrete, so no type-erased executor is copied per operation), and
// deadlines that cost a store per operation.
//
// Timeouts: instead of a timer armed and cancelled around every read and write (what
// beast::tcp_stream does), each socket in use has a Deadline, a time point set before an
// operation, and the worker sweeps its DeadlineList every kDeadlineTick: a socket whose
// deadline passed is closed, which ends its pending operation with an error that
// TimedOut() then reports as a timeout. Timeouts are seconds long, so a tick of 100 ms is
// precise enough.
//
// Thread-safety: everything here belongs to one worker thread.

#include <time.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>

namespace slipway::proxy {

// The monotonic clock at the kernel's tick resolution (a few ms), several times cheaper
// to read than steady_clock::now(); same epoch, so the two compare. For deadlines, pool
// ages and ejection periods, never for latencies.
inline std::chrono::steady_clock::time_point CoarseNow() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::chrono::steady_clock::time_point(std::chrono::seconds(ts.tv_sec) +
                                               std::chrono::nanoseconds(ts.tv_nsec));
}

using Executor = boost::asio::io_context::executor_type;
using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, Executor>;
using Acceptor = boost::asio::basic_socket_acceptor<boost::asio::ip::tcp, Executor>;
using Timer = boost::asio::basic_waitable_timer<
    std::chrono::steady_clock, boost::asio::wait_traits<std::chrono::steady_clock>, Executor>;
template <class T>
using Task = boost::asio::awaitable<T, Executor>;
// co_await op(..., kTuple) yields a tuple (error_code, results...) instead of throwing.
constexpr auto kTuple = boost::asio::as_tuple(boost::asio::use_awaitable_t<Executor>{});

constexpr std::chrono::milliseconds kDeadlineTick{100};

class DeadlineList;

// The deadline of the operations on one socket. Linked into its worker's list for its
// whole life; the socket must outlive it.
class Deadline {
 public:
  Deadline(DeadlineList& list, Socket& socket);
  ~Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  void After(std::chrono::steady_clock::duration d) {
    at_ = CoarseNow() + d;
    idle_ = false;
  }
  // The same for a connection waiting for its next request: DeadlineList::CutIdle() may
  // bring it forward (an edge that drains closes idle keep-alive connections).
  void IdleAfter(std::chrono::steady_clock::duration d) {
    at_ = CoarseNow() + d;
    idle_ = true;
  }
  void At(std::chrono::steady_clock::time_point at) {
    at_ = at;
    idle_ = false;
  }
  void Never() {
    at_ = std::chrono::steady_clock::time_point::max();
    idle_ = false;
  }
  // True once the sweep closed the socket because the deadline passed.
  bool TimedOut() const { return fired_; }

 private:
  friend class DeadlineList;
  DeadlineList& list_;
  Socket& socket_;
  std::chrono::steady_clock::time_point at_ = std::chrono::steady_clock::time_point::max();
  bool fired_ = false;
  bool idle_ = false;
  Deadline* prev_ = nullptr;
  Deadline* next_ = nullptr;
};

class DeadlineList {
 public:
  DeadlineList() = default;
  DeadlineList(const DeadlineList&) = delete;
  DeadlineList& operator=(const DeadlineList&) = delete;

  // Closes the socket of every deadline that passed.
  void Sweep(std::chrono::steady_clock::time_point now);
  // Brings every idle deadline (Deadline::IdleAfter) that lies after `at` forward to `at`.
  void CutIdle(std::chrono::steady_clock::time_point at);
  size_t size() const { return size_; }

 private:
  friend class Deadline;
  Deadline* head_ = nullptr;
  size_t size_ = 0;
};

inline Deadline::Deadline(DeadlineList& list, Socket& socket) : list_(list), socket_(socket) {
  next_ = list_.head_;
  if (next_ != nullptr) next_->prev_ = this;
  list_.head_ = this;
  ++list_.size_;
}

inline Deadline::~Deadline() {
  if (prev_ != nullptr) {
    prev_->next_ = next_;
  } else {
    list_.head_ = next_;
  }
  if (next_ != nullptr) next_->prev_ = prev_;
  --list_.size_;
}

inline void DeadlineList::Sweep(std::chrono::steady_clock::time_point now) {
  // Closing only queues the pending operations' completions: the list does not change
  // while it is walked.
  for (Deadline* d = head_; d != nullptr; d = d->next_) {
    if (!d->fired_ && d->at_ <= now) {
      d->fired_ = true;
      boost::system::error_code ignored;
      d->socket_.close(ignored);
    }
  }
}

inline void DeadlineList::CutIdle(std::chrono::steady_clock::time_point at) {
  for (Deadline* d = head_; d != nullptr; d = d->next_) {
    if (d->idle_ && d->at_ > at) d->at_ = at;
  }
}

}  // namespace slipway::proxy
