#pragma once

// Memory for the header fields of the messages a connection is parsing, so that parsing a
// request and its response does not call malloc once per field.
//
// An Arena hands out pieces of one 4 KiB block (bump allocation) and falls back to the
// heap when the block is full. It resets itself when everything it handed out has been
// given back, so a connection can keep one across requests. ArenaAllocator is the
// standard-allocator face of it, for beast::http::basic_fields.
//
// Thread-safety: an Arena belongs to one connection, on one thread.

#include <cstddef>
#include <memory>
#include <new>
#include <vector>

namespace slipway::proxy {

class Arena {
 public:
  static constexpr size_t kBytes = 4096;

  void* Allocate(size_t n, size_t align) {
    const size_t at = (used_ + align - 1) & ~(align - 1);
    if (align <= alignof(std::max_align_t) && at + n <= kBytes) {
      used_ = at + n;
      ++live_;
      return block_ + at;
    }
    return ::operator new(n);
  }
  void Deallocate(void* p) {
    if (p >= static_cast<void*>(block_) && p < static_cast<void*>(block_ + kBytes)) {
      if (--live_ == 0) used_ = 0;
      return;
    }
    ::operator delete(p);
  }
  size_t live() const { return live_; }

 private:
  alignas(std::max_align_t) char block_[kBytes];
  size_t used_ = 0;
  size_t live_ = 0;
};

template <class T>
class ArenaAllocator {
 public:
  using value_type = T;

  ArenaAllocator() noexcept = default;  // no arena: the heap
  explicit ArenaAllocator(Arena* arena) noexcept : arena_(arena) {}
  template <class U>
  ArenaAllocator(const ArenaAllocator<U>& other) noexcept : arena_(other.arena()) {}

  T* allocate(size_t n) {
    if (arena_ == nullptr) return static_cast<T*>(::operator new(n * sizeof(T)));
    return static_cast<T*>(arena_->Allocate(n * sizeof(T), alignof(T)));
  }
  void deallocate(T* p, size_t) noexcept {
    if (arena_ == nullptr) {
      ::operator delete(p);
    } else {
      arena_->Deallocate(p);
    }
  }
  Arena* arena() const { return arena_; }

  template <class U>
  bool operator==(const ArenaAllocator<U>& other) const {
    return arena_ == other.arena();
  }
  template <class U>
  bool operator!=(const ArenaAllocator<U>& other) const {
    return arena_ != other.arena();
  }

 private:
  Arena* arena_ = nullptr;
};

// A worker's free list of arenas: connections hold one only while a request is in flight.
class ArenaPool {
 public:
  std::unique_ptr<Arena> Take() {
    if (free_.empty()) return std::make_unique<Arena>();
    auto arena = std::move(free_.back());
    free_.pop_back();
    return arena;
  }
  void Give(std::unique_ptr<Arena> arena) {
    if (arena && arena->live() == 0 && free_.size() < kMaxFree) free_.push_back(std::move(arena));
  }

 private:
  static constexpr size_t kMaxFree = 256;
  std::vector<std::unique_ptr<Arena>> free_;
};

}  // namespace slipway::proxy
