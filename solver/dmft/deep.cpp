// Deep (L >= 2) DMFT for full-batch GD: the single causal forward sweep (kernels, lower Cholesky
// factors and responses grown one time block per step from the persistent sample population) and
// the classic damped fixed-point iteration as an independent cross-check. Derivation: docs/dmft.md.
#include <algorithm>
#include <cmath>

#include "models/random.hpp"
#include "solver/dmft/activation.hpp"
#include "solver/dmft/causal.hpp"
#include "solver/dmft/deep_march.hpp"
#include "solver/dmft/dmft.hpp"
#include "solver/dmft/population.hpp"

namespace moedmft::dmft {

namespace {

// Layer a = 0..L-1 is hidden layer l = a + 1. Histories are [S, n], n = (T+1) P, time-major.
struct Layer {
  Mat<double> phi, dphi, g, gd, pd;  // phi(h), phi'(h), g = phi'(h) z, Delta o g, Delta o phi
  Mat<double> X;                     // phi history whitened by Lphi (a < L-1)
  Mat<double> Y;                     // g history whitened by LG (a >= 1)
  Mat<double> zeta;                  // white noise of the forward source u (a >= 1)
  Mat<double> rho;                   // white noise of the backward source r (a < L-1)
  CausalChol Lphi, LG;
};

// The previous iterate of the fixed point: full kernels, their factors, explicit responses.
struct Given {
  std::vector<Mat<double>> Kphi, KG, A, B;
  std::vector<CausalChol> Lphi, LG;
};

struct Deep {
  const DmftConfig& cfg;
  const Mat<double>& Kx;
  const Vec<double>& y;
  Population pop;  // this process's samples of all cfg.samples
  int S, P, T, L, n;  // S: the rows this process holds
  Mat<double> u1;
  Vec<double> z0;
  std::vector<Layer> ly;
  Trace tr;
  DeepTerms* terms = nullptr;  // null: SGD's kernel terms and updates

  // splittable = false: every sample stays here (the exact basis, which no rank may cut)
  Deep(const DmftConfig& c, const Mat<double>& kx, const Vec<double>& yy, bool splittable = true)
      : cfg(c), Kx(kx), y(yy),
        pop(splittable ? population(c.samples, "dmft.samples") : whole_population(c.samples)),
        S(pop.rows), P(static_cast<int>(kx.rows())), T(c.T), L(c.L), n((c.T + 1) * static_cast<int>(kx.rows())) {}

  // Sources: u^1 ~ N(0, K^x) and z^L(0) ~ N(0,1) as in the two-layer solver; white noises for
  // the hidden-layer sources. Antithetic partner: same forward noise, negated backward noise.
  void draw(uint64_t seed) {
    u1 = pop.mine(sample_fields(Kx, pop.S, seed, cfg.antithetic, &z0));
    z0 = pop.mine(std::move(z0));
    draw_noise(seed);
  }
  // The white noises alone (their stream does not depend on how u^1 and z^L(0) were drawn). All
  // S rows are drawn, and this process keeps its own.
  void draw_noise(uint64_t seed) {
    ly.assign(L, Layer{});
    Rng rng(mix_seed(seed, 0xD33Bull));
    for (int a = 0; a < L; ++a) {
      if (a >= 1) ly[a].zeta.resize(pop.S, n);
      if (a < L - 1) ly[a].rho.resize(pop.S, n);
    }
    for (int i = 0; i < pop.S; ++i) {
      const bool partner = cfg.antithetic && (i % 2 == 1);
      for (int a = 0; a < L; ++a) {
        if (a >= 1) {
          if (partner) ly[a].zeta.row(i) = ly[a].zeta.row(i - 1);
          else for (int j = 0; j < n; ++j) ly[a].zeta(i, j) = rng.normal();
        }
        if (a < L - 1) {
          if (partner) ly[a].rho.row(i) = -ly[a].rho.row(i - 1);
          else for (int j = 0; j < n; ++j) ly[a].rho(i, j) = rng.normal();
        }
      }
    }
    for (Layer& Ly : ly) {
      if (Ly.zeta.size()) Ly.zeta = pop.mine(std::move(Ly.zeta));
      if (Ly.rho.size()) Ly.rho = pop.mine(std::move(Ly.rho));
    }
  }

  // Exact linear solve (method exact): the population is sqrt(S) times an orthonormal basis of
  // the independent Gaussian sources (the P whitened components of u^1, z^L(0), and the white
  // noises of the hidden sources, S = P + 1 + 2 (L-1) n), so with phi = identity every field is
  // its coefficient vector and each population average (1/S) sum_i a_i b_i is the exact
  // expectation; the causal factors and Stein responses then hold exactly, no sampling.
  void draw_basis() {
    const double s = std::sqrt(double(S));
    u1 = Mat<double>::Zero(S, P);
    u1.topRows(P) = s * psd_cholesky(Kx).transpose();
    z0 = Vec<double>::Zero(S);
    z0(P) = s;
    ly.assign(L, Layer{});
    int off = P + 1;
    auto block = [&](Mat<double>& m) {
      m = Mat<double>::Zero(S, n);
      m.middleRows(off, n).diagonal().setConstant(s);
      off += n;
    };
    for (int a = 0; a < L; ++a) {
      if (a >= 1) block(ly[a].zeta);
      if (a < L - 1) block(ly[a].rho);
    }
  }

  // One march over t = 0..T. gv == nullptr: causal sweep; otherwise sources, responses and
  // feature-learning kernels come from the previous iterate gv (fixed point).
  void march(const Given* gv) {
    const double g0 = cfg.gamma0, step = cfg.eta * cfg.gamma0;
    for (int a = 0; a < L; ++a) {
      Layer& Ly = ly[a];
      for (Mat<double>* m : {&Ly.phi, &Ly.dphi, &Ly.g}) m->setZero(S, n);
      if (!terms) {  // the SGD kernel terms' histories
        Ly.gd.setZero(S, n);
        Ly.pd.setZero(S, n);
      }
      if (!gv && a < L - 1) {
        Ly.X.setZero(S, n);
        Ly.Lphi.init(n);
      }
      if (!gv && a >= 1) {
        Ly.Y.setZero(S, n);
        Ly.LG.init(n);
      }
    }
    tr = Trace{};
    tr.f.resize(T + 1, P);
    tr.loss.resize(T + 1);
    tr.Phi.assign(L, std::vector<Mat<double>>(T + 1));
    tr.G = tr.Phi;
    Mat<double> H1 = u1, h, hp, dh, z;
    Vec<double> zL = z0;
    for (int k = 0; k <= T; ++k) {
      const int K0 = k * P;
      // ---- forward pass
      act_both(cfg.phi, H1, hp, dh);
      ly[0].phi.middleCols(K0, P) = hp;
      ly[0].dphi.middleCols(K0, P) = dh;
      for (int a = 0; a + 1 < L; ++a) {
        Layer &lo = ly[a], &hi = ly[a + 1];
        const Mat<double> phik = lo.phi.middleCols(K0, P);
        Mat<double> Crow;  // Phi^l block row k, columns 0..K0+P
        if (!gv) {
          Crow = pop.mean(phik.transpose() * lo.phi.leftCols(K0 + P));
          lo.Lphi.extend(Crow, K0, P, cfg.jitter);
          lo.Lphi.kill_dead_noise(hi.zeta, K0, P);
          lo.Lphi.whiten_block(lo.phi, lo.X, K0, P);
          h = lo.Lphi.sample_block(hi.zeta, K0, P);
          tr.Phi[a][k] = Crow.middleCols(K0, P);
        } else {
          h = gv->Lphi[a].sample_block(hi.zeta, K0, P);
          tr.Phi[a][k] = pop.mean(phik.transpose() * phik);
        }
        if (k > 0) {
          if (!gv) {  // sum_{s<k} A(k,s) g(s) = (g L_G^{-T}) . E[rho phi(k)^T]   (Stein)
            const Mat<double> CA = pop.mean(lo.rho.leftCols(K0).transpose() * phik);
            if (cfg.responses) h.noalias() += hi.Y.leftCols(K0) * CA;
            if (terms) terms->forward(a, phik, h);
            else h.noalias() += step * (hi.gd.leftCols(K0) * Crow.leftCols(K0).transpose());
          } else {
            if (cfg.responses) h.noalias() += hi.g.leftCols(K0) * gv->A[a].block(K0, 0, P, K0).transpose();
            h.noalias() += step * (hi.gd.leftCols(K0) * gv->Kphi[a].block(K0, 0, P, K0).transpose());
          }
        }
        act_both(cfg.phi, h, hp, dh);
        hi.phi.middleCols(K0, P) = hp;
        hi.dphi.middleCols(K0, P) = dh;
      }
      const Mat<double> phiL = ly[L - 1].phi.middleCols(K0, P);
      tr.Phi[L - 1][k] = pop.mean(phiL.transpose() * phiL);
      const Vec<double> f = pop.mean_over(phiL.transpose() * zL, g0 * pop.S);
      const Vec<double> delta = y - f;
      tr.f.row(k) = f.transpose();
      tr.loss[k] = 0.5 * delta.squaredNorm();
      // ---- backward pass
      Layer& top = ly[L - 1];
      top.g.middleCols(K0, P) = top.dphi.middleCols(K0, P).array().colwise() * zL.array();
      for (int a = L - 2; a >= 0; --a) {
        Layer &lo = ly[a], &hi = ly[a + 1];
        const Mat<double> gk = hi.g.middleCols(K0, P);
        Mat<double> Crow;  // G^{l+1} block row k
        if (!gv) {
          Crow = pop.mean(gk.transpose() * hi.g.leftCols(K0 + P));
          hi.LG.extend(Crow, K0, P, cfg.jitter);
          hi.LG.kill_dead_noise(lo.rho, K0, P);
          hi.LG.whiten_block(hi.g, hi.Y, K0, P);
          z = hi.LG.sample_block(lo.rho, K0, P);
          tr.G[a + 1][k] = Crow.middleCols(K0, P);
          // sum_{s<=k} B(k,s) phi(s) = (phi L_Phi^{-T}) . E[zeta g(k)^T], equal time included
          const Mat<double> CB = pop.mean(hi.zeta.leftCols(K0 + P).transpose() * gk);
          if (cfg.responses) z.noalias() += lo.X.leftCols(K0 + P) * CB;
          if (k > 0 && terms) terms->backward(a, gk, z);
          else if (k > 0) z.noalias() += step * (lo.pd.leftCols(K0) * Crow.leftCols(K0).transpose());
        } else {
          z = gv->LG[a + 1].sample_block(lo.rho, K0, P);
          tr.G[a + 1][k] = pop.mean(gk.transpose() * gk);
          if (cfg.responses) z.noalias() += lo.phi.leftCols(K0 + P) * gv->B[a].block(K0, 0, P, K0 + P).transpose();
          if (k > 0) z.noalias() += step * (lo.pd.leftCols(K0) * gv->KG[a + 1].block(K0, 0, P, K0).transpose());
        }
        lo.g.middleCols(K0, P) = lo.dphi.middleCols(K0, P).cwiseProduct(z);
      }
      const Mat<double> g1 = ly[0].g.middleCols(K0, P);
      tr.G[0][k] = pop.mean(g1.transpose() * g1);
      for (int a = 0; a < L && !terms; ++a) {
        ly[a].gd.middleCols(K0, P) = ly[a].g.middleCols(K0, P).array().rowwise() * delta.transpose().array();
        ly[a].pd.middleCols(K0, P) = ly[a].phi.middleCols(K0, P).array().rowwise() * delta.transpose().array();
      }
      if (k == 0) {
        tr.ntk0 = Kx.cwiseProduct(tr.G[0][0]) + tr.Phi[L - 1][0];
        for (int a = 0; a + 1 < L; ++a) tr.ntk0 += tr.G[a + 1][0].cwiseProduct(tr.Phi[a][0]);
      }
      // ---- updates that close step k: h^1 and the readout (and an entrywise optimizer's state)
      if (terms) {
        std::vector<Mat<double>> phis(L), gs(L);
        for (int a = 0; a < L; ++a) {
          phis[a] = ly[a].phi.middleCols(K0, P);
          gs[a] = ly[a].g.middleCols(K0, P);
        }
        terms->close_step(phis, gs, delta, H1, zL);
        continue;
      }
      H1.noalias() += (step * cfg.lr_in) * (ly[0].gd.middleCols(K0, P) * Kx);
      zL.noalias() += step * (phiL * delta);
    }
  }

  void two_time() {
    tr.Phi_two.clear();
    tr.G_two.clear();
    for (int a = 0; a < L; ++a) {
      tr.Phi_two.push_back(pop.mean_over(ly[a].phi.transpose() * ly[a].phi, pop.S));
      tr.G_two.push_back(pop.mean_over(ly[a].g.transpose() * ly[a].g, pop.S));
    }
  }
};

// Full causal factor of a given kernel (block rows in order).
CausalChol factor(const Mat<double>& K, int P, double floor) {
  CausalChol c;
  const int n = static_cast<int>(K.rows());
  c.init(n);
  for (int K0 = 0; K0 < n; K0 += P) c.extend(K.block(K0, 0, P, K0 + P), K0, P, floor);
  return c;
}

// Keep blocks (t, s) with s < t (strict) or s <= t.
void causal_mask(Mat<double>& M, int P, bool strict) {
  const int nb = static_cast<int>(M.rows()) / P;
  for (int t = 0; t < nb; ++t)
    for (int s = strict ? t : t + 1; s < nb; ++s) M.block(t * P, s * P, P, P).setZero();
}

}  // namespace

int linear_basis_size(int L, int P, int T) { return P + 1 + 2 * (L - 1) * (T + 1) * P; }

Trace march_linear_basis(const DmftConfig& cfg_in, const Mat<double>& Kx, const Vec<double>& y) {
  DmftConfig cfg = cfg_in;
  cfg.samples = linear_basis_size(cfg.L, static_cast<int>(Kx.rows()), cfg.T);
  cfg.antithetic = false;
  // Innovations are exact here, so only round-off may be declared dead: a dropped pivot of
  // relative size d moves every average by O(d) (1e-10, the Monte Carlo default, showed up at
  // 3e-10 in the lazy-limit test).
  cfg.jitter = std::min(cfg.jitter, 1e-13);
  Deep d(cfg, Kx, y, false);
  d.draw_basis();
  d.march(nullptr);
  if (cfg.two_time_kernels) d.two_time();
  return std::move(d.tr);
}

Trace march_deep_with(const DmftConfig& cfg, const Mat<double>& Kx, const Vec<double>& y, Mat<double> u1,
                      Vec<double> z0, uint64_t noise_seed, DeepTerms* terms) {
  if (terms) refuse_sample_split("the pair estimator (dmft.L >= 2 with dmft.optimizer = signgd or adam)");
  Deep d(cfg, Kx, y);
  d.u1 = d.pop.mine(std::move(u1));
  d.z0 = d.pop.mine(std::move(z0));
  d.draw_noise(noise_seed);
  d.terms = terms;
  d.march(nullptr);
  if (cfg.two_time_kernels) d.two_time();
  return std::move(d.tr);
}

Trace march_deep(const DmftConfig& cfg, const Mat<double>& Kx, const Vec<double>& y, Mat<double> u1, Vec<double> z0,
                 uint64_t noise_seed) {
  return march_deep_with(cfg, Kx, y, std::move(u1), std::move(z0), noise_seed, nullptr);
}

Trace solve_deep_once(const DmftConfig& cfg, const Mat<double>& Kx, const Vec<double>& y, uint64_t seed) {
  Deep d(cfg, Kx, y);
  d.draw(seed);
  if (cfg.method == DeepMethod::sweep) {
    d.march(nullptr);
    if (cfg.two_time_kernels) d.two_time();
    return std::move(d.tr);
  }
  // Fixed point. Initial iterate: time-constant kernels from the t = 0 NNGP pass, zero responses.
  const int P = d.P, n = d.n, L = cfg.L, nb = cfg.T + 1;
  std::vector<Mat<double>> zeta0(L), rho0(L);
  for (int a = 0; a < L; ++a) {
    zeta0[a] = d.ly[a].zeta;
    rho0[a] = d.ly[a].rho;
  }
  {
    DmftConfig c0 = cfg;
    c0.T = 0;
    Deep d0(c0, Kx, y);
    d0.draw(mix_seed(seed, 77));
    d0.march(nullptr);
    d.tr = d0.tr;
  }
  Given gv;
  gv.Kphi.assign(L, Mat<double>());
  gv.KG = gv.A = gv.B = gv.Kphi;
  for (int a = 0; a < L; ++a) {
    gv.Kphi[a] = d.tr.Phi[a][0].replicate(nb, nb);
    gv.KG[a] = d.tr.G[a][0].replicate(nb, nb);
    gv.A[a] = gv.B[a] = Mat<double>::Zero(n, n);
  }
  std::vector<double> history;
  int it = 0;
  for (it = 1; it <= cfg.max_iter; ++it) {
    gv.Lphi.assign(L, CausalChol{});
    gv.LG.assign(L, CausalChol{});
    for (int a = 0; a < L; ++a) {
      d.ly[a].zeta = zeta0[a];
      d.ly[a].rho = rho0[a];
      if (a < L - 1) {
        gv.Lphi[a] = factor(gv.Kphi[a], P, cfg.jitter);
        gv.Lphi[a].kill_dead_noise(d.ly[a + 1].zeta, 0, n);
      }
      if (a >= 1) {
        gv.LG[a] = factor(gv.KG[a], P, cfg.jitter);
        gv.LG[a].kill_dead_noise(d.ly[a - 1].rho, 0, n);
      }
    }
    d.march(&gv);
    double num = 0, den = 0;
    auto mix = [&](Mat<double>& old, const Mat<double>& est) {
      num += (est - old).squaredNorm();
      den += est.squaredNorm();
      old = (1.0 - cfg.damping) * old + cfg.damping * est;
    };
    const Population& pop = d.pop;
    for (int a = 0; a < L; ++a) {
      const Layer& Ly = d.ly[a];
      mix(gv.Kphi[a], pop.mean(Ly.phi.transpose() * Ly.phi));
      mix(gv.KG[a], pop.mean(Ly.g.transpose() * Ly.g));
      if (a < L - 1) {  // responses by Stein's lemma against the factors used for sampling
        Mat<double> A = gv.LG[a + 1].right_solve_inverse(pop.mean(Ly.phi.transpose() * Ly.rho));
        causal_mask(A, P, true);
        Mat<double> B = gv.Lphi[a].right_solve_inverse(pop.mean(d.ly[a + 1].g.transpose() * d.ly[a + 1].zeta));
        causal_mask(B, P, false);
        gv.A[a] = (1.0 - cfg.damping) * gv.A[a] + cfg.damping * A;
        gv.B[a] = (1.0 - cfg.damping) * gv.B[a] + cfg.damping * B;
      }
    }
    history.push_back(std::sqrt(num / std::max(den, 1e-300)));
    if (history.back() < cfg.tol) break;
  }
  if (cfg.two_time_kernels) d.two_time();
  d.tr.history = history;
  d.tr.iterations = std::min(it, cfg.max_iter);
  return std::move(d.tr);
}

}  // namespace moedmft::dmft
