// Carves the caller's device workspace into arrays. The same code sizes it: run over a null base,
// take() hands out null pointers and bytes() is the size a real base must have, so the reported
// size and the layout cannot drift apart.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fusedrnn::cuda {

class Workspace {
 public:
  explicit Workspace(void* base) : base_(static_cast<char*>(base)) {}

  template <typename T>
  T* take(int64_t count) {
    const size_t at = used_;
    // 256 bytes: cudaMalloc's alignment, which cuBLAS's fastest kernels expect of every operand.
    used_ += (static_cast<size_t>(count) * sizeof(T) + 255) / 256 * 256;
    return base_ ? reinterpret_cast<T*>(base_ + at) : nullptr;
  }

  // Where the rest begins (a base for another carver) and how much is taken so far.
  void* rest() const { return base_ ? base_ + used_ : nullptr; }
  size_t bytes() const { return used_; }

 private:
  char* base_;
  size_t used_ = 0;
};

}  // namespace fusedrnn::cuda
