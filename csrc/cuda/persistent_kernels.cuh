// The persistent path's device side: the forward and backward kernels and their device helpers,
// with the block geometry and shared-memory layout that the host side (persistent.cu, the only
// file that includes this one) computes and the kernels read. persistent.cuh says what the path
// does and its contract.
//
// Grid: blocks [d*n, (d+1)*n) run direction d; block k of a direction owns hidden units
// [k*U, k*U + U) (the last block's tail past H does nothing). At most one block per SM.
//
// Inside a block, a warp's 32 lanes are BL row lanes x KL reduction lanes (lane = bl*KL + kl).
// A warp task is one unit (forward: its G gate rows of W_hh) or UR units (backward: their W_hh
// columns) for a chunk of BL*RB rows. Lane (bl, kl) accumulates the rows row_of(chunk, bl, i),
// i < RB, over the reduction indices k = kl, kl + KL, ..., reading weights (one address per kl: a
// broadcast over bl) and staged values (32 distinct banks, see staged_stride) from shared memory.
// A butterfly over the KL lanes leaves the full sums in every lane; then the first lanes of each
// row-lane group finish one (row, unit) each: cell math (fusedrnn/cells.h) and writes.
// The (row, unit) -> thread assignment is the same at every step, so the per-unit values carried
// from step to step in shared memory (h, c; dc, GRU's dh_direct) are only ever touched by one thread.
//
// Between blocks, step s (exactly one grid.sync between consecutive steps, none after the last):
//   forward   reads  y[b, time(s-1)] (every unit)        writes y[b, time(s)] of its own units,
//                                                        or zeros at t = s when s >= len_b
//   backward  reads  dpre_h[b, time(s+1)] (every unit)   writes dpre_h[b, time(s)] likewise
// time(s) differs from time(s-1) and time(s+1), and padding times t >= len_b are never read, so no
// block overwrites in step s what another block reads in step s; what step s reads was written
// before the grid.sync that ends step s -/+ 1. Those reads use __ldcg (L2): L1 is not coherent
// between SMs. Everything else read in the kernel is never written by it (__ldg is safe).
#pragma once

#include <cooperative_groups.h>

#include <cstdint>

#include "cuda/direction.cuh"
#include "fusedrnn/cells.h"

namespace fusedrnn::cuda {

namespace {

namespace cg = cooperative_groups;

constexpr int kRowsPerLane = 4;        // RB: rows a lane accumulates (its register tile)
constexpr int kMaxRowLanes = 4;        // BL <= 4, so KL = 32 / BL >= 8 lanes can finish a task
constexpr int kBackwardTaskUnits = 2;  // UR: units per backward task, each staged value used twice
constexpr int kMinWarps = 4;           // one per SM sub-partition (the staging uses them all)
constexpr int kMaxWarps = 16;
constexpr int kMaxThreads = 32 * kMaxWarps;
static_assert(kRowsPerLane * kBackwardTaskUnits <= 32 / kMaxRowLanes, "one finishing lane per (row, unit)");

// (B, U) arrays a block carries from step to step: forward h and the cell state (cells with
// one); backward the gradient reaching c' (cells with a cell state) and the part of dh_prev that
// bypasses W_hh (cells whose input side differs).
template <class Cell>
__host__ __device__ constexpr int forward_carries() { return 1 + int(Cell::has_cell_state); }
template <class Cell>
__host__ __device__ constexpr int backward_carries() {
  return int(Cell::has_cell_state) + int(Cell::input_grads_differ);
}

__host__ __device__ constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// How a launch splits the work; computed once on the host, read by every thread.
struct Geometry {
  int batch, steps, hidden;  // B, T, H
  int units;                 // U: hidden units per block
  int blocks_per_dir;        // n = ceil(H / U)
  int row_lanes, k_lanes;    // BL x KL = 32 lanes of a warp
  int chunks;                // row chunks of BL*RB rows: ceil(B / (BL*RB))
  int warps;                 // per block
};

__host__ __device__ inline int rows_per_chunk(const Geometry& g) { return g.row_lanes * kRowsPerLane; }
__host__ __device__ inline int padded_batch(const Geometry& g) { return g.chunks * rows_per_chunk(g); }
__host__ __device__ inline int backward_task_count_units(const Geometry& g) {
  return static_cast<int>(ceil_div(g.units, kBackwardTaskUnits));
}

// Row stride (elements) of a staged (rows, width) matrix: a multiple of 32 plus KL. The lanes of a
// warp read rows r0 + bl and columns k0 + kl at once, so their banks (bl*KL + kl + const) mod 32
// are all different (for 4-byte T).
__host__ __device__ inline int staged_stride(int width, int k_lanes) {
  return static_cast<int>(ceil_div(width, 32) * 32 + k_lanes);
}

// A block's shared memory: arrays of T at these offsets (in elements of T), then int lengths[B].
// The host sizes the launch with `bytes`, the kernel finds its arrays with the offsets.
struct BlockLayout {
  int64_t weights;  // the resident W_hh slice
  int64_t staged;   // (padded B, stride): what all blocks exchange, staged for this step
  int64_t carry;    // carries x (B, U): per-unit values kept across steps
  int64_t lengths;  // where int lengths[B] begin, in elements of T
  int64_t bytes;
};

__host__ __device__ inline BlockLayout make_layout(int64_t weights, int64_t staged, int64_t carry, int batch,
                                                   int64_t elem_size) {
  BlockLayout l;
  l.weights = 0;
  l.staged = weights;
  l.carry = l.staged + staged;
  l.lengths = l.carry + carry;
  l.bytes = l.lengths * elem_size + batch * static_cast<int64_t>(sizeof(int));
  return l;
}

// Forward: W_hh rows g*H + j of the block's units as (U*G, H), row u*G + g; the masked state (B, H).
template <class Cell>
__host__ __device__ inline BlockLayout forward_layout(const Geometry& g, int64_t elem_size) {
  return make_layout(int64_t(g.units) * Cell::gates * g.hidden,
                     int64_t(padded_batch(g)) * staged_stride(g.hidden, g.k_lanes),
                     int64_t(forward_carries<Cell>()) * g.batch * g.units, g.batch, elem_size);
}

// Backward: W_hh columns of the block's units as (U rounded up to UR, G*H), row u = column j;
// the recurrent-side gate gradients of the previous step, (B, G*H).
template <class Cell>
__host__ __device__ inline BlockLayout backward_layout(const Geometry& g, int64_t elem_size) {
  const int gh = Cell::gates * g.hidden;
  return make_layout(int64_t(backward_task_count_units(g)) * kBackwardTaskUnits * gh,
                     int64_t(padded_batch(g)) * staged_stride(gh, g.k_lanes),
                     int64_t(backward_carries<Cell>()) * g.batch * g.units, g.batch, elem_size);
}
template <typename T>
struct ForwardParams {
  Geometry geo;
  Activation act;
  DirectionForward<T> dirs[2];
};

template <typename T>
struct BackwardParams {
  Geometry geo;
  Activation act;
  DirectionBackward<T> dirs[2];
};

// ---- index helpers -------------------------------------------------------------------------

// Time index of step s of a row of length len (direction.cuh).
__device__ __forceinline__ int time_of(int s, int len, bool reverse) { return reverse ? len - 1 - s : s; }

// Offset of element (b, t, col) of a (B, T, width) array.
__device__ __forceinline__ int64_t at(int b, int t, int64_t col, int steps, int64_t width) {
  return (int64_t(b) * steps + t) * width + col;
}

// The row whose accumulators i a lane of row lane bl holds, in a task over row chunk `chunk`.
__device__ __forceinline__ int row_of(int chunk, int bl, int i, const Geometry& g) {
  return chunk * rows_per_chunk(g) + bl + i * g.row_lanes;
}

// ---- block-wide pieces ---------------------------------------------------------------------

// Stages into staged (padded B, stride) the `width` values of every row b at source(b) (global
// memory written by other blocks before the last grid.sync: __ldcg), times scale[b, :] (B, width)
// when scale is not null. Rows with a null source (idle this step) get zeros. Rows are cut in
// segments of 128 values so that every warp has loads to issue, even for B = 1.
template <typename T, class Source>
__device__ void stage_rows(T* staged, int stride, int batch, int width, const T* scale, Source source) {
  constexpr int kPerLane = 4, kSegment = 32 * kPerLane;
  const int segments = static_cast<int>(ceil_div(width, kSegment));
  const int lane = threadIdx.x % 32;
  for (int e = threadIdx.x / 32; e < batch * segments; e += blockDim.x / 32) {
    const int b = e / segments, k0 = (e % segments) * kSegment + lane;
    const T* src = source(b);
    T v[kPerLane], m[kPerLane];
#pragma unroll
    for (int q = 0; q < kPerLane; ++q) {  // all loads first, so that their latencies overlap
      const int k = k0 + 32 * q;
      v[q] = src && k < width ? __ldcg(src + k) : T(0);
      m[q] = src && scale && k < width ? __ldg(scale + int64_t(b) * width + k) : T(1);
    }
#pragma unroll
    for (int q = 0; q < kPerLane; ++q) {
      const int k = k0 + 32 * q;
      if (k < width) staged[b * stride + k] = scale ? v[q] * m[q] : v[q];
    }
  }
}

// acc[r*RB + i] = sum over every k < width of w[r*width + k] * x[i*xstep + k]: R weight rows times
// RB staged rows, the register tile of one lane, whose KL lanes each take k = kl, kl + KL, ...
template <int R, typename T>
__device__ __forceinline__ void tile_products(const T* w, const T* x, int xstep, int width, int kl, int k_lanes,
                                              T (&acc)[R * kRowsPerLane]) {
#pragma unroll
  for (int n = 0; n < R * kRowsPerLane; ++n) acc[n] = T(0);
#pragma unroll 2
  for (int k = kl; k < width; k += k_lanes) {
    T wk[R];
#pragma unroll
    for (int r = 0; r < R; ++r) wk[r] = w[r * width + k];
#pragma unroll
    for (int i = 0; i < kRowsPerLane; ++i) {
      const T xk = x[i * xstep + k];
#pragma unroll
      for (int r = 0; r < R; ++r) acc[r * kRowsPerLane + i] = fma(wk[r], xk, acc[r * kRowsPerLane + i]);
    }
  }
  // Butterfly over the KL lanes of a row lane (the low bits of the lane index): every lane ends
  // with the full sums. Warp-uniform: every lane of the warp runs the same tasks.
  for (int offset = k_lanes / 2; offset > 0; offset /= 2) {
#pragma unroll
    for (int n = 0; n < R * kRowsPerLane; ++n) acc[n] += __shfl_xor_sync(0xffffffffu, acc[n], offset);
  }
}

// acc[n] for a run-time n without dynamic indexing (which would put acc in local memory).
template <int N, typename T>
__device__ __forceinline__ T pick(const T (&acc)[N], int n) {
  T v = acc[0];
#pragma unroll
  for (int m = 1; m < N; ++m) v = n == m ? acc[m] : v;
  return v;
}

// ---- one (row, step, unit), for any cell: the saved-array layout of direction.cuh around cells.h ----

// Forward. xb: G input-side pre-activations with b_ih; hp: G recurrent products without bias;
// h, c: the unit's state, replaced by the new one. bt = b*T + t; j the unit.
template <class Cell, typename T>
__device__ __forceinline__ void forward_unit(const DirectionForward<T>& d, Activation act, int H, int64_t bt, int j,
                                             const T (&xb)[Cell::gates], const T (&hp)[Cell::gates], T& h, T& c) {
  T bh[Cell::gates];
#pragma unroll
  for (int g = 0; g < Cell::gates; ++g) bh[g] = __ldg(d.b_hh + g * H + j);
  SavedUnit<Cell, T> saved;
  const T h_new = Cell::forward_unit(xb, hp, bh, h, c, act, saved);
  saved.store(d.gates + bt * Cell::gates * H, d.aux + bt * Cell::aux * H, H, j);
  d.h_prev[bt * H + j] = h;
  d.y[bt * H + j] = h_new;
  h = h_new;
}

// Zeros of a padding step t >= len_b of unit j in every forward output.
template <class Cell, typename T>
__device__ __forceinline__ void forward_padding(const DirectionForward<T>& d, int H, int64_t bt, int j) {
  SavedUnit<Cell, T> zeros{};
  zeros.store(d.gates + bt * Cell::gates * H, d.aux + bt * Cell::aux * H, H, j);
  d.h_prev[bt * H + j] = T(0);
  d.y[bt * H + j] = T(0);
}

struct ReadOnlyLoad {
  template <typename T>
  __device__ __forceinline__ T operator()(const T* p) const { return __ldg(p); }
};

// What the backward of one (row, step, unit) reads besides the recurrent product, loaded before
// the product so that the loads' latency hides behind it.
template <class Cell, typename T>
struct BackwardInputs {
  SavedUnit<Cell, T> saved;
  T h_prev;  // read only where the cell's backward needs it
  T dy;

  __device__ __forceinline__ void load(const DirectionBackward<T>& d, int H, int64_t bt, int j) {
    saved.gather(d.gates + bt * Cell::gates * H, d.aux + bt * Cell::aux * H, H, j, ReadOnlyLoad{});
    h_prev = Cell::backward_reads_h_prev ? __ldg(d.h_prev + bt * H + j) : T(0);
    dy = __ldg(d.dy + bt * H + j);
  }
};

// Writes one (row, step, unit)'s gradients, dpre_h once when it is dpre_x.
template <int G, typename T>
__device__ __forceinline__ void store_gate_grads(const DirectionBackward<T>& d, int H, int64_t bt, int j,
                                                 const T (&dx)[G], const T (&dr)[G]) {
#pragma unroll
  for (int g = 0; g < G; ++g) {
    d.dpre_x[bt * G * H + g * H + j] = dx[g];
    if (d.dpre_h != d.dpre_x) d.dpre_h[bt * G * H + g * H + j] = dr[g];
  }
}

// ---- kernels -------------------------------------------------------------------------------

template <class Cell, typename T>
__global__ void __launch_bounds__(kMaxThreads, 1) forward_kernel(const __grid_constant__ ForwardParams<T> p) {
  constexpr int G = Cell::gates;
  constexpr bool kHasC = Cell::has_cell_state;
  const Geometry& geo = p.geo;
  const int B = geo.batch, H = geo.hidden, U = geo.units;
  const DirectionForward<T>& d = p.dirs[blockIdx.x / geo.blocks_per_dir];
  const int unit0 = (blockIdx.x % geo.blocks_per_dir) * U;
  const int stride = staged_stride(H, geo.k_lanes);

  const BlockLayout layout = forward_layout<Cell>(geo, sizeof(T));
  extern __shared__ __align__(16) unsigned char smem[];
  T* const base = reinterpret_cast<T*>(smem);
  T* const w = base + layout.weights;    // (U*G, H): row u*G + g is W_hh row g*H + unit0 + u
  T* const hs = base + layout.staged;    // (padded B, stride): h * mask of this step, all units
  T* const own_h = base + layout.carry;  // (B, U): unmasked state of the block's units
  T* const own_c = own_h + B * U;        // (B, U): the cell state, for cells with one
  int* const lengths = reinterpret_cast<int*>(base + layout.lengths);  // (B)

  // Preamble. Rows >= B of hs stay zero (they are read by the tiles, never staged).
  for (int e = threadIdx.x; e < U * G * H; e += blockDim.x) {
    const int k = e % H, row = e / H, j = unit0 + row / G, g = row % G;
    w[e] = j < H ? __ldg(d.w_hh + (int64_t(g) * H + j) * H + k) : T(0);
  }
  for (int e = threadIdx.x; e < padded_batch(geo) * stride; e += blockDim.x) hs[e] = T(0);
  for (int e = threadIdx.x; e < B * U; e += blockDim.x) {
    const int b = e / U, j = unit0 + e % U;
    own_h[e] = j < H && d.h0 ? __ldg(d.h0 + int64_t(b) * H + j) : T(0);
    if (kHasC) own_c[e] = j < H && d.c0 ? __ldg(d.c0 + int64_t(b) * H + j) : T(0);
  }
  for (int b = threadIdx.x; b < B; b += blockDim.x) lengths[b] = static_cast<int>(d.lengths[b]);
  __syncthreads();

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int kl = lane % geo.k_lanes, bl = lane / geo.k_lanes;
  const int tasks = U * geo.chunks;
  cg::grid_group grid = cg::this_grid();
  for (int s = 0; s < geo.steps; ++s) {
    // Step s starts from h0, or from the y of the row's previous step (written before the last
    // grid.sync). Rows past their length are idle: their products are computed and dropped.
    stage_rows(hs, stride, B, H, d.recurrent_mask, [&](int b) -> const T* {
      const int len = lengths[b];
      if (s >= len) return nullptr;
      if (s == 0) return d.h0 ? d.h0 + int64_t(b) * H : nullptr;
      return d.y + at(b, time_of(s - 1, len, d.reverse), 0, geo.steps, H);
    });
    __syncthreads();

    for (int task = warp; task < tasks; task += geo.warps) {
      const int u = task % U, chunk = task / U, j = unit0 + u;
      // This lane finishes (row b, unit j) when kl < RB.
      const int b = row_of(chunk, bl, kl, geo);
      const bool finisher = kl < kRowsPerLane && b < B && j < H;
      const int len = finisher ? lengths[b] : 0;
      const bool active = s < len;
      const int64_t bt = at(b, active ? time_of(s, len, d.reverse) : s, 0, geo.steps, 1);
      T xb[G];  // input side with b_ih: not written by this kernel, so prefetched before the tile
#pragma unroll
      for (int g = 0; g < G; ++g)
        xb[g] = active ? __ldg(d.xproj + bt * G * H + g * H + j) + __ldg(d.b_ih + g * H + j) : T(0);

      T acc[G * kRowsPerLane];
      tile_products<G>(w + u * G * H, hs + row_of(chunk, bl, 0, geo) * stride, geo.row_lanes * stride, H, kl,
                       geo.k_lanes, acc);

      if (finisher) {
        T& h = own_h[b * U + u];
        T c_dummy = T(0);
        T& c = kHasC ? own_c[b * U + u] : c_dummy;
        if (active) {
          T hp[G];
#pragma unroll
          for (int g = 0; g < G; ++g) hp[g] = pick(acc, g * kRowsPerLane + kl);
          forward_unit<Cell>(d, p.act, H, bt, j, xb, hp, h, c);
        } else {
          forward_padding<Cell>(d, H, bt, j);
        }
        if (s == geo.steps - 1) {  // every row's state is final by now (len <= T)
          d.h_n[int64_t(b) * H + j] = h;
          if (kHasC) d.c_n[int64_t(b) * H + j] = c;
        }
      }
    }
    // Orders this step's y before the next step's staging in every block, and this block's
    // reads of hs before its next staging overwrites them.
    if (s + 1 < geo.steps) grid.sync();
  }
}

template <class Cell, typename T>
__global__ void __launch_bounds__(kMaxThreads, 1) backward_kernel(const __grid_constant__ BackwardParams<T> p) {
  constexpr int G = Cell::gates;
  constexpr int UR = kBackwardTaskUnits;
  const Geometry& geo = p.geo;
  const int B = geo.batch, H = geo.hidden, U = geo.units, GH = G * H;
  const DirectionBackward<T>& d = p.dirs[blockIdx.x / geo.blocks_per_dir];
  const int unit0 = (blockIdx.x % geo.blocks_per_dir) * U;
  const int stride = staged_stride(GH, geo.k_lanes);
  const int unit_groups = backward_task_count_units(geo);

  const BlockLayout layout = backward_layout<Cell>(geo, sizeof(T));
  extern __shared__ __align__(16) unsigned char smem[];
  T* const base = reinterpret_cast<T*>(smem);
  T* const w = base + layout.weights;     // (unit_groups*UR, G*H): row u is W_hh column unit0 + u
  T* const ds = base + layout.staged;     // (padded B, stride): dpre_h of the row's previous step s+1
  T* const carry_dc = base + layout.carry;  // (B, U): dc reaching c', for cells with a cell state
  T* const carry_direct = carry_dc + (Cell::has_cell_state ? B * U : 0);  // (B, U): dh_direct, if the sides differ
  int* const lengths = reinterpret_cast<int*>(base + layout.lengths);  // (B)

  // Preamble. Rows >= B of ds stay zero.
  for (int e = threadIdx.x; e < unit_groups * UR * GH; e += blockDim.x) {
    const int k = e % GH, j = unit0 + e / GH;
    w[e] = e / GH < U && j < H ? __ldg(d.w_hh + int64_t(k) * H + j) : T(0);
  }
  for (int e = threadIdx.x; e < padded_batch(geo) * stride; e += blockDim.x) ds[e] = T(0);
  for (int e = threadIdx.x; e < B * U; e += blockDim.x) {
    const int b = e / U, j = unit0 + e % U;
    if (Cell::has_cell_state) carry_dc[e] = j < H && d.dc_n ? __ldg(d.dc_n + int64_t(b) * H + j) : T(0);
    if (Cell::input_grads_differ) carry_direct[e] = T(0);
  }
  for (int b = threadIdx.x; b < B; b += blockDim.x) lengths[b] = static_cast<int>(d.lengths[b]);
  __syncthreads();

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int kl = lane % geo.k_lanes, bl = lane / geo.k_lanes;
  const int tasks = unit_groups * geo.chunks;
  cg::grid_group grid = cg::this_grid();
  // Steps in reverse; s = -1 only turns the product of step 0's gradients into dh0.
  for (int s = geo.steps - 1; s >= -1; --s) {
    // dh reaching h' of step s comes through W_hh from step s+1 of the same row, if the row has
    // one; at its last step s = len-1 it comes from dh_n instead.
    stage_rows(ds, stride, B, GH, static_cast<const T*>(nullptr), [&](int b) -> const T* {
      const int len = lengths[b];
      return s + 1 < len ? d.dpre_h + at(b, time_of(s + 1, len, d.reverse), 0, geo.steps, GH) : nullptr;
    });
    __syncthreads();

    for (int task = warp; task < tasks; task += geo.warps) {
      const int group = task % unit_groups, chunk = task / unit_groups;
      // This lane finishes (row b, unit u) when kl < UR*RB.
      const int u = group * UR + kl / kRowsPerLane, j = unit0 + u;
      const int b = row_of(chunk, bl, kl % kRowsPerLane, geo);
      const bool finisher = kl < UR * kRowsPerLane && u < U && j < H && b < B;
      const int len = finisher ? lengths[b] : 0;
      const bool active = s >= 0 && s < len;
      const int64_t bt = at(b, active ? time_of(s, len, d.reverse) : s, 0, geo.steps, 1);
      BackwardInputs<Cell, T> in{};
      if (active) in.load(d, H, bt, j);

      T acc[UR * kRowsPerLane];
      tile_products<UR>(w + group * UR * GH, ds + row_of(chunk, bl, 0, geo) * stride, geo.row_lanes * stride, GH, kl,
                        geo.k_lanes, acc);

      if (finisher) {
        T dh_rec = pick(acc, kl);  // (dpre_h of step s+1) @ W_hh, element (b, j)
        if (d.recurrent_mask) dh_rec *= __ldg(d.recurrent_mask + int64_t(b) * H + j);
        T dc_dummy = T(0), direct_dummy = T(0);
        T& dc = Cell::has_cell_state ? carry_dc[b * U + u] : dc_dummy;
        T& dh_direct = Cell::input_grads_differ ? carry_direct[b * U + u] : direct_dummy;
        if (s < 0) {
          d.dh0[int64_t(b) * H + j] = dh_rec + dh_direct;
          if (Cell::has_cell_state) d.dc0[int64_t(b) * H + j] = dc;
        } else if (active) {
          const T dh = s == len - 1 ? in.dy + (d.dh_n ? __ldg(d.dh_n + int64_t(b) * H + j) : T(0))
                                    : in.dy + dh_rec + dh_direct;
          T dx[G], dr[G];
          Cell::backward_unit(in.saved, in.h_prev, dh, dc, p.act, dx, dr, dh_direct);
          store_gate_grads(d, H, bt, j, dx, dr);
        } else {
          const T zeros[G] = {};
          store_gate_grads(d, H, bt, j, zeros, zeros);
        }
      }
    }
    // Orders this step's dpre_h before the next step's staging in every block, and this block's
    // reads of ds before its next staging overwrites them. No step follows s = -1.
    if (s >= 0) grid.sync();
  }
}

}  // namespace

}  // namespace fusedrnn::cuda
