// Uninitialised scratch memory of the kernels, owned like a std::unique_ptr<T[]>.
//
// Large workspaces (4 MiB and more: the (B, T, G*H) projection of an inference forward, the
// backward's gate gradients) would come fresh from the system on every call, since the C library
// gives blocks that large back when they are freed, and fresh pages are faulted in and zeroed at
// first touch. So large blocks sit in transparent huge pages (512 times fewer faults and TLB
// entries) and, once freed, wait in a process-wide cache for the next call of a similar size, as
// oneDNN keeps its scratchpad.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace fusedrnn::cpu {

// The most the cache holds between calls, and the smallest block it takes.
constexpr size_t kCachedBytes = size_t(256) << 20;
constexpr size_t kLargeBlock = size_t(4) << 20;

// The deleter of a workspace: frees it, or gives a large block back to the cache.
struct WorkspaceBlock {
  size_t bytes = 0;  // the block's size where it is a large one; 0 for small ones (plain malloc)
  void operator()(void* p) const;
};

template <typename T>
using Workspace = std::unique_ptr<T[], WorkspaceBlock>;

// A block of at least `bytes` bytes (one if 0), from the cache where one fits; `block` becomes its
// deleter. Throws std::bad_alloc if none can be had.
void* allocate_workspace(size_t bytes, WorkspaceBlock& block);

// n uninitialised elements, allocated by the calling thread.
template <typename T>
Workspace<T> workspace(int64_t n) {
  WorkspaceBlock block;
  void* p = allocate_workspace(static_cast<size_t>(n > 0 ? n : 0) * sizeof(T), block);
  return Workspace<T>(static_cast<T*>(p), block);
}

// Frees every cached block (for tests, and for callers that want the memory back).
void release_cached_workspaces();
// Bytes held by the cache now.
size_t cached_workspace_bytes();

}  // namespace fusedrnn::cpu
