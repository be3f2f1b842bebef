// A second stream for work that may overlap the caller's stream (the second direction of a
// bidirectional layer), ordered against it with events only: no host synchronisation.
#pragma once

#include <cuda_runtime.h>

namespace fusedrnn::cuda {

// The calling thread's side stream for the current device (created once, kept for the process).
cudaStream_t side_stream();

// After fork(main, side), work queued on `side` starts after everything queued on `main` so far.
void fork(cudaStream_t main, cudaStream_t side);

// After join(main, side), work queued on `main` starts after everything queued on `side` so far.
void join(cudaStream_t main, cudaStream_t side);

}  // namespace fusedrnn::cuda
