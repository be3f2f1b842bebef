// fusedrnn._core: thin bindings over the CPU kernels. They check what reaches them (dtype, shape,
// C order, writable outputs) so that a direct call cannot crash the process, release the GIL and
// call the kernel. Argument checking with friendly messages is done before, in fusedrnn.ops.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "cpu/adam.h"
#include "cpu/blas.h"
#include "cpu/dropout.h"
#include "cpu/isa.h"
#include "cpu/matmul.h"
#include "cpu/sequence.h"
#include "cpu/workspace.h"

namespace py = pybind11;
using namespace fusedrnn;

namespace {

using Shape = std::vector<int64_t>;

std::string shape_text(const Shape& shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + (shape.size() == 1 ? ",)" : ")");
}

template <typename T>
T* checked(const py::array& arr, const char* name, const Shape& shape, bool output = false) {
  if (!arr.dtype().is(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + ": dtype " + std::string(py::str(arr.dtype())) +
                         " does not match the other arrays");
  bool same = arr.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; same && i < shape.size(); ++i) same = arr.shape(i) == shape[i];
  if (!same) throw py::value_error(std::string(name) + ": expected shape " + shape_text(shape));
  if (!(arr.flags() & py::array::c_style)) throw py::value_error(std::string(name) + ": must be C-contiguous");
  if (output && !arr.writeable()) throw py::value_error(std::string(name) + ": must be writable");
  return static_cast<T*>(const_cast<void*>(arr.data()));
}

// A (B, T, W) array whose (b, t) rows are each contiguous and evenly `stride` elements apart, stride
// >= W: C order (stride W), or one side of a (B, T, 2W) array (stride 2W), where the two directions
// of a bidirectional layer write their outputs and read their gradients. -> (data, stride).
template <typename T>
std::pair<T*, int64_t> checked_rows(const py::array& arr, const char* name, const Shape& shape, bool output = false) {
  if (arr.flags() & py::array::c_style) return {checked<T>(arr, name, shape, output), shape[2]};
  if (!arr.dtype().is(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + ": dtype " + std::string(py::str(arr.dtype())) +
                         " does not match the other arrays");
  bool same = arr.ndim() == 3;
  for (size_t i = 0; same && i < 3; ++i) same = arr.shape(i) == shape[i];
  if (!same) throw py::value_error(std::string(name) + ": expected shape " + shape_text(shape));
  const int64_t item = static_cast<int64_t>(sizeof(T)), B = shape[0], S = shape[1], W = shape[2];
  // Strides of axes of length 1 say nothing: a single row has whatever stride suits.
  const int64_t stride = S > 1 ? arr.strides(1) / item : B > 1 ? arr.strides(0) / item : W;
  const bool rows_ok = (W == 1 || arr.strides(2) == item) && stride >= W &&
                       (S == 1 || arr.strides(1) == stride * item) && (B == 1 || arr.strides(0) == S * stride * item);
  if (!rows_ok)
    throw py::value_error(std::string(name) + ": must be C-contiguous, or rows of a C-contiguous (B, T, k*H) array");
  if (output && !arr.writeable()) throw py::value_error(std::string(name) + ": must be writable");
  return {static_cast<T*>(const_cast<void*>(arr.data())), stride};
}

template <typename T>
T* checked_optional(const std::optional<py::array>& arr, const char* name, const Shape& shape,
                    bool output = false) {
  return arr ? checked<T>(*arr, name, shape, output) : nullptr;
}

const int64_t* checked_lengths(const py::array& lengths, int64_t batch, int64_t steps) {
  const int64_t* data = checked<int64_t>(lengths, "lengths", {batch});
  for (int64_t b = 0; b < batch; ++b)
    if (data[b] < 1 || data[b] > steps)
      throw py::value_error("lengths: every length must be in 1..T = " + std::to_string(steps));
  return data;
}

// w_hr (P, H) given: an LSTM with projections, w_hh (G*H, P); else w_hh (G*H, H).
SeqDims dims_of(const py::array& x, const py::array& w_hh, int gates, const std::optional<py::array>& w_hr) {
  if (x.ndim() != 3) throw py::value_error("x: expected 3 dimensions (B, T, I)");
  if (w_hh.ndim() != 2) throw py::value_error("w_hh: expected 2 dimensions (G*H, H)");
  if (w_hr && w_hr->ndim() != 2) throw py::value_error("w_hr: expected 2 dimensions (P, H)");
  SeqDims d{x.shape(0), x.shape(1), x.shape(2), w_hr ? w_hr->shape(1) : w_hh.shape(1)};
  d.proj = w_hr ? w_hr->shape(0) : 0;
  if (d.batch < 1 || d.steps < 1 || d.input < 1) throw py::value_error("x: B, T and I must be at least 1");
  if (d.hidden < 1) throw py::value_error("w_hh: H must be at least 1");
  if (w_hr && d.proj < 1) throw py::value_error("w_hr: P must be at least 1");
  if (w_hh.shape(0) != gates * d.hidden || w_hh.shape(1) != d.state())
    throw py::value_error(w_hr ? "w_hh: expected shape (G*H, P)" : "w_hh: expected shape (G*H, H)");
  // scipy-openblas32 indexes with 32-bit integers.
  if (d.batch * d.steps * std::max<int64_t>(d.input, gates * d.hidden) > INT32_MAX)
    throw py::value_error("x: B*T*max(I, G*H) exceeds the 32-bit BLAS index limit");
  return d;
}

Activation checked_activation(int code) {
  if (code != static_cast<int>(Activation::tanh) && code != static_cast<int>(Activation::relu))
    throw py::value_error("activation: expected 0 (tanh) or 1 (relu)");
  return static_cast<Activation>(code);
}

template <class Cell>
struct Binding {
  static void check_projection(const std::optional<py::array>& w_hr, const std::optional<py::array>& mask) {
    if (w_hr && !Cell::projectable) throw py::value_error(std::string("w_hr: ") + Cell::name + " has no projections");
    if (w_hr && mask) throw py::value_error("recurrent_mask: not supported with projections (w_hr)");
  }


  template <typename T>
  static void forward_typed(const py::array& x, const py::array& w_ih, const py::array& w_hh,
                            const py::array& b_ih, const py::array& b_hh, const std::optional<py::array>& h0,
                            const std::optional<py::array>& c0, const py::array& lengths,
                            const std::optional<py::array>& recurrent_mask, bool reverse, int act, int num_threads,
                            const py::array& y, const py::array& h_n,
                            const std::optional<py::array>& c_n, const std::optional<py::array>& gates,
                            const std::optional<py::array>& aux, const std::optional<py::array>& h_prev,
                            const std::optional<py::array>& w_hr) {
    check_projection(w_hr, recurrent_mask);
    const SeqDims d = dims_of(x, w_hh, Cell::gates, w_hr);
    const int64_t B = d.batch, S = d.steps, H = d.hidden, GH = Cell::gates * d.hidden, R = d.state();
    ForwardArgs<T> a{};
    a.dims = d;
    a.x = checked<T>(x, "x", {B, S, d.input});
    a.w_ih = checked<T>(w_ih, "w_ih", {GH, d.input});
    a.w_hh = checked<T>(w_hh, "w_hh", {GH, R});
    a.b_ih = checked<T>(b_ih, "b_ih", {GH});
    a.b_hh = checked<T>(b_hh, "b_hh", {GH});
    a.w_hr = checked_optional<T>(w_hr, "w_hr", {R, H});
    a.h0 = checked_optional<T>(h0, "h0", {B, R});
    a.lengths = checked_lengths(lengths, B, S);
    a.recurrent_mask = checked_optional<T>(recurrent_mask, "recurrent_mask", {B, H});
    a.reverse = reverse;
    a.act = checked_activation(act);
    a.num_threads = std::max(1, num_threads);
    int64_t y_stride;
    std::tie(a.y, y_stride) = checked_rows<T>(y, "y", {B, S, R}, true);
    a.h_n = checked<T>(h_n, "h_n", {B, R}, true);
    if (bool(gates) != bool(aux) || bool(aux) != bool(h_prev))
      throw py::value_error("gates, aux, h_prev: give all three (training) or none (inference)");
    a.gates = checked_optional<T>(gates, "gates", {B, S, GH}, true);
    a.aux = checked_optional<T>(aux, "aux", {B, S, Cell::aux * H}, true);
    a.h_prev = checked_optional<T>(h_prev, "h_prev", {B, S, R}, true);
    if (Cell::has_cell_state) {
      a.c0 = checked_optional<T>(c0, "c0", {B, H});
      if (!c_n) throw py::value_error("c_n: required for LSTM");
      a.c_n = checked<T>(*c_n, "c_n", {B, H}, true);
    }
    py::gil_scoped_release release;
    cpu::sequence_forward<Cell, T>(a, y_stride);
  }

  template <typename T>
  static void backward_typed(const py::array& x, const py::array& w_ih, const py::array& w_hh,
                             const py::array& lengths, const std::optional<py::array>& recurrent_mask,
                             bool reverse, int act, int num_threads, const py::array& gates, const py::array& aux, const py::array& h_prev,
                             const py::array& dy, const std::optional<py::array>& dh_n,
                             const std::optional<py::array>& dc_n, const std::optional<py::array>& dx,
                             const py::array& dw_ih, const py::array& dw_hh, const py::array& db_ih,
                             const py::array& db_hh, const py::array& dh0, const std::optional<py::array>& dc0,
                             const std::optional<py::array>& w_hr, const std::optional<py::array>& dw_hr) {
    check_projection(w_hr, recurrent_mask);
    if (bool(w_hr) != bool(dw_hr)) throw py::value_error("w_hr, dw_hr: give both (projections) or neither");
    const SeqDims d = dims_of(x, w_hh, Cell::gates, w_hr);
    const int64_t B = d.batch, S = d.steps, H = d.hidden, GH = Cell::gates * d.hidden, R = d.state();
    BackwardArgs<T> a{};
    a.dims = d;
    a.x = checked<T>(x, "x", {B, S, d.input});
    a.w_ih = checked<T>(w_ih, "w_ih", {GH, d.input});
    a.w_hh = checked<T>(w_hh, "w_hh", {GH, R});
    a.w_hr = checked_optional<T>(w_hr, "w_hr", {R, H});
    a.lengths = checked_lengths(lengths, B, S);
    a.recurrent_mask = checked_optional<T>(recurrent_mask, "recurrent_mask", {B, H});
    a.reverse = reverse;
    a.act = checked_activation(act);
    a.num_threads = std::max(1, num_threads);
    a.gates = checked<T>(gates, "gates", {B, S, GH});
    a.aux = checked<T>(aux, "aux", {B, S, Cell::aux * H});
    a.h_prev = checked<T>(h_prev, "h_prev", {B, S, R});
    int64_t dy_stride;
    std::tie(a.dy, dy_stride) = checked_rows<T>(dy, "dy", {B, S, R});
    a.dh_n = checked_optional<T>(dh_n, "dh_n", {B, R});
    a.dx = checked_optional<T>(dx, "dx", {B, S, d.input}, true);
    a.dw_ih = checked<T>(dw_ih, "dw_ih", {GH, d.input}, true);
    a.dw_hh = checked<T>(dw_hh, "dw_hh", {GH, R}, true);
    a.dw_hr = checked_optional<T>(dw_hr, "dw_hr", {R, H}, true);
    a.db_ih = checked<T>(db_ih, "db_ih", {GH}, true);
    a.db_hh = checked<T>(db_hh, "db_hh", {GH}, true);
    a.dh0 = checked<T>(dh0, "dh0", {B, R}, true);
    if (Cell::has_cell_state) {
      a.dc_n = checked_optional<T>(dc_n, "dc_n", {B, H});
      if (!dc0) throw py::value_error("dc0: required for LSTM");
      a.dc0 = checked<T>(*dc0, "dc0", {B, H}, true);
    }
    py::gil_scoped_release release;
    cpu::sequence_backward<Cell, T>(a, dy_stride);
  }

  template <typename... Args>
  static void forward(const py::array& x, Args&&... args) {
    if (x.dtype().is(py::dtype::of<float>())) return forward_typed<float>(x, args...);
    if (x.dtype().is(py::dtype::of<double>())) return forward_typed<double>(x, args...);
    throw py::type_error("x: dtype must be float32 or float64");
  }

  template <typename... Args>
  static void backward(const py::array& x, Args&&... args) {
    if (x.dtype().is(py::dtype::of<float>())) return backward_typed<float>(x, args...);
    if (x.dtype().is(py::dtype::of<double>())) return backward_typed<double>(x, args...);
    throw py::type_error("x: dtype must be float32 or float64");
  }

  static void define(py::module_& m) {
    const std::string name = Cell::name;
    using A = const py::array&;
    using O = const std::optional<py::array>&;
    m.def((name + "_forward").c_str(),
          &forward<A, A, A, A, O, O, A, O, bool, int, int, A, A, O, O, O, O, O>,
          py::arg("x").noconvert(), py::arg("w_ih").noconvert(), py::arg("w_hh").noconvert(),
          py::arg("b_ih").noconvert(), py::arg("b_hh").noconvert(), py::arg("h0").noconvert().none(true),
          py::arg("c0").noconvert().none(true), py::arg("lengths").noconvert(),
          py::arg("recurrent_mask").noconvert().none(true), py::arg("reverse"),
          py::arg("activation"), py::arg("num_threads"), py::arg("y").noconvert(), py::arg("h_n").noconvert(),
          py::arg("c_n").noconvert().none(true), py::arg("gates").noconvert().none(true),
          py::arg("aux").noconvert().none(true), py::arg("h_prev").noconvert().none(true),
          py::arg("w_hr").noconvert().none(true) = py::none(),
          "One direction over a whole sequence; writes y, h_n, c_n and the saved gates, aux, h_prev (all "
          "three None: an inference forward, which saves nothing). w_hr (P, H): LSTM projections.");
    m.def((name + "_backward").c_str(),
          &backward<A, A, A, O, bool, int, int, A, A, A, A, O, O, O, A, A, A, A, A, O, O, O>,
          py::arg("x").noconvert(), py::arg("w_ih").noconvert(), py::arg("w_hh").noconvert(),
          py::arg("lengths").noconvert(), py::arg("recurrent_mask").noconvert().none(true), py::arg("reverse"),
          py::arg("activation"), py::arg("num_threads"),
          py::arg("gates").noconvert(), py::arg("aux").noconvert(), py::arg("h_prev").noconvert(),
          py::arg("dy").noconvert(), py::arg("dh_n").noconvert().none(true), py::arg("dc_n").noconvert().none(true),
          py::arg("dx").noconvert().none(true), py::arg("dw_ih").noconvert(), py::arg("dw_hh").noconvert(),
          py::arg("db_ih").noconvert(), py::arg("db_hh").noconvert(), py::arg("dh0").noconvert(),
          py::arg("dc0").noconvert().none(true), py::arg("w_hr").noconvert().none(true) = py::none(),
          py::arg("dw_hr").noconvert().none(true) = py::none(),
          "BPTT for one direction from what forward saved; writes every gradient (dx only when given, dw_hr "
          "with w_hr).");
  }
};

template <typename T>
void adam_update_typed(const py::array& var, const py::array& grad, const py::array& m, const py::array& v,
                       double alpha, double beta1, double beta2, double epsilon, int num_threads) {
  if (var.ndim() < 0) throw py::value_error("var: not an array");
  Shape shape(var.shape(), var.shape() + var.ndim());
  T* var_data = checked<T>(var, "var", shape, true);
  const T* grad_data = checked<T>(grad, "grad", shape);
  T* m_data = checked<T>(m, "m", shape, true);
  T* v_data = checked<T>(v, "v", shape, true);
  const int64_t n = var.size();
  py::gil_scoped_release release;
  cpu::adam_update<T>(n, var_data, grad_data, m_data, v_data, static_cast<T>(alpha), static_cast<T>(beta1),
                      static_cast<T>(beta2), static_cast<T>(epsilon), num_threads);
}

void adam_update(const py::array& var, const py::array& grad, const py::array& m, const py::array& v, double alpha,
                 double beta1, double beta2, double epsilon, int num_threads) {
  if (var.dtype().is(py::dtype::of<float>()))
    return adam_update_typed<float>(var, grad, m, v, alpha, beta1, beta2, epsilon, num_threads);
  if (var.dtype().is(py::dtype::of<double>()))
    return adam_update_typed<double>(var, grad, m, v, alpha, beta1, beta2, epsilon, num_threads);
  throw py::type_error("var: dtype must be float32 or float64");
}

template <typename T>
void matmul_typed(const py::array& a, const py::array& b, const py::array& out, bool trans_a, bool trans_b,
                  int num_threads) {
  if (a.ndim() != 2) throw py::value_error("a: expected 2 dimensions");
  if (b.ndim() != 2) throw py::value_error("b: expected 2 dimensions");
  const int64_t m = a.shape(trans_a ? 1 : 0), k = a.shape(trans_a ? 0 : 1);
  const int64_t n = b.shape(trans_b ? 0 : 1);
  if (b.shape(trans_b ? 1 : 0) != k) throw py::value_error("b: its inner dimension does not match a's");
  // scipy-openblas32 indexes with 32-bit integers.
  if (std::max({a.size(), b.size(), m * n}) > INT32_MAX)
    throw py::value_error("a, b: sizes exceed the 32-bit BLAS index limit");
  const T* a_data = checked<T>(a, "a", {a.shape(0), a.shape(1)});
  const T* b_data = checked<T>(b, "b", {b.shape(0), b.shape(1)});
  T* out_data = checked<T>(out, "out", {m, n}, true);
  py::gil_scoped_release release;
  cpu::matmul<T>(trans_a, trans_b, m, n, k, a_data, a.shape(1), b_data, b.shape(1), out_data, n,
                 std::max(1, num_threads));
}

void matmul(const py::array& a, const py::array& b, const py::array& out, bool trans_a, bool trans_b,
            int num_threads) {
  if (a.dtype().is(py::dtype::of<float>())) return matmul_typed<float>(a, b, out, trans_a, trans_b, num_threads);
  if (a.dtype().is(py::dtype::of<double>())) return matmul_typed<double>(a, b, out, trans_a, trans_b, num_threads);
  throw py::type_error("a: dtype must be float32 or float64");
}

template <typename T>
void dropout_mask_typed(const py::array& out, uint64_t key, uint32_t threshold, double scale,
                        const std::optional<py::array>& x, int num_threads) {
  const Shape shape(out.shape(), out.shape() + out.ndim());
  T* data = checked<T>(out, "out", shape, true);
  const T* x_data = checked_optional<T>(x, "x", shape);
  const int64_t n = out.size();
  py::gil_scoped_release release;
  cpu::dropout_mask<T>(n, x_data, data, key, threshold, static_cast<T>(scale), num_threads);
}

void dropout_mask(const py::array& out, uint64_t key, uint32_t threshold, double scale,
                  const std::optional<py::array>& x, int num_threads) {
  if (threshold > (1u << 24)) throw py::value_error("threshold: must be at most 2**24");
  if (out.dtype().is(py::dtype::of<float>())) return dropout_mask_typed<float>(out, key, threshold, scale, x, num_threads);
  if (out.dtype().is(py::dtype::of<double>())) return dropout_mask_typed<double>(out, key, threshold, scale, x, num_threads);
  throw py::type_error("out: dtype must be float32 or float64");
}

py::dict build_info() {
  py::dict info;
  info["version"] = FUSEDRNN_VERSION;
  info["cpu"] = true;
  info["blas"] = FUSEDRNN_BLAS_NAME;
  info["blas_version"] = FUSEDRNN_BLAS_VERSION;
  info["blas_config"] = std::string(cpu::blas_config());
#if defined(__clang__)
  info["compiler"] = "clang " __clang_version__;
#elif defined(__GNUC__)
  info["compiler"] = "gcc " __VERSION__;
#else
  info["compiler"] = "unknown";
#endif
#ifdef FUSEDRNN_X86_DISPATCH
  info["simd"] = "x86-64 baseline, with AVX2+FMA and AVX-512 variants of the hot loops";
#else
  info["simd"] = "the target's baseline";
#endif
  info["simd_active"] = cpu::isa_name(cpu::best_isa());  // FUSEDRNN_ISA, else the best in simd_supported
  py::list supported;
  for (cpu::Isa isa : {cpu::Isa::baseline, cpu::Isa::avx2, cpu::Isa::avx512})
    if (isa <= cpu::cpu_isa()) supported.append(cpu::isa_name(isa));
  info["simd_supported"] = supported;
  return info;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fusedrnn compiled CPU kernels (use fusedrnn.ops, which validates arguments first)";
  for (CellKind kind : kCells)
    with_cell(kind, [&](auto cell) { Binding<decltype(cell)>::define(m); });
  m.def("adam_update", &adam_update, py::arg("var").noconvert(), py::arg("grad").noconvert(),
        py::arg("m").noconvert(), py::arg("v").noconvert(), py::arg("alpha"), py::arg("beta_1"), py::arg("beta_2"),
        py::arg("epsilon"), py::arg("num_threads") = 1,
        "Adam's update of var, m and v in place, in one pass (Keras's form).");
  m.def("matmul", &matmul, py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("out").noconvert(),
        py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("num_threads") = 1,
        "out (m, n) = op(a) @ op(b), op transposing where asked; output rows split over the threads.");
  m.def("dropout_mask", &dropout_mask, py::arg("out").noconvert(), py::arg("key"), py::arg("threshold"),
        py::arg("scale"), py::arg("x").noconvert().none(true) = py::none(), py::arg("num_threads") = 1,
        "Fills out with the mask (scale or 0) from the counter-based generator (csrc/cpu/dropout.h), "
        "or with x times it where x is given.");
  m.def("build_info", &build_info, "What this module was compiled with.");
  m.def("simd_override_error", [] { return cpu::isa_override_error(); },
        "Why FUSEDRNN_ISA was refused, or an empty string (fusedrnn raises it at import).");
  m.def("get_num_threads", &cpu::blas_num_threads, "Threads the kernels use (OpenBLAS's setting).");
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("n: must be at least 1");
    cpu::set_blas_num_threads(n);
  }, py::arg("n"), "Sets the threads the kernels and their BLAS use.");
  m.def("cached_workspace_bytes", &cpu::cached_workspace_bytes,
        "Bytes of large workspaces kept between calls for the next (csrc/cpu/workspace.h).");
  m.def("release_cached_workspaces", &cpu::release_cached_workspaces,
        "Gives the workspaces kept between calls back to the system.");
}
