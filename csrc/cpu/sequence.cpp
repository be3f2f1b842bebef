// Forward: one GEMM projects all of a thread's rows and steps through W_ih; then per step one
// product h @ W_hh^T against W_hh packed once (packed_gemm.h) and one fused pass per row (rows.h).
// Backward walks time in reverse: per step one fused pass and one product dgates @ W_hh; dx per
// thread; then W and b gradients as large GEMMs and sums over all B*T rows, split by gate rows.
// Every BLAS call is single-threaded, on threads of our own (blas.h says why).
#include "cpu/sequence.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <type_traits>
#include <vector>

#include "cpu/blas.h"
#include "cpu/packed_gemm.h"
#include "cpu/parallel.h"
#include "cpu/rows.h"
#include "cpu/split.h"
#include "cpu/workspace.h"

namespace fusedrnn::cpu {

namespace {

int64_t time_index(int64_t step, int64_t length, bool reverse) {
  return reverse ? length - 1 - step : step;
}

int64_t longest(const int64_t* lengths, RowRange rows) {
  return *std::max_element(lengths + rows.begin, lengths + rows.end);
}

template <typename T>
void copy_or_zero(const T* src, T* dst, int64_t n) {
  if (src)
    std::copy(src, src + n, dst);
  else
    std::fill(dst, dst + n, T(0));
}

// Zeroes the steps t >= len_b of row b in a (B, T, width) array whose (b, t) rows are `stride` apart.
template <typename T>
void zero_padding(T* array, int64_t width, const SeqDims& d, const int64_t* lengths, RowRange rows,
                  int64_t stride) {
  if (width == 0) return;
  for (int64_t b = rows.begin; b < rows.end; ++b) {
    if (stride == width) {  // one run of memory
      std::fill(array + (b * d.steps + lengths[b]) * width, array + (b + 1) * d.steps * width, T(0));
      continue;
    }
    for (int64_t t = lengths[b]; t < d.steps; ++t)
      std::fill(array + (b * d.steps + t) * stride, array + (b * d.steps + t) * stride + width, T(0));
  }
}

template <typename T>
void zero_padding(T* array, int64_t width, const SeqDims& d, const int64_t* lengths, RowRange rows) {
  zero_padding(array, width, d, lengths, rows, width);
}

// sums[j] = sum over r of matrix[r, j], for the columns j in `cols` of a (rows, width) matrix.
template <typename T>
void column_sums(const T* matrix, int64_t rows, int64_t width, RowRange cols, T* sums) {
  std::fill(sums + cols.begin, sums + cols.end, T(0));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = cols.begin; j < cols.end; ++j) sums[j] += matrix[r * width + j];
}

}  // namespace

// Where a forward's steps leave what the backward needs. Saving (training), step (b, t) writes its
// row of the caller's gates, aux and h_prev. Not saving (inference: the caller passes none), the
// input projection goes to a workspace and every step of row b writes its aux and h_prev into one
// slot of row b, overwritten by the next step: nothing of size T but the projection.
template <class Cell, typename T>
struct ForwardStore {
  const bool saving;
  Workspace<T> gates_workspace, aux_slots, h_prev_slots;
  T *gates, *aux, *h_prev;
  const int64_t AH, H, R;

  explicit ForwardStore(const ForwardArgs<T>& a)
      : saving(a.h_prev != nullptr),
        gates_workspace(workspace<T>(saving ? 0 : a.dims.batch * a.dims.steps * Cell::gates * a.dims.hidden)),
        aux_slots(workspace<T>(saving ? 0 : a.dims.batch * Cell::aux * a.dims.hidden)),
        h_prev_slots(workspace<T>(saving ? 0 : a.dims.batch * a.dims.state())),
        gates(saving ? a.gates : gates_workspace.get()),
        aux(saving ? a.aux : aux_slots.get()),
        h_prev(saving ? a.h_prev : h_prev_slots.get()),
        AH(Cell::aux * a.dims.hidden), H(a.dims.hidden), R(a.dims.state()) {}

  T* aux_at(int64_t b, int64_t bt) const { return aux + (saving ? bt : b) * AH; }
  T* h_prev_at(int64_t b, int64_t bt) const { return h_prev + (saving ? bt : b) * R; }

  // Zeroes what the forward wrote for the padding steps of `rows`: y, and what it saved.
  void zero_padding_of(const ForwardArgs<T>& a, RowRange rows, int64_t y_stride) const {
    zero_padding(a.y, R, a.dims, a.lengths, rows, y_stride);
    if (!saving) return;
    zero_padding(h_prev, R, a.dims, a.lengths, rows);
    zero_padding(gates, Cell::gates * H, a.dims, a.lengths, rows);
    zero_padding(aux, AH, a.dims, a.lengths, rows);
  }
};

// The GEMMs of the forward's input projection, as blocks of the B*T rows of x: each batch row's
// steps together where there is a row for every thread (the split by rows projects its own rows),
// else B*T shared out evenly over the threads it is worth (a multiply-add per row, gate unit and
// input; a thread for 2^22 of them, some 0.1 ms: below that a thread start costs about what it
// saves, measured at B=1). Both splits take these blocks, so they project bitwise alike (a GEMM can
// round differently by its number of rows, and it did at a few steps), and the split by rows
// projects a long single sequence on every thread too.
inline std::vector<RowRange> projection_blocks(const SeqDims& d, int64_t gate_units, int num_threads) {
  if (d.batch >= num_threads) {
    std::vector<RowRange> blocks = split_rows(d.batch, num_threads);
    for (RowRange& r : blocks) r = {r.begin * d.steps, r.end * d.steps};
    return blocks;
  }
  const int64_t rows = d.batch * d.steps;
  return split_rows(rows, threads_for(rows * gate_units * d.input, int64_t(1) << 22, num_threads));
}

// gates (rows, G*H) = x (rows, I) @ W_ih^T for one block of projection_blocks.
template <class Cell, typename T>
void project_block(const ForwardArgs<T>& a, T* gates, RowRange r) {
  const int64_t I = a.dims.input, GH = Cell::gates * a.dims.hidden;
  gemm(false, true, r.end - r.begin, GH, I, T(1), a.x + r.begin * I, I, a.w_ih, I, T(0), gates + r.begin * GH, GH);
}

// The forward split by hidden units (Split::units): the input projection is shared out in
// projection_blocks; then each step every member multiplies the whole h (B, H) by its columns of
// W_hh^T and runs the cells of its units for every row. h is double-buffered: step s reads one buffer and writes
// the other, so one barrier per step keeps the members in step.
template <class Cell, typename T>
void forward_by_units(const ForwardArgs<T>& a, int64_t y_stride, const ForwardStore<Cell, T>& store) {
  const SeqDims& d = a.dims;
  const int64_t B = d.batch, H = d.hidden, GH = Cell::gates * H;
  constexpr bool has_cell_state = Cell::has_cell_state;
  auto gh = workspace<T>(B * GH);          // (B, G*H) recurrent projection of the current step
  auto h_buffers = workspace<T>(2 * B * H);  // (2, B, H) the state before and after the step
  auto c = workspace<T>(has_cell_state ? B * H : 0);  // (B, H) running cell state
  const auto units = split_aligned(H, a.num_threads, kUnitAlign);
  const int parts = static_cast<int>(units.size());
  std::vector<PackedMatrix<T>> w_hh_t;  // per part and gate: W_hh^T (H, units) of those units
  w_hh_t.reserve(parts * Cell::gates);
  for (const RowRange& u : units)
    for (int g = 0; g < Cell::gates; ++g) w_hh_t.emplace_back(H, u.end - u.begin);  // packed by their member
  const auto projection_rows = projection_blocks(d, GH, a.num_threads);
  const auto batch_rows = split_rows(B, parts);
  static const RowKernels<Cell, T> rows_kernels = RowKernels<Cell, T>::best();
  const int64_t steps = longest(a.lengths, {0, B});
  SerialBlas serial;

  run_team(parts, [&](int member, int team_size, SpinBarrier& barrier) {
    for (int p = member; p < parts; p += team_size)
      for (int g = 0; g < Cell::gates; ++g) w_hh_t[p * Cell::gates + g].pack(a.w_hh + (g * H + units[p].begin) * H, 1, H);
    for (int p = member; p < static_cast<int>(projection_rows.size()); p += team_size)  // B*T may be < parts
      project_block<Cell>(a, store.gates, projection_rows[p]);
    for (int p = member; p < parts; p += team_size)
      for (int64_t b = 0; b < B; ++b) {
        const int64_t first = b * H + units[p].begin, n = units[p].end - units[p].begin;
        copy_or_zero(a.h0 ? a.h0 + first : nullptr, h_buffers.get() + first, n);
        if (has_cell_state) copy_or_zero(a.c0 ? a.c0 + first : nullptr, c.get() + first, n);
      }
    barrier.wait();
    for (int64_t s = 0; s < steps; ++s) {
      const T* h_in = h_buffers.get() + (s % 2) * B * H;
      T* h_out = h_buffers.get() + ((s + 1) % 2) * B * H;
      for (int p = member; p < parts; p += team_size) {
        const int64_t u = units[p].begin, n = units[p].end - u;
        for (int g = 0; g < Cell::gates; ++g) w_hh_t[p * Cell::gates + g].multiply(h_in, B, H, gh.get() + g * H + u, GH);
        for (int64_t b = 0; b < B; ++b) {
          std::copy(h_in + b * H + u, h_in + b * H + u + n, h_out + b * H + u);  // the state a finished row keeps
          const int64_t len = a.lengths[b];
          if (s >= len) continue;
          const int64_t bt = b * d.steps + time_index(s, len, a.reverse);
          rows_kernels.forward(n, H, a.act, a.b_ih + u, a.b_hh + u, store.gates + bt * GH + u, gh.get() + b * GH + u,
                              h_out + b * H + u, has_cell_state ? c.get() + b * H + u : nullptr,
                              store.aux_at(b, bt) + u, store.h_prev_at(b, bt) + u, a.y + bt * y_stride + u);
        }
      }
      barrier.wait();
    }
    const T* h_last = h_buffers.get() + (steps % 2) * B * H;
    for (int p = member; p < parts; p += team_size) {
      for (int64_t b = 0; b < B; ++b) {
        const int64_t first = b * H + units[p].begin, n = units[p].end - units[p].begin;
        std::copy(h_last + first, h_last + first + n, a.h_n + first);
        if (has_cell_state) std::copy(c.get() + first, c.get() + first + n, a.c_n + first);
      }
      if (p < static_cast<int>(batch_rows.size())) store.zero_padding_of(a, batch_rows[p], y_stride);
    }
  });
}

// The forward split by batch rows (Split::rows): each thread projects its rows' inputs for every
// step in one GEMM, then walks every step for its rows.
template <class Cell, typename T>
void forward_by_rows(const ForwardArgs<T>& a, int64_t y_stride, const ForwardStore<Cell, T>& store) {
  const SeqDims& d = a.dims;
  const int64_t H = d.hidden, GH = Cell::gates * H, R = d.state();
  constexpr bool has_cell_state = Cell::has_cell_state;
  const bool projected = a.w_hr != nullptr;
  auto gh = workspace<T>(d.batch * GH);  // (B, G*H) recurrent projection of the current step
  auto h = workspace<T>(d.batch * R);    // (B, R) running hidden state
  auto h_masked = workspace<T>(a.recurrent_mask ? d.batch * H : 0);  // (B, H) h * mask, W_hh's input
  auto c = workspace<T>(has_cell_state ? d.batch * H : 0);  // (B, H) running cell state
  // With projections the cells write o * tanh(c') (B, H) to scratch (h_raw; their h and h_prev go
  // to h_cell and h_cell_prev, unused: the LSTM cell does not read h), and W_hr takes it to h.
  auto h_raw = workspace<T>(projected ? d.batch * H : 0);
  auto h_cell = workspace<T>(projected ? d.batch * H : 0);
  auto h_cell_prev = workspace<T>(projected ? d.batch * H : 0);
  auto h_projected = workspace<T>(projected ? d.batch * R : 0);  // (B, P) h_raw @ W_hr^T
  if (projected) std::fill(h_raw.get(), h_raw.get() + d.batch * H, T(0));  // rows not started multiply zeros
  const PackedMatrix<T> w_hh_t(a.w_hh, R, GH, 1, R);  // W_hh^T (R, G*H)
  std::optional<PackedMatrix<T>> w_hr_t;  // W_hr^T (H, P)
  if (projected) w_hr_t.emplace(a.w_hr, H, R, 1, H);
  static const RowKernels<Cell, T> rows_kernels = RowKernels<Cell, T>::best();
  const auto ranges = split_rows(d.batch, a.num_threads);
  SerialBlas serial;
  auto project = [&](RowRange r) { project_block<Cell>(a, store.gates, r); };
  const bool own_rows = d.batch >= a.num_threads;  // each thread projects its rows' steps, one block
  if (!own_rows) for_each_range(projection_blocks(d, GH, a.num_threads), project);

  for_each_range(ranges, [&](RowRange rows) {
    const int64_t n = rows.end - rows.begin;
    T* h_rows = h.get() + rows.begin * R;
    T* c_rows = has_cell_state ? c.get() + rows.begin * H : nullptr;
    T* gh_rows = gh.get() + rows.begin * GH;
    if (own_rows) project({rows.begin * d.steps, rows.end * d.steps});
    copy_or_zero(a.h0 ? a.h0 + rows.begin * R : nullptr, h_rows, n * R);
    if (has_cell_state) copy_or_zero(a.c0 ? a.c0 + rows.begin * H : nullptr, c_rows, n * H);

    const int64_t steps = longest(a.lengths, rows);
    for (int64_t s = 0; s < steps; ++s) {
      const T* h_in = h_rows;
      if (a.recurrent_mask) {
        T* masked = h_masked.get() + rows.begin * H;
        const T* mask = a.recurrent_mask + rows.begin * H;
        for (int64_t i = 0; i < n * H; ++i) masked[i] = h_rows[i] * mask[i];
        h_in = masked;
      }
      w_hh_t.multiply(h_in, n, R, gh_rows, GH);
      for (int64_t b = rows.begin; b < rows.end; ++b) {
        const int64_t len = a.lengths[b];
        if (s >= len) continue;
        const int64_t bt = b * d.steps + time_index(s, len, a.reverse);
        const int64_t r = b - rows.begin;
        if (projected) {
          std::copy(h_rows + r * R, h_rows + (r + 1) * R, store.h_prev_at(b, bt));
          rows_kernels.forward(H, H, a.act, a.b_ih, a.b_hh, store.gates + bt * GH, gh_rows + r * GH,
                              h_cell.get() + b * H, c_rows + r * H, store.aux_at(b, bt), h_cell_prev.get() + b * H,
                              h_raw.get() + b * H);
        } else {
          rows_kernels.forward(H, H, a.act, a.b_ih, a.b_hh, store.gates + bt * GH, gh_rows + r * GH,
                              h_rows + r * H, has_cell_state ? c_rows + r * H : nullptr, store.aux_at(b, bt),
                              store.h_prev_at(b, bt), a.y + bt * y_stride);
        }
      }
      if (!projected) continue;
      // h = h_raw W_hr^T for every row (finished rows' products are dropped), then the new state
      // and output of the rows still running.
      w_hr_t->multiply(h_raw.get() + rows.begin * H, n, H, h_projected.get() + rows.begin * R, R);
      for (int64_t b = rows.begin; b < rows.end; ++b) {
        const int64_t len = a.lengths[b];
        if (s >= len) continue;
        const T* h_new = h_projected.get() + b * R;
        std::copy(h_new, h_new + R, h_rows + (b - rows.begin) * R);
        std::copy(h_new, h_new + R, a.y + (b * d.steps + time_index(s, len, a.reverse)) * y_stride);
      }
    }
    store.zero_padding_of(a, rows, y_stride);
    std::copy(h_rows, h_rows + n * R, a.h_n + rows.begin * R);
    if (has_cell_state) std::copy(c_rows, c_rows + n * H, a.c_n + rows.begin * H);
  });
}

// ForwardArgs or BackwardArgs -> what the choice of split looks at.
template <class Cell, class Args>
SplitShape split_shape(const Args& a, bool backward, bool saving) {
  return {backward, saving, Cell::gates, a.dims.hidden, a.dims.batch, a.dims.steps, a.dims.input, a.num_threads,
          static_cast<int>(sizeof(*a.w_hh)), a.recurrent_mask != nullptr, a.w_hr != nullptr};
}

template <class Cell, typename T>
void sequence_forward(const ForwardArgs<T>& a, int64_t y_stride) {
  const ForwardStore<Cell, T> store(a);
  run_split(split_shape<Cell>(a, false, store.saving), [&](Split split) {
    if (split == Split::units)
      forward_by_units<Cell, T>(a, y_stride, store);
    else
      forward_by_rows<Cell, T>(a, y_stride, store);
  });
}

// What a backward keeps besides its arguments, and the work both of its splits share: the gate
// gradients of every step, the state gradients of the current one, and after the time loop the
// input gradient and the weight gradients.
template <class Cell, typename T>
struct Backward {
  static constexpr bool has_cell_state = Cell::has_cell_state;
  // GRU's n gate has different gradients on the input and recurrent sides; the other cells share one.
  static constexpr bool split_gate_grads = Cell::input_grads_differ;

  const BackwardArgs<T>& a;
  const SeqDims& d;
  const int64_t H, GH, AH, R;
  const bool projected;
  Workspace<T> dgi;        // (B, T, G*H) pre-activation grads, input side
  Workspace<T> dgh_all;    // (B, T, G*H) recurrent side, GRU only
  T* dgh;                  // dgh_all, or dgi where the sides agree
  Workspace<T> dgh_steps;  // (2, B, G*H) recurrent-side grads of the current step (two: see units)
  Workspace<T> dh_rec;     // (B, R) dh_prev through W_hh
  Workspace<T> dh_direct;  // (B, H) dh_prev around W_hh (GRU's z*dh)
  Workspace<T> dh;         // (B, H) whole gradient reaching h' (before any projection) at this step
  Workspace<T> dc;         // (B, H) gradient reaching c'
  // dW_ih sums over padding steps too, where the gate gradients are zero; x there may hold
  // anything (NaN from np.empty), and 0 * NaN = NaN, so padded batches use x with zeroed padding.
  const bool padded;
  Workspace<T> x_zero_padded;  // (B, T, I)
  Workspace<T> h_prev_masked;  // (B, T, H)
  // With projections: the gradient reaching the projected state h of every step (B, T, P), kept for
  // dW_hr, its rows of the current step (B, P), and the cells' outputs before W_hr (B, T, H).
  Workspace<T> dstate_all, dstate_step, h_raw_all;

  explicit Backward(const BackwardArgs<T>& args)
      : a(args), d(args.dims), H(d.hidden), GH(Cell::gates * H), AH(Cell::aux * H), R(d.state()),
        projected(args.w_hr != nullptr),
        dgi(workspace<T>(d.batch * d.steps * GH)),
        dgh_all(workspace<T>(split_gate_grads ? d.batch * d.steps * GH : 0)),
        dgh(split_gate_grads ? dgh_all.get() : dgi.get()),
        dgh_steps(workspace<T>(2 * d.batch * GH)),
        dh_rec(workspace<T>(d.batch * R)), dh_direct(workspace<T>(d.batch * H)), dh(workspace<T>(d.batch * H)),
        dc(workspace<T>(has_cell_state ? d.batch * H : 0)),
        padded(std::any_of(a.lengths, a.lengths + d.batch, [&](int64_t len) { return len < d.steps; })),
        x_zero_padded(workspace<T>(padded ? d.batch * d.steps * d.input : 0)),
        h_prev_masked(workspace<T>(a.recurrent_mask ? d.batch * d.steps * H : 0)),
        dstate_all(workspace<T>(projected ? d.batch * d.steps * R : 0)),
        dstate_step(workspace<T>(projected ? d.batch * R : 0)),
        h_raw_all(workspace<T>(projected ? d.batch * d.steps * H : 0)) {
    if (projected) std::fill(dstate_step.get(), dstate_step.get() + d.batch * R, T(0));  // rows not started stay 0
  }

  // With projections, before the cells of step s of `rows`: the gradient reaching each running
  // row's h (dy and dh_rec, or dh_n at its last valid step), kept for dW_hr, and through W_hr
  // (w_hr: W_hr (P, H) packed) the gradient dh reaching the cell's output, which step() then takes.
  void project_state_grads(const PackedMatrix<T>& w_hr, RowRange rows, int64_t s, int64_t dy_stride) {
    for (int64_t b = rows.begin; b < rows.end; ++b) {
      const int64_t len = a.lengths[b];
      if (s >= len) continue;
      const int64_t bt = b * d.steps + time_index(s, len, a.reverse);
      const T* dy_b = a.dy + bt * dy_stride;
      T* ds = dstate_all.get() + bt * R;
      for (int64_t j = 0; j < R; ++j)
        ds[j] = dy_b[j] + (s == len - 1 ? (a.dh_n ? a.dh_n[b * R + j] : T(0)) : dh_rec[b * R + j]);
      std::copy(ds, ds + R, dstate_step.get() + b * R);
    }
    w_hr.multiply(dstate_step.get() + rows.begin * R, rows.end - rows.begin, R, dh.get() + rows.begin * H, H);
  }

  // The cells of units [u, u + n) of row b at step s, whose gate gradients go to dgh_step (G*H):
  // dh from dy and the state gradients of the step after (or dh_n at the row's last valid step).
  void step(const RowKernels<Cell, T>& kernels, int64_t b, int64_t s, int64_t u, int64_t n, T* dgh_step,
            int64_t dy_stride) {
    const int64_t len = a.lengths[b];
    if (s >= len) {  // not started yet: contributes nothing to this step's product
      for (int g = 0; g < Cell::gates; ++g) std::fill(dgh_step + g * H + u, dgh_step + g * H + u + n, T(0));
      return;
    }
    const int64_t bt = b * d.steps + time_index(s, len, a.reverse), first = b * H + u;
    T* dh_b = dh.get() + first;
    const T* dy_b = a.dy + bt * dy_stride + u;
    if (projected) {
      // dh_b holds it already (project_state_grads)
    } else if (s == len - 1) {  // the row's last valid step: its gradient comes from dh_n, not W_hh
      for (int64_t j = 0; j < n; ++j) dh_b[j] = dy_b[j] + (a.dh_n ? a.dh_n[first + j] : T(0));
    } else {
      for (int64_t j = 0; j < n; ++j) dh_b[j] = dy_b[j] + dh_rec[first + j] + dh_direct[first + j];
    }
    kernels.backward(n, H, a.act, a.gates + bt * GH + u, a.aux + bt * AH + u, a.h_prev + bt * R + u, dh_b,
                     has_cell_state ? dc.get() + first : nullptr, dgi.get() + bt * GH + u, dgh_step + u,
                     dh_direct.get() + first);
    for (int g = 0; g < Cell::gates; ++g)  // for LSTM and RNN, dgh is dgi
      std::copy(dgh_step + g * H + u, dgh_step + g * H + u + n, dgh + bt * GH + g * H + u);
  }

  // Before the time loop, for units [u, u + n) of every row in `rows`.
  void start(RowRange rows, int64_t u, int64_t n) {
    for (int64_t b = rows.begin; b < rows.end; ++b) {
      const int64_t first = b * H + u;
      if (projected)  // (rows split only: u = 0, n = H)
        std::fill(dh_rec.get() + b * R, dh_rec.get() + (b + 1) * R, T(0));
      else
        std::fill(dh_rec.get() + first, dh_rec.get() + first + n, T(0));
      std::fill(dh_direct.get() + first, dh_direct.get() + first + n, T(0));
      if (has_cell_state) copy_or_zero(a.dc_n ? a.dc_n + first : nullptr, dc.get() + first, n);
    }
  }

  // After the time loop, for units [u, u + n) of every row in `rows`: dh0 and dc0.
  void initial_state_grads(RowRange rows, int64_t u, int64_t n) {
    for (int64_t b = rows.begin; b < rows.end; ++b) {
      const int64_t first = b * H + u;
      if (projected)
        std::copy(dh_rec.get() + b * R, dh_rec.get() + (b + 1) * R, a.dh0 + b * R);
      else if (split_gate_grads)
        for (int64_t j = first; j < first + n; ++j) a.dh0[j] = dh_rec[j] + dh_direct[j];
      else
        std::copy(dh_rec.get() + first, dh_rec.get() + first + n, a.dh0 + first);
      if (has_cell_state) std::copy(dc.get() + first, dc.get() + first + n, a.dc0 + first);
    }
  }

  // After the time loop, once every step of `rows` is done: their padding, dx and what the weight
  // gradients read.
  void finish_rows(RowRange rows) {
    const int64_t n = rows.end - rows.begin;
    zero_padding(dgi.get(), GH, d, a.lengths, rows);
    if (split_gate_grads) zero_padding(dgh, GH, d, a.lengths, rows);
    if (a.dx) {  // null when the input needs no gradient (a frozen embedding): a fifth of the GEMM work
      gemm(false, false, n * d.steps, d.input, GH, T(1), dgi.get() + rows.begin * d.steps * GH, GH, a.w_ih,
           d.input, T(0), a.dx + rows.begin * d.steps * d.input, d.input);
      zero_padding(a.dx, d.input, d, a.lengths, rows);  // exact zeros even if W_ih holds inf or NaN
    }
    if (padded) {
      const int64_t first = rows.begin * d.steps * d.input, last = rows.end * d.steps * d.input;
      std::copy(a.x + first, a.x + last, x_zero_padded.get() + first);
      zero_padding(x_zero_padded.get(), d.input, d, a.lengths, rows);
    }
    if (a.recurrent_mask)  // dW_hh sums dgates^T (h_prev * mask); padding rows of h_prev are zeros
      for (int64_t b = rows.begin; b < rows.end; ++b)
        for (int64_t t = 0; t < d.steps; ++t)
          for (int64_t j = 0; j < H; ++j)
            h_prev_masked[(b * d.steps + t) * H + j] = a.h_prev[(b * d.steps + t) * H + j] * a.recurrent_mask[b * H + j];
    if constexpr (Cell::projectable) {
      if (!projected) return;
      zero_padding(dstate_all.get(), R, d, a.lengths, rows);
      for (int64_t bt = rows.begin * d.steps; bt < rows.end * d.steps; ++bt)  // zeros at padding steps
        for (int64_t j = 0; j < H; ++j) {
          SavedUnit<Cell, T> saved;
          saved.gather(a.gates + bt * GH, a.aux + bt * AH, H, j, PlainLoad{});
          h_raw_all[bt * H + j] = Cell::output(saved);  // as the forward computed it
        }
    }
  }

  // Weight gradients: sums over every (b, t) at once, as large GEMMs, each thread taking a block of
  // gate rows of dW and db.
  void weight_grads() {
    const int64_t bt_rows = d.batch * d.steps;
    const T* x_for_dw = padded ? x_zero_padded.get() : a.x;
    const T* h_prev_for_dw = a.recurrent_mask ? h_prev_masked.get() : a.h_prev;
    for_each_range(split_rows(GH, a.num_threads), [&](RowRange g) {
      const int64_t n = g.end - g.begin;
      gemm(true, false, n, d.input, bt_rows, T(1), dgi.get() + g.begin, GH, x_for_dw, d.input, T(0),
           a.dw_ih + g.begin * d.input, d.input);
      gemm(true, false, n, R, bt_rows, T(1), dgh + g.begin, GH, h_prev_for_dw, R, T(0), a.dw_hh + g.begin * R, R);
      column_sums(dgi.get(), bt_rows, GH, g, a.db_ih);
      if (split_gate_grads)
        column_sums(dgh, bt_rows, GH, g, a.db_hh);
      else
        std::copy(a.db_ih + g.begin, a.db_ih + g.end, a.db_hh + g.begin);
    });
    if (projected)  // dW_hr (P, H): the state gradients against the cells' outputs
      for_each_range(split_rows(R, a.num_threads), [&](RowRange p) {
        gemm(true, false, p.end - p.begin, H, bt_rows, T(1), dstate_all.get() + p.begin, R, h_raw_all.get(), H, T(0),
             a.dw_hr + p.begin * H, H);
      });
  }
};

// Split by batch rows: each thread walks every step back for its own rows.
template <class Cell, typename T>
void backward_by_rows(Backward<Cell, T>& w, int64_t dy_stride) {
  const BackwardArgs<T>& a = w.a;
  const int64_t H = w.H, GH = w.GH, R = w.R;
  const PackedMatrix<T> w_hh(a.w_hh, GH, R, R, 1);  // W_hh (G*H, R)
  std::optional<PackedMatrix<T>> w_hr;              // W_hr (P, H)
  if (w.projected) w_hr.emplace(a.w_hr, R, H, H, 1);
  static const RowKernels<Cell, T> rows_kernels = RowKernels<Cell, T>::best();
  for_each_range(split_rows(a.dims.batch, a.num_threads), [&](RowRange rows) {
    const int64_t n = rows.end - rows.begin;
    w.start(rows, 0, H);
    for (int64_t s = longest(a.lengths, rows) - 1; s >= 0; --s) {
      if (w.projected) w.project_state_grads(*w_hr, rows, s, dy_stride);
      for (int64_t b = rows.begin; b < rows.end; ++b) w.step(rows_kernels, b, s, 0, H, w.dgh_steps.get() + b * GH, dy_stride);
      w_hh.multiply(w.dgh_steps.get() + rows.begin * GH, n, GH, w.dh_rec.get() + rows.begin * R, R);
      if (a.recurrent_mask)
        for (int64_t i = rows.begin * H; i < rows.end * H; ++i) w.dh_rec[i] *= a.recurrent_mask[i];
    }
    w.initial_state_grads(rows, 0, H);
    w.finish_rows(rows);
  });
}

// Split by hidden units (as forward_by_units): each step every member runs the cells of its units
// for every row, then, once the team has met, multiplies the step's whole gate gradients (B, G*H)
// by its columns of W_hh for its units of dh_prev. The step's gate gradients are double-buffered,
// so one barrier per step keeps the members in step.
template <class Cell, typename T>
void backward_by_units(Backward<Cell, T>& w, int64_t dy_stride) {
  const BackwardArgs<T>& a = w.a;
  const int64_t B = a.dims.batch, H = w.H, GH = w.GH;
  const auto units = split_aligned(H, a.num_threads, kUnitAlign);
  const int parts = static_cast<int>(units.size());
  std::vector<PackedMatrix<T>> w_hh;  // per part: W_hh (G*H, units) of its units, packed by its member
  w_hh.reserve(parts);
  for (const RowRange& u : units) w_hh.emplace_back(GH, u.end - u.begin);
  const auto batch_rows = split_rows(B, parts);
  static const RowKernels<Cell, T> rows_kernels = RowKernels<Cell, T>::best();
  const int64_t steps = longest(a.lengths, {0, B});
  run_team(parts, [&](int member, int team_size, SpinBarrier& barrier) {
    for (int p = member; p < parts; p += team_size) w_hh[p].pack(a.w_hh + units[p].begin, H, 1);
    for (int p = member; p < parts; p += team_size) w.start({0, B}, units[p].begin, units[p].end - units[p].begin);
    for (int64_t s = steps - 1; s >= 0; --s) {
      T* dgh_step = w.dgh_steps.get() + (s % 2) * B * GH;
      for (int p = member; p < parts; p += team_size)
        for (int64_t b = 0; b < B; ++b)
          w.step(rows_kernels, b, s, units[p].begin, units[p].end - units[p].begin, dgh_step + b * GH, dy_stride);
      barrier.wait();
      for (int p = member; p < parts; p += team_size)
        w_hh[p].multiply(dgh_step, B, GH, w.dh_rec.get() + units[p].begin, H);
    }
    for (int p = member; p < parts; p += team_size)
      w.initial_state_grads({0, B}, units[p].begin, units[p].end - units[p].begin);
    // Every member's last cells ran before the last barrier: every row's steps are done.
    for (int p = member; p < static_cast<int>(batch_rows.size()); p += team_size) w.finish_rows(batch_rows[p]);
  });
}

template <class Cell, typename T>
void sequence_backward(const BackwardArgs<T>& a, int64_t dy_stride) {
  Backward<Cell, T> w(a);
  SerialBlas serial;
  run_split(split_shape<Cell>(a, true, true), [&](Split split) {
    if (split == Split::units)
      backward_by_units(w, dy_stride);
    else
      backward_by_rows(w, dy_stride);
  });
  w.weight_grads();
}

#define FUSEDRNN_INSTANTIATE(CELL, T)                                       \
  template void sequence_forward<CELL, T>(const ForwardArgs<T>&, int64_t);  \
  template void sequence_backward<CELL, T>(const BackwardArgs<T>&, int64_t);

FUSEDRNN_INSTANTIATE(LstmCell, float)
FUSEDRNN_INSTANTIATE(LstmCell, double)
FUSEDRNN_INSTANTIATE(GruCell, float)
FUSEDRNN_INSTANTIATE(GruCell, double)
FUSEDRNN_INSTANTIATE(RnnCell, float)
FUSEDRNN_INSTANTIATE(RnnCell, double)

}  // namespace fusedrnn::cpu
