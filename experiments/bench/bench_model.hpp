// The benchmark problem of the foundation issue, shared by bench_train.cpp (CPU) and
// bench_gpu.cpp (CUDA) so that both time the same network, batch and FLOP count.
#pragma once
#include <cmath>

#include "models/network.hpp"
#include "models/optimizer.hpp"
#include "models/random.hpp"

namespace moedmft::bench {

struct BenchShape {
  const char* name;
  int D, N, Ne, M, K, B;
  int repeats;
};
inline constexpr BenchShape kSmallShape{"small", 256, 128, 128, 8, 2, 50, 400};
inline constexpr BenchShape kLargeShape{"large", 1024, 1024, 1024, 8, 2, 512, 15};

// float32, top-K, fan-in init, Adam at LR 1e-3, one random regression batch.
struct BenchProblem {
  Shape shape;
  MoeNetwork<float> net;
  Mat<float> x, y;
  OptimizerConfig optim;
};

inline BenchProblem make_bench_problem(const BenchShape& bs) {
  Shape s;
  s.D = bs.D;
  s.N = bs.N;
  s.Ne = bs.Ne;
  s.M = bs.M;
  s.K = bs.K;
  s.C = 1;
  ModelOptions o;
  o.routing = Routing::topk;
  ResolvedParam p;
  for (int g = 0; g < kNumGroups; ++g) {
    p.groups[g].init_std = 1.0 / std::sqrt(double(g == 0 ? s.D : s.N));
    p.groups[g].lr = 1e-3;
    p.groups[g].eps = 1e-8;
  }
  BenchProblem pb{s, MoeNetwork<float>(s, o, p), Mat<float>(bs.B, s.D), Mat<float>(bs.B, 1), OptimizerConfig{}};
  pb.net.initialize(1);
  Rng rng(2);
  for (int i = 0; i < pb.x.size(); ++i) pb.x.data()[i] = float(rng.normal());
  for (int i = 0; i < pb.y.size(); ++i) pb.y.data()[i] = float(rng.normal());
  pb.optim.kind = OptimizerKind::adam;
  return pb;
}

// Matmul FLOPs of one training step (as scripts/reference/bench_torch.py counts them): forward,
// and a backward that doubles all but the input layer (weight gradient only).
inline double step_matmul_flops(const BenchShape& bs) {
  const double B = bs.B, routed = B * bs.K;
  const double in = 2 * B * bs.D * bs.N, router = 2 * B * bs.N * bs.M, experts = 2 * routed * bs.N * bs.Ne * 2,
               readout = 2 * B * bs.N * 1;
  return (in + router + experts + readout) + (in + 2 * (router + experts + readout));
}

}  // namespace moedmft::bench
