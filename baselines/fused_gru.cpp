// The one-layer GRU recurrence of the batched engine, one task at a time with its weights hot in cache.
//
// Why (bench perf --settings full, one thread): the batched products [tasks, rows, H] x [tasks, H, 3H]
// stream every task's W_hh (32 tasks x 196 KB at H 128) from memory at every step, for only 5-10
// rows each; they ran at ~60 GFLOP/s, and the per-step gate work was a dozen small ATen calls.
// Here each task runs all its steps with its own W_hh in L2: the step's product is a register-
// blocked small GEMM (~175 GFLOP/s measured at 5 x 128 x 384), and the gate work is one fused pass
// per row. Tasks are independent (their row-table slots are disjoint), so threads take them in turn.
//
// Layout (meta/batched.py KernelSide): per task, rows sorted longest first, lengths [n, B]; the
// row-table slot of each position [n, B, T]; the input projections table [slots, 3H] (x W_ih^T +
// b_ih, formed once per (task, item) row). Step t runs the rows still inside their length (a
// leading block), so a row past its end is simply not touched: its state is held exactly.
// nn.GRU's equations, gate order (r, z, n): r = s(xr + hr), z = s(xz + hz),
// n = tanh(xn + r * hn), h' = n + z (h - n), with h. = W_h. h + b_h.; tanh(x) = 2 s(2x) - 1 as in
// meta/batched.py's _tanh_. Saved per position (forward, for the hand-written backward): the
// previous state, r, z, n and hn. The backward forms each position's gate gradients, adds the
// input side's into the table's gradient by slot, and the W_hh side's per task in one product.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace {

constexpr int L = 16;  // floats per vector
typedef float vf __attribute__((vector_size(64), aligned(4)));  // unaligned loads and stores
typedef int vi __attribute__((vector_size(64), aligned(4)));

// C[M, N] += A[M, K] B[K, N], row-major with leading dimensions; MR rows, NV vectors of columns.
template <int MR, int NV>
inline void block(int K, const float* A, long lda, const float* B, long ldb, float* C, long ldc) {
  vf acc[MR][NV];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[m][j] = *(const vf*)(C + m * ldc + L * j);
  for (int k = 0; k < K; ++k) {
    const float* b = B + (long)k * ldb;
    vf bk[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bk[j] = *(const vf*)(b + L * j);
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      const float a = A[m * lda + k];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[m][j] += a * bk[j];
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) *(vf*)(C + m * ldc + L * j) = acc[m][j];
}

template <int MR>
inline void rows(int N, int K, const float* A, long lda, const float* B, long ldb, float* C, long ldc) {
  int n = 0;
  for (; n + 4 * L <= N; n += 4 * L) block<MR, 4>(K, A, lda, B + n, ldb, C + n, ldc);
  for (; n + L <= N; n += L) block<MR, 1>(K, A, lda, B + n, ldb, C + n, ldc);
  for (; n < N; ++n)
    for (int m = 0; m < MR; ++m) {
      float sum = 0.f;
      for (int k = 0; k < K; ++k) sum += A[m * lda + k] * B[(long)k * ldb + n];
      C[m * ldc + n] += sum;
    }
}

void gemm_acc(int M, int N, int K, const float* A, long lda, const float* B, long ldb, float* C, long ldc) {
  int m = 0;
  for (; m + 5 <= M; m += 5) rows<5>(N, K, A + m * lda, lda, B, ldb, C + m * ldc, ldc);
  const float* a = A + m * lda;
  float* c = C + m * ldc;
  switch (M - m) {
    case 1: rows<1>(N, K, a, lda, B, ldb, c, ldc); break;
    case 2: rows<2>(N, K, a, lda, B, ldb, c, ldc); break;
    case 3: rows<3>(N, K, a, lda, B, ldb, c, ldc); break;
    case 4: rows<4>(N, K, a, lda, B, ldb, c, ldc); break;
    default: break;
  }
}

// exp (Cephes' expf: range reduction by ln 2 in two parts, degree-6 polynomial; ~1 ulp).
inline vf vexp(vf x) {
  const vf lo = vf{} - 87.3f, hi = vf{} + 88.3f;
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  vf fx = x * 1.44269504088896341f + 0.5f;
  vi n = __builtin_convertvector(fx, vi);
  vf nf = __builtin_convertvector(n, vf);
  n += (vi)(nf > fx);  // truncation -> floor (the comparison is -1 where true)
  nf = __builtin_convertvector(n, vf);
  x = x - nf * 0.693359375f;
  x = x - nf * -2.12194440e-4f;
  const vf z = x * x;
  vf y = 1.9875691500E-4f * x + 1.3981999507E-3f;
  y = y * x + 8.3334519073E-3f;
  y = y * x + 4.1665795894E-2f;
  y = y * x + 1.6666665459E-1f;
  y = y * x + 5.0000001201E-1f;
  y = y * z + x + 1.0f;
  const vi bits = (n + 127) << 23;
  return y * (vf)bits;
}

inline vf vsigmoid(vf x) { return 1.0f / (1.0f + vexp(-x)); }
inline vf vtanh(vf x) { return 2.0f * vsigmoid(2.0f * x) - 1.0f; }

// Load / store up to L floats (the tail of a row shorter than a vector is padded with zeros).
inline vf load(const float* p, int count) {
  if (count == L) return *(const vf*)p;
  vf v = vf{};
  std::memcpy(&v, p, sizeof(float) * count);
  return v;
}
inline void store(float* p, vf v, int count) {
  if (count == L) {
    *(vf*)p = v;
  } else {
    std::memcpy(p, &v, sizeof(float) * count);
  }
}

struct Sizes {
  int64_t n, B, T, H, G;  // tasks, rows per task, steps, hidden, 3H
};

// Each task's first position (positions: task by task, then step by step, then row by row).
std::vector<int64_t> task_offsets(const int64_t* lengths, const Sizes& s) {
  std::vector<int64_t> offsets(s.n + 1, 0);
  for (int64_t i = 0; i < s.n; ++i) {
    int64_t total = 0;
    for (int64_t r = 0; r < s.B; ++r) total += lengths[i * s.B + r];
    offsets[i + 1] = offsets[i] + total;
  }
  return offsets;
}

// The sizes, pointers and task offsets both passes read.
struct Layout {
  Sizes s;
  bool shared;  // one W_hh for every task (the meta-weights)
  const int64_t* len;
  const int64_t* slot;
  std::vector<int64_t> offsets;
  Layout(const torch::Tensor& slots, const torch::Tensor& lengths, const torch::Tensor& weight_hh)
      : s{slots.size(0), slots.size(1), slots.size(2), weight_hh.size(2), weight_hh.size(1)},
        shared(weight_hh.size(0) == 1),
        len(lengths.data_ptr<int64_t>()),
        slot(slots.data_ptr<int64_t>()),
        offsets(task_offsets(len, s)) {
    TORCH_CHECK(shared || weight_hh.size(0) == s.n, "fused GRU: weight_hh must hold 1 or n tasks");
  }
};

// Tasks i = tid, tid + threads, ... (sorted longest first, so the threads' loads are about even).
template <typename F>
void for_each_task(int64_t n, F&& body) {
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), n));
  if (threads == 1) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
  at::parallel_for(0, threads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t tid = begin; tid < end; ++tid)
      for (int64_t i = tid; i < n; i += threads) body(i);
  });
}

void check(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous(), "fused GRU: ", name, " must be a contiguous CPU tensor");
}

}  // namespace

// table [R, 3H] float; slots [n, B, T] long; lengths [n, B] long (each task's rows longest first);
// weight_hh [1 or n, 3H, H]; bias_hh [1 or n, 3H] (1: the meta-weights, shared by every task).
// Returns [state [n, B, H]] or, with save, [state, previous, reset_update, candidate, hidden_n].
std::vector<torch::Tensor> fused_gru_forward(torch::Tensor table, torch::Tensor slots, torch::Tensor lengths, torch::Tensor weight_hh, torch::Tensor bias_hh, bool save) {
  for (auto* t : {&table, &slots, &lengths, &weight_hh, &bias_hh}) check(*t, "an input");
  TORCH_CHECK(table.scalar_type() == at::kFloat && weight_hh.scalar_type() == at::kFloat && bias_hh.scalar_type() == at::kFloat, "fused GRU: float32 only");
  TORCH_CHECK(slots.scalar_type() == at::kLong && lengths.scalar_type() == at::kLong, "fused GRU: slots and lengths must be int64");
  const Layout layout(slots, lengths, weight_hh);
  const auto& [s, shared, len, slot, offsets] = layout;
  const int64_t H = s.H, G = s.G, P = offsets[s.n];
  auto options = table.options();
  torch::Tensor state = torch::zeros({s.n, s.B, H}, options);
  torch::Tensor previous, reset_update, candidate, hidden_n;
  if (save) {
    previous = torch::empty({P, H}, options);
    reset_update = torch::empty({P, 2 * H}, options);
    candidate = torch::empty({P, H}, options);
    hidden_n = torch::empty({P, H}, options);
  }
  // W_hh^T [H, 3H] per task (the product's right factor, row-major); once when shared.
  torch::Tensor transposed = weight_hh.transpose(1, 2).contiguous();
  const float* tab = table.data_ptr<float>();
  const float* wt_all = transposed.data_ptr<float>();
  const float* bias_all = bias_hh.data_ptr<float>();
  float* state_all = state.data_ptr<float>();
  float* prev_all = save ? previous.data_ptr<float>() : nullptr;
  float* rz_all = save ? reset_update.data_ptr<float>() : nullptr;
  float* cand_all = save ? candidate.data_ptr<float>() : nullptr;
  float* hn_all = save ? hidden_n.data_ptr<float>() : nullptr;

  for_each_task(s.n, [&](int64_t i) {
    const int64_t* lens = len + i * s.B;
    const float* wt = wt_all + (shared ? 0 : i * H * G);
    const float* bias = bias_all + (shared ? 0 : i * G);
    float* h_task = state_all + i * s.B * H;
    std::vector<float> gates_h(s.B * G);
    int64_t position = offsets[i];
    int64_t running = s.B;
    for (int64_t t = 0; t < lens[0]; ++t) {
      while (running > 0 && lens[running - 1] <= t) --running;
      for (int64_t r = 0; r < running; ++r) std::memcpy(&gates_h[r * G], bias, sizeof(float) * G);
      gemm_acc(running, G, H, h_task, H, wt, G, gates_h.data(), G);
      for (int64_t r = 0; r < running; ++r) {
        const float* gx = tab + slot[(i * s.B + r) * s.T + t] * G;
        const float* gh = &gates_h[r * G];
        float* h = h_task + r * H;
        const int64_t p = position + r;
        for (int64_t c = 0; c < H; c += L) {
          const int count = (int)std::min<int64_t>(L, H - c);
          const vf hv = load(h + c, count);
          const vf reset = vsigmoid(load(gx + c, count) + load(gh + c, count));
          const vf update = vsigmoid(load(gx + H + c, count) + load(gh + H + c, count));
          const vf hn = load(gh + 2 * H + c, count);
          const vf cand = vtanh(load(gx + 2 * H + c, count) + reset * hn);
          if (save) {
            store(prev_all + p * H + c, hv, count);
            store(rz_all + p * 2 * H + c, reset, count);
            store(rz_all + p * 2 * H + H + c, update, count);
            store(cand_all + p * H + c, cand, count);
            store(hn_all + p * H + c, hn, count);
          }
          store(h + c, cand + update * (hv - cand), count);
        }
      }
      position += running;
    }
  });
  if (!save) return {state};
  return {state, previous, reset_update, candidate, hidden_n};
}

// The backward of fused_gru_forward. Returns [grad_table [R, 3H], grad_weight_hh [n, 3H, H] (or an
// empty tensor when not needed), grad_bias_hh [n, 3H]]; each task's own gradients even where the
// forward shared the meta-weights.
std::vector<torch::Tensor> fused_gru_backward(torch::Tensor grad_state, torch::Tensor slots, torch::Tensor lengths, torch::Tensor weight_hh,
                                              torch::Tensor previous, torch::Tensor reset_update, torch::Tensor candidate, torch::Tensor hidden_n,
                                              int64_t table_rows, bool need_weight) {
  for (auto* t : {&grad_state, &slots, &lengths, &weight_hh, &previous, &reset_update, &candidate, &hidden_n}) check(*t, "an input");
  const Layout layout(slots, lengths, weight_hh);
  const auto& [s, shared, len, slot, offsets] = layout;
  const int64_t H = s.H, G = s.G, P = offsets[s.n];
  auto options = grad_state.options();
  torch::Tensor grad_table = torch::zeros({table_rows, G}, options);
  torch::Tensor grad_gates_h = torch::empty({P, G}, options);
  torch::Tensor grad_weight = need_weight ? torch::empty({s.n, G, H}, options) : torch::Tensor();
  torch::Tensor grad_bias = torch::empty({s.n, G}, options);
  const float* w_all = weight_hh.data_ptr<float>();
  const float* gs_all = grad_state.data_ptr<float>();
  const float* prev_all = previous.data_ptr<float>();
  const float* rz_all = reset_update.data_ptr<float>();
  const float* cand_all = candidate.data_ptr<float>();
  const float* hn_all = hidden_n.data_ptr<float>();
  float* gt_all = grad_table.data_ptr<float>();
  float* ggh_all = grad_gates_h.data_ptr<float>();

  for_each_task(s.n, [&](int64_t i) {
    const int64_t* lens = len + i * s.B;
    const float* w = w_all + (shared ? 0 : i * G * H);
    std::vector<float> grad(gs_all + i * s.B * H, gs_all + (i + 1) * s.B * H);
    // Each step's rows running and first position, from the forward's order.
    const int64_t steps = lens[0];
    std::vector<int64_t> running_at(steps), first_at(steps);
    int64_t position = offsets[i], running = s.B;
    for (int64_t t = 0; t < steps; ++t) {
      while (running > 0 && lens[running - 1] <= t) --running;
      running_at[t] = running;
      first_at[t] = position;
      position += running;
    }
    for (int64_t t = steps - 1; t >= 0; --t) {
      const int64_t rows_t = running_at[t];
      for (int64_t r = 0; r < rows_t; ++r) {
        const int64_t p = first_at[t] + r;
        float* gt = gt_all + slot[(i * s.B + r) * s.T + t] * G;
        float* ggh = ggh_all + p * G;
        float* g = grad.data() + r * H;
        for (int64_t c = 0; c < H; c += L) {
          const int count = (int)std::min<int64_t>(L, H - c);
          const vf gv = load(g + c, count);
          const vf reset = load(rz_all + p * 2 * H + c, count);
          const vf update = load(rz_all + p * 2 * H + H + c, count);
          const vf cand = load(cand_all + p * H + c, count);
          const vf d_cand = gv * (1.0f - update) * (1.0f - cand * cand);
          const vf d_update = gv * (load(prev_all + p * H + c, count) - cand) * update * (1.0f - update);
          const vf d_reset = d_cand * load(hn_all + p * H + c, count) * reset * (1.0f - reset);
          store(gt + c, load(gt + c, count) + d_reset, count);
          store(gt + H + c, load(gt + H + c, count) + d_update, count);
          store(gt + 2 * H + c, load(gt + 2 * H + c, count) + d_cand, count);
          store(ggh + c, d_reset, count);
          store(ggh + H + c, d_update, count);
          store(ggh + 2 * H + c, d_cand * reset, count);
          store(g + c, gv * update, count);
        }
      }
      // The state's gradient through W_hh: g += grad_gates_h [rows, 3H] W_hh [3H, H].
      gemm_acc(rows_t, H, G, ggh_all + first_at[t] * G, G, w, H, grad.data(), H);
    }
    const int64_t begin = offsets[i], end = offsets[i + 1];
    auto task_ggh = grad_gates_h.narrow(0, begin, end - begin);
    if (need_weight) {
      auto out = grad_weight[i];
      at::mm_out(out, task_ggh.t(), previous.narrow(0, begin, end - begin));
    }
    auto bias_out = grad_bias[i];
    at::sum_out(bias_out, task_ggh, {0});
  });
  return {grad_table, need_weight ? grad_weight : torch::empty({0}, options), grad_bias};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &fused_gru_forward, "fused one-layer GRU over a task-batched layout (forward)");
  m.def("backward", &fused_gru_backward, "its backward");
}
