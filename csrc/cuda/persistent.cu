// The persistent path's host side: the launch geometry, the device's limits, whether a shape's
// shared memory and grid fit (occupancy), and the cooperative launches. The kernels, and the
// geometry and block layout they read, are in persistent_kernels.cuh; persistent.cuh says what
// the path does and its contract.
#include "cuda/persistent.cuh"

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "cuda/check.cuh"
#include "cuda/persistent_kernels.cuh"
#include "fusedrnn/cells.h"

namespace fusedrnn::cuda {

namespace {

// U spreads the 2*H or H units over every SM, one block per SM; BL is the fewest row lanes whose
// register tiles cover B (more reduction lanes instead: shorter loops for small B).
Geometry make_geometry(const SeqDims& d, int num_dirs, int sm_count) {
  Geometry g{};
  g.batch = static_cast<int>(d.batch);
  g.steps = static_cast<int>(d.steps);
  g.hidden = static_cast<int>(d.hidden);
  g.units = static_cast<int>(std::max<int64_t>(1, ceil_div(num_dirs * d.hidden, sm_count)));
  while (num_dirs * ceil_div(g.hidden, g.units) > sm_count) ++g.units;  // rounding up may leave one too many
  g.blocks_per_dir = static_cast<int>(ceil_div(g.hidden, g.units));
  g.row_lanes = 1;
  while (g.row_lanes < kMaxRowLanes && g.row_lanes * kRowsPerLane < g.batch) g.row_lanes *= 2;
  g.k_lanes = 32 / g.row_lanes;
  g.chunks = static_cast<int>(ceil_div(g.batch, rows_per_chunk(g)));
  g.warps = static_cast<int>(std::clamp<int64_t>(int64_t(g.units) * g.chunks, kMinWarps, kMaxWarps));
  return g;
}

struct DeviceLimits {
  bool cooperative;
  int sm_count;
  int smem_optin;  // bytes of shared memory one block may opt in to
};

// Queried once per device; thread-safe.
DeviceLimits device_limits(int device) {
  static std::mutex mutex;
  static std::unordered_map<int, DeviceLimits> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto found = cache.find(device);
  if (found != cache.end()) return found->second;
  int cooperative = 0;
  DeviceLimits limits{};
  FUSEDRNN_CUDA_CHECK(cudaDeviceGetAttribute(&cooperative, cudaDevAttrCooperativeLaunch, device));
  FUSEDRNN_CUDA_CHECK(cudaDeviceGetAttribute(&limits.sm_count, cudaDevAttrMultiProcessorCount, device));
  FUSEDRNN_CUDA_CHECK(cudaDeviceGetAttribute(&limits.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  limits.cooperative = cooperative != 0;
  cache.emplace(device, limits);
  return limits;
}

// Lets `kernel` use all the opt-in shared memory of the current device `device`, once per pair.
void allow_shared_memory(const void* kernel, int device, int bytes) {
  static std::mutex mutex;
  static std::set<std::pair<int, const void*>> done;
  std::lock_guard<std::mutex> lock(mutex);
  if (done.count({device, kernel})) return;
  FUSEDRNN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  done.insert({device, kernel});
}

template <class Cell, typename T>
const void* forward_kernel_ptr() { return reinterpret_cast<const void*>(&forward_kernel<Cell, T>); }
template <class Cell, typename T>
const void* backward_kernel_ptr() { return reinterpret_cast<const void*>(&backward_kernel<Cell, T>); }

// The shape on `device` (the current device): forward and backward kernels both fit and co-reside.
template <class Cell, typename T>
bool fits(const SeqDims& d, int num_dirs, int device) {
  const DeviceLimits limits = device_limits(device);
  if (!limits.cooperative) return false;
  const Geometry geo = make_geometry(d, num_dirs, limits.sm_count);
  const std::pair<const void*, int64_t> kernels[] = {
      {forward_kernel_ptr<Cell, T>(), forward_layout<Cell>(geo, sizeof(T)).bytes},
      {backward_kernel_ptr<Cell, T>(), backward_layout<Cell>(geo, sizeof(T)).bytes}};
  for (const auto& [kernel, bytes] : kernels) {
    if (bytes > limits.smem_optin) return false;
    allow_shared_memory(kernel, device, limits.smem_optin);
    int per_sm = 0;
    FUSEDRNN_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, 32 * geo.warps,
                                                                      static_cast<size_t>(bytes)));
    if (int64_t(per_sm) * limits.sm_count < int64_t(num_dirs) * geo.blocks_per_dir) return false;
  }
  return true;
}

bool shape_in_range(const SeqDims& d, int num_dirs) {
  return (num_dirs == 1 || num_dirs == 2) && d.batch >= 1 && d.batch <= kPersistentMaxBatch && d.steps >= 1 &&
         d.steps < (int64_t(1) << 30) && d.hidden >= 1 && d.hidden < (int64_t(1) << 20);
}

// One cooperative launch of `kernel` over the geometry of the current device.
template <class Params>
void launch(const void* kernel, const char* name, Params& params, int num_dirs, int64_t smem_bytes, int device,
            cudaStream_t stream) {
  const DeviceLimits limits = device_limits(device);
  if (!limits.cooperative || smem_bytes > limits.smem_optin)
    throw std::runtime_error(std::string("fusedrnn CUDA: ") + name + ": shape not supported by the persistent path");
  allow_shared_memory(kernel, device, limits.smem_optin);
  void* args[] = {&params};
  FUSEDRNN_CUDA_CHECK(cudaLaunchCooperativeKernel(kernel, dim3(num_dirs * params.geo.blocks_per_dir),
                                                  dim3(32 * params.geo.warps), args,
                                                  static_cast<size_t>(smem_bytes), stream));
}

template <class Cell, typename T>
void forward_cell(Activation act, const SeqDims& d, const DirectionForward<T>* dirs, int num_dirs,
                  cudaStream_t stream) {
  if (!shape_in_range(d, num_dirs))
    throw std::runtime_error("fusedrnn CUDA: persistent_forward: shape not supported by the persistent path");
  int device = 0;
  FUSEDRNN_CUDA_CHECK(cudaGetDevice(&device));
  ForwardParams<T> params{};
  params.geo = make_geometry(d, num_dirs, device_limits(device).sm_count);
  params.act = act;
  for (int i = 0; i < num_dirs; ++i) params.dirs[i] = dirs[i];
  launch(forward_kernel_ptr<Cell, T>(), "persistent_forward", params, num_dirs,
         forward_layout<Cell>(params.geo, sizeof(T)).bytes, device, stream);
}

template <class Cell, typename T>
void backward_cell(Activation act, const SeqDims& d, const DirectionBackward<T>* dirs, int num_dirs,
                   cudaStream_t stream) {
  if (!shape_in_range(d, num_dirs))
    throw std::runtime_error("fusedrnn CUDA: persistent_backward: shape not supported by the persistent path");
  int device = 0;
  FUSEDRNN_CUDA_CHECK(cudaGetDevice(&device));
  BackwardParams<T> params{};
  params.geo = make_geometry(d, num_dirs, device_limits(device).sm_count);
  params.act = act;
  for (int i = 0; i < num_dirs; ++i) params.dirs[i] = dirs[i];
  launch(backward_kernel_ptr<Cell, T>(), "persistent_backward", params, num_dirs,
         backward_layout<Cell>(params.geo, sizeof(T)).bytes, device, stream);
}

}  // namespace

bool persistent_supported(CellKind cell, size_t elem_size, const SeqDims& dims, int num_dirs, int device) {
  if (!shape_in_range(dims, num_dirs) || (elem_size != sizeof(float) && elem_size != sizeof(double))) return false;
  // Asked before every op: the answer (which does not depend on T or I) is remembered.
  using Key = std::tuple<int, int, size_t, int64_t, int64_t, int>;
  static std::mutex mutex;
  static std::map<Key, bool> answers;
  const Key key{device, static_cast<int>(cell), elem_size, dims.batch, dims.hidden, num_dirs};
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto found = answers.find(key);
    if (found != answers.end()) return found->second;
  }
  // The kernels' attributes and the occupancy are per device: query them with `device` current.
  int current = 0;
  FUSEDRNN_CUDA_CHECK(cudaGetDevice(&current));
  if (current != device) FUSEDRNN_CUDA_CHECK(cudaSetDevice(device));
  bool ok = false;
  try {
    ok = with_cell(cell, [&](auto c) {
      using Cell = decltype(c);
      return elem_size == sizeof(float) ? fits<Cell, float>(dims, num_dirs, device)
                                        : fits<Cell, double>(dims, num_dirs, device);
    });
  } catch (...) {
    if (current != device) static_cast<void>(cudaSetDevice(current));  // already failing: keep that error
    throw;
  }
  if (current != device) FUSEDRNN_CUDA_CHECK(cudaSetDevice(current));
  std::lock_guard<std::mutex> lock(mutex);
  answers.emplace(key, ok);
  return ok;
}

template <typename T>
void persistent_forward(CellKind cell, Activation act, const SeqDims& dims, const DirectionForward<T>* dirs,
                        int num_dirs, cudaStream_t stream) {
  with_cell(cell, [&](auto c) { forward_cell<decltype(c), T>(act, dims, dirs, num_dirs, stream); });
}

template <typename T>
void persistent_backward(CellKind cell, Activation act, const SeqDims& dims, const DirectionBackward<T>* dirs,
                         int num_dirs, cudaStream_t stream) {
  with_cell(cell, [&](auto c) { backward_cell<decltype(c), T>(act, dims, dirs, num_dirs, stream); });
}

template void persistent_forward<float>(CellKind, Activation, const SeqDims&, const DirectionForward<float>*, int,
                                        cudaStream_t);
template void persistent_forward<double>(CellKind, Activation, const SeqDims&, const DirectionForward<double>*, int,
                                         cudaStream_t);
template void persistent_backward<float>(CellKind, Activation, const SeqDims&, const DirectionBackward<float>*, int,
                                         cudaStream_t);
template void persistent_backward<double>(CellKind, Activation, const SeqDims&, const DirectionBackward<double>*,
                                          int, cudaStream_t);

}  // namespace fusedrnn::cuda
