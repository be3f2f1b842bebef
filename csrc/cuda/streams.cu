// One side stream and two events per device and host thread, made on first use. An event may be
// recorded again while earlier waits on it are queued: cudaStreamWaitEvent waits for the record
// that was last made when it was called, so one pair of events serves every call.
#include "cuda/streams.cuh"

#include <vector>

#include "cuda/check.cuh"

namespace fusedrnn::cuda {

namespace {

struct SideResources {
  cudaStream_t stream = nullptr;
  cudaEvent_t forked = nullptr;  // recorded on main, waited on by side
  cudaEvent_t joined = nullptr;  // recorded on side, waited on by main
};

// Kept for the life of the process, like the cuBLAS handles (gemm.cu says why).
SideResources& resources() {
  thread_local std::vector<SideResources> per_device;
  int device = 0;
  FUSEDRNN_CUDA_CHECK(cudaGetDevice(&device));
  if (static_cast<int>(per_device.size()) <= device) per_device.resize(device + 1);
  SideResources& r = per_device[device];
  if (!r.stream) {
    // Non-blocking: ordered only by our events, not implicitly by the legacy default stream.
    FUSEDRNN_CUDA_CHECK(cudaStreamCreateWithFlags(&r.stream, cudaStreamNonBlocking));
    FUSEDRNN_CUDA_CHECK(cudaEventCreateWithFlags(&r.forked, cudaEventDisableTiming));
    FUSEDRNN_CUDA_CHECK(cudaEventCreateWithFlags(&r.joined, cudaEventDisableTiming));
  }
  return r;
}

}  // namespace

cudaStream_t side_stream() { return resources().stream; }

void fork(cudaStream_t main, cudaStream_t side) {
  SideResources& r = resources();
  FUSEDRNN_CUDA_CHECK(cudaEventRecord(r.forked, main));
  FUSEDRNN_CUDA_CHECK(cudaStreamWaitEvent(side, r.forked, 0));
}

void join(cudaStream_t main, cudaStream_t side) {
  SideResources& r = resources();
  FUSEDRNN_CUDA_CHECK(cudaEventRecord(r.joined, side));
  FUSEDRNN_CUDA_CHECK(cudaStreamWaitEvent(main, r.joined, 0));
}

}  // namespace fusedrnn::cuda
