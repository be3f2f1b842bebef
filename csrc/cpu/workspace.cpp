#include "cpu/workspace.h"

#ifdef __linux__
#include <sys/mman.h>
#endif

#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

namespace fusedrnn::cpu {

namespace {

constexpr size_t kHugePage = size_t(2) << 20;

struct Block {
  void* data;
  size_t bytes;
};

struct Cache {
  std::mutex mutex;
  std::vector<Block> blocks;  // oldest first
  size_t bytes = 0;

  // The smallest cached block of `bytes` to 2 * `bytes` (a much larger one stays for a call of its
  // own size), or {nullptr, 0}.
  Block take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex);
    auto best = blocks.end();
    for (auto it = blocks.begin(); it != blocks.end(); ++it)
      if (it->bytes >= bytes && it->bytes <= 2 * bytes && (best == blocks.end() || it->bytes < best->bytes)) best = it;
    if (best == blocks.end()) return {nullptr, 0};
    const Block block = *best;
    blocks.erase(best);
    this->bytes -= block.bytes;
    return block;
  }

  // Keeps the block, then frees the oldest ones while more than kCachedBytes are held.
  void give(Block block) {
    std::vector<Block> freed;
    {
      std::lock_guard<std::mutex> lock(mutex);
      blocks.push_back(block);
      this->bytes += block.bytes;
      while (this->bytes > kCachedBytes) {
        freed.push_back(blocks.front());
        this->bytes -= blocks.front().bytes;
        blocks.erase(blocks.begin());
      }
    }
    for (const Block& b : freed) std::free(b.data);
  }
};

Cache& cache() {
  static Cache* instance = new Cache;  // never destroyed: blocks may be freed during exit
  return *instance;
}

}  // namespace

void WorkspaceBlock::operator()(void* p) const {
  if (!p) return;
  if (bytes < kLargeBlock || bytes > kCachedBytes) return std::free(p);
  try {
    cache().give({p, bytes});
  } catch (...) {  // no room to note it (a deleter must not throw): not kept
    std::free(p);
  }
}

void* allocate_workspace(size_t bytes, WorkspaceBlock& block) {
  if (bytes < kLargeBlock) {
    block.bytes = 0;
    void* p = std::malloc(bytes > 0 ? bytes : 1);
    if (!p) throw std::bad_alloc();
    return p;
  }
  bytes = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  if (const Block cached = cache().take(bytes); cached.data) {
    block.bytes = cached.bytes;
    return cached.data;
  }
  void* p = std::aligned_alloc(kHugePage, bytes);
  if (!p) {  // the cached blocks may be what is missing
    release_cached_workspaces();
    p = std::aligned_alloc(kHugePage, bytes);
  }
  if (!p) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);  // a hint: where it is refused, small pages serve
#endif
  block.bytes = bytes;
  return p;
}

void release_cached_workspaces() {
  Cache& c = cache();
  std::vector<Block> freed;
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    freed.swap(c.blocks);
    c.bytes = 0;
  }
  for (const Block& b : freed) std::free(b.data);
}

size_t cached_workspace_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.bytes;
}

}  // namespace fusedrnn::cpu
