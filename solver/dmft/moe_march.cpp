// One replicate of the regime-I MoE DMFT: a single causal march over t = 0..T (docs/dmft_moe.md
// section 3 lists every term with its coefficient). Histories are [S, n], n = (T+1) P, time-major.
#include <cmath>

#include "models/gating.hpp"
#include "models/network.hpp"
#include "models/random.hpp"
#include "solver/dmft/activation.hpp"
#include "solver/dmft/causal.hpp"
#include "solver/dmft/entrywise.hpp"
#include "solver/dmft/moe_march.hpp"
#include "solver/dmft/noise.hpp"
#include "solver/dmft/population.hpp"

namespace moedmft::dmft {


struct MoeMarch {
  const MoeDmftConfig& cfg;
  const MoeLimitConstants& c;
  const Mat<double>& XXt;  // x x^T (raw)
  const Vec<double>& y;
  Population pop;     // this process's samples of all cfg.samples
  int S, P, T, M, n;  // S: the rows this process holds

  // residual neurons of h1
  Mat<double> U1, A1, PD1, X1, R;
  std::vector<Mat<double>> Rho1;  // per expert: backward noise of the expert1 source
  CausalChol LPhi1;
  Mat<double> Phi1;
  // hidden neurons of each expert
  std::vector<Mat<double>> A2, G2h, GD2, PD2, X2, Y2, Zeta, Eps;
  std::vector<CausalChol> LPhi2, LG2;
  std::vector<Mat<double>> Phi2, G2;
  // neurons of hagg
  std::vector<Mat<double>> Zo, Chi0;  // forward noise of the expert2 sources; o_m source at t = 0
  Vec<double> Z;
  Mat<double> Zh, Zw, Cz;
  CausalChol Lz;
  // per-token weights w(nu, s) g_m(nu, s) over the history, per expert
  std::vector<Vec<double>> WG;
  std::vector<char> touched;
  // Pair estimator (cfg.pairs(), section 8 of docs/dmft_moe.md): per expert the sums of update
  // directions of expert1, M1 [hidden j, h1 neuron i], and of expert2, M2 [hagg neuron i,
  // hidden j], with Adam's moments per pair; the per-neuron groups' moments.
  const Mat<double>* x = nullptr;  // [P, D]
  std::vector<ExpertPairs> experts;
  Mat<double> m_router, v_router;
  EntrywiseSteps steps;

  MoeTrace tr;

  MoeMarch(const MoeDmftConfig& cf, const Mat<double>& xxt, const Vec<double>& yy)
      : cfg(cf), c(cf.k), XXt(xxt), y(yy), pop(population(cf.samples, "dmft.samples")), S(pop.rows),
        P(static_cast<int>(xxt.rows())), T(cf.T), M(cf.M), n((cf.T + 1) * static_cast<int>(xxt.rows())),
        steps(cf.optimizer, cf.beta1, cf.beta2) {
    if (cf.pairs()) refuse_sample_split("the regime-I pair estimator (optim.kind = signgd or adam)");
  }

  // All samples are drawn from the stream; this process keeps its rows.
  Mat<double> white_mine(int cols, Rng& rng, bool negate_partner) const {
    return pop.mine(white(pop.S, cols, rng, cfg.antithetic, negate_partner));
  }

  void draw(uint64_t seed) {
    Rng rng(seed);
    // u1(0) ~ N(0, sigma_in^2 x x^T): same field in a pair, router weights and readout negated.
    Mat<double> Lx = Eigen::LLT<Mat<double>>(XXt + 1e-12 * XXt.diagonal().maxCoeff() * Mat<double>::Identity(P, P))
                         .matrixL();
    U1 = white_mine(P, rng, false) * Lx.transpose() * c.sigma_in;
    R = white_mine(M, rng, true) * c.c_router;
    Rho1.clear();
    Zeta.clear();
    Eps.clear();
    Zo.clear();
    for (int m = 0; m < M; ++m) {
      Rho1.push_back(white_mine(n, rng, true));
      Zeta.push_back(white_mine(n, rng, false));
      Eps.push_back(white_mine(T + 1, rng, true));
      Zo.push_back(white_mine(n, rng, false));
    }
    Z = white_mine(1, rng, true).col(0) * c.c_out;
  }

  void allocate() {
    for (Mat<double>* m : {&A1, &PD1, &X1}) m->setZero(S, n);
    Phi1.setZero(n, n);
    LPhi1.init(n);
    A2.assign(M, Mat<double>::Zero(S, n));
    G2h = GD2 = PD2 = X2 = Y2 = A2;
    Phi2.assign(M, Mat<double>::Zero(n, n));
    G2 = Phi2;
    LPhi2.assign(M, CausalChol{});
    LG2 = LPhi2;
    for (int m = 0; m < M; ++m) {
      LPhi2[m].init(n);
      LG2[m].init(n);
    }
    Chi0.assign(M, Mat<double>());
    Zh.setZero(S, T + 1);
    Zw.setZero(S, T + 1);
    Cz.setZero(T + 1, T + 1);
    Lz.init(T + 1);
    WG.assign(M, Vec<double>::Zero(n));
    touched.assign(M, 0);
    if (cfg.pairs()) {
      experts.assign(M, ExpertPairs{});
      for (ExpertPairs& e : experts) e.allocate(S, S);
    }
    tr = MoeTrace{};
    tr.f.resize(T + 1, P);
    tr.loss.resize(T + 1);
    tr.psi.setZero(T + 1, M * P);
    tr.gates.setZero(T + 1, M * P);
    tr.load.setZero(T + 1, M);
    tr.agg.setZero(T + 1, 5);
    tr.rms.setZero(T + 1, 3);
    tr.phi1.assign(T + 1, Mat<double>());
    tr.phi2 = tr.g2 = tr.phi1;
  }

  // Sum over the first k time blocks of a kernel row block weighted per token:
  // V(s, mu) = sum_nu Kern(row0 + mu, s P + nu) wg(s P + nu), s < k.
  Mat<double> fold(const Mat<double>& kern, int row0, const Vec<double>& wg, int k) const {
    Mat<double> V(k, P);
    for (int s = 0; s < k; ++s)
      V.row(s) = (kern.block(row0, s * P, P, P) * wg.segment(s * P, P)).transpose();
    return V;
  }

  void run() {
    const double sq_ratio = std::sqrt(c.ratio), invS = 1.0 / S;
    const bool pairs = cfg.pairs();
    Mat<double> a1k, d1k;
    std::vector<int> sel;
    std::vector<double> q(M), g(M), dg(M), dpsi(M);
    for (int k = 0; k <= T; ++k) {
      const int K0 = k * P;
      // ---------------- forward: h1
      act_both(cfg.phi, U1, a1k, d1k);
      A1.middleCols(K0, P) = a1k;
      {
        const Mat<double> Crow = pop.mean(a1k.transpose() * A1.leftCols(K0 + P));
        Phi1.block(K0, 0, P, K0 + P) = Crow;
        Phi1.block(0, K0, K0 + P, P) = Crow.transpose();
        LPhi1.extend(Crow, K0, P, cfg.jitter);
        for (int m = 0; m < M; ++m) LPhi1.kill_dead_noise(Zeta[m], K0, P);
        LPhi1.whiten_block(A1, X1, K0, P);
      }
      tr.phi1[k] = Phi1.block(K0, K0, P, P);
      // router logits and gates (an expert that never received signal keeps psi = 0 exactly:
      // its router column is independent of h1 in the limit)
      Mat<double> psik = pop.mean(R.transpose() * a1k);  // [M, P]
      for (int m = 0; m < M; ++m)
        if (!touched[m]) psik.row(m).setZero();
      Mat<double> gk = Mat<double>::Zero(M, P), qk = Mat<double>::Zero(M, P);
      std::vector<std::vector<int>> selk(P);
      for (int mu = 0; mu < P; ++mu) {
        std::vector<double> col(M);
        for (int m = 0; m < M; ++m) col[m] = psik(m, mu);
        if (cfg.routing == Routing::topk) {
          select_topk(col.data(), M, cfg.K, sel);
        } else {
          sel.resize(M);
          for (int m = 0; m < M; ++m) sel[m] = m;
        }
        gate_values(cfg.gate, cfg.renormalize, c.gate, col.data(), sel, q.data(), g.data());
        for (size_t j = 0; j < sel.size(); ++j) {
          gk(sel[j], mu) = g[j];
          qk(sel[j], mu) = q[j];
          tr.load(k, sel[j]) += 1.0 / P;
        }
        selk[mu] = sel;
      }
      for (int m = 0; m < M; ++m) {
        tr.psi.block(k, m * P, 1, P) = psik.row(m);
        tr.gates.block(k, m * P, 1, P) = gk.row(m);
      }
      // ---------------- forward: experts' hidden neurons, then hagg
      std::vector<Mat<double>> a2k(M), d2k(M);
      Mat<double> hagg = Mat<double>::Zero(S, P), chi(M, P);
      Mat<double> t_init = hagg, t_prop = hagg, t_eff = hagg, t_cross = hagg;
      double a_ms = 0, o_ms = 0;
      for (int m = 0; m < M; ++m) {
        Mat<double> u2 = c.c_expert1 * LPhi1.sample_block(Zeta[m], K0, P);
        if (k > 0) {
          // forward response of the reused W1(0): c1 sqrt(N/Ne) (g2 whitened) E[rho1 a1(k)^T]
          const Mat<double> CA = pop.mean(Rho1[m].leftCols(K0).transpose() * a1k);
          u2.noalias() += (c.c_expert1 / sq_ratio) * (Y2[m].leftCols(K0) * CA);
          if (pairs) u2.noalias() += (c.lr_expert1 * invS) * (experts[m].M1 * a1k);
          else u2.noalias() += c.lr_expert1 * (GD2[m].leftCols(K0) * Phi1.block(K0, 0, P, K0).transpose());
        }
        act_both(cfg.phi, u2, a2k[m], d2k[m]);
        a_ms += pop.mean_square(a2k[m]) / M;
        A2[m].middleCols(K0, P) = a2k[m];
        const Mat<double> Crow = pop.mean(a2k[m].transpose() * A2[m].leftCols(K0 + P));
        Phi2[m].block(K0, 0, P, K0 + P) = Crow;
        Phi2[m].block(0, K0, K0 + P, P) = Crow.transpose();
        LPhi2[m].extend(Crow, K0, P, cfg.jitter);
        LPhi2[m].kill_dead_noise(Zo[m], K0, P);
        LPhi2[m].whiten_block(A2[m], X2[m], K0, P);

        Mat<double> src = c.c_expert2 * LPhi2[m].sample_block(Zo[m], K0, P);
        Mat<double> fl = Mat<double>::Zero(S, P), eff = fl;
        if (k > 0) {
          // forward response of the reused W2(0) against the readout history
          const Mat<double> CA = pop.mean(Eps[m].leftCols(k).transpose() * a2k[m]);  // [k, P]
          src.noalias() += (c.c_expert2 * sq_ratio) * (Zw.leftCols(k) * CA);
          if (pairs) {  // learned: against a2(k); effective: against a2(0)
            fl.noalias() = (c.lr_expert2 * invS) * (experts[m].M2 * a2k[m]);
            eff.noalias() = (c.lr_expert2 * invS) * (experts[m].M2 * A2[m].leftCols(P));
          } else {
            fl.noalias() = c.lr_expert2 * (Zh.leftCols(k) * fold(Phi2[m], K0, WG[m], k));
            eff.noalias() = c.lr_expert2 * (Zh.leftCols(k) * fold(Phi2[m], 0, WG[m], k));
          }
        }
        if (k == 0) Chi0[m] = src;
        const Mat<double> o = src + fl;
        o_ms += pop.mean_square(o) / M;
        chi.row(m) = pop.mean(Z.transpose() * o);
        const auto gm = gk.row(m).array();
        hagg.array() += o.array().rowwise() * gm;
        t_init.array() += Chi0[m].array().rowwise() * gm;
        t_prop.array() += (src - Chi0[m]).array().rowwise() * gm;
        t_eff.array() += eff.array().rowwise() * gm;
        t_cross.array() += (fl - eff).array().rowwise() * gm;
      }
      const Vec<double> f = pop.mean(hagg.transpose() * Z);
      const Vec<double> delta = y - f;
      const Vec<double> w = (2.0 / P) * delta;
      tr.f.row(k) = f.transpose();
      tr.loss[k] = delta.squaredNorm() / P;
      tr.agg.row(k) << std::sqrt(pop.mean_square(hagg)), std::sqrt(pop.mean_square(t_init)),
          std::sqrt(pop.mean_square(t_prop)), std::sqrt(pop.mean_square(t_eff)), std::sqrt(pop.mean_square(t_cross));
      tr.rms.row(k) << std::sqrt(pop.mean_square(a1k)), std::sqrt(a_ms), std::sqrt(o_ms);
      for (int m = 0; m < M; ++m) WG[m].segment(K0, P) = w.cwiseProduct(gk.row(m).transpose());

      // ---------------- backward: readout history and its causal factor
      Zh.col(k) = Z;
      {
        const Mat<double> Crow = pop.mean(Z.transpose() * Zh.leftCols(k + 1));  // [1, k+1]
        Cz.block(k, 0, 1, k + 1) = Crow;
        Cz.block(0, k, k + 1, 1) = Crow.transpose();
        Lz.extend(Crow, k, 1, cfg.jitter);
        for (int m = 0; m < M; ++m) Lz.kill_dead_noise(Eps[m], k, 1);
        Lz.whiten_block(Zh, Zw, k, 1);
      }
      // experts' hidden neurons: g2 = phi'(u2) g_m(k) [q + responses + updates of W2]
      Mat<double> back = Mat<double>::Zero(S, P);
      Mat<double> g2_mean = Mat<double>::Zero(P, P);
      for (int m = 0; m < M; ++m) {
        Vec<double> qv = (c.c_expert2 / sq_ratio) * Lz.sample_block(Eps[m], k, 1).col(0);
        if (k > 0) {
          const Vec<double> CB = pop.mean(Zo[m].leftCols(K0).transpose() * Z);  // E[zeta_o z(k)]
          qv.noalias() += (c.c_expert2 / c.ratio) * (X2[m].leftCols(K0) * CB);
          if (pairs) {
            qv.noalias() += (c.lr_expert2 / c.ratio * invS) * (experts[m].M2.transpose() * Z);
          } else {
            Vec<double> v(K0);
            for (int s = 0; s < k; ++s) v.segment(s * P, P) = Cz(k, s) * WG[m].segment(s * P, P);
            qv.noalias() += c.lr_expert2 / c.ratio * (A2[m].leftCols(K0) * v);
          }
        }
        const Mat<double> g2 = d2k[m].array() * (qv * gk.row(m)).array();
        G2h[m].middleCols(K0, P) = g2;
        GD2[m].middleCols(K0, P) = g2.array().rowwise() * w.transpose().array();
        PD2[m].middleCols(K0, P) = a2k[m].array().rowwise() * w.transpose().array();
        const Mat<double> Crow = pop.mean(g2.transpose() * G2h[m].leftCols(K0 + P));
        G2[m].block(K0, 0, P, K0 + P) = Crow;
        G2[m].block(0, K0, K0 + P, P) = Crow.transpose();
        g2_mean += Crow.middleCols(K0, P) / M;
        LG2[m].extend(Crow, K0, P, cfg.jitter);
        LG2[m].kill_dead_noise(Rho1[m], K0, P);
        LG2[m].whiten_block(G2h[m], Y2[m], K0, P);
        // h1 neurons: source of W1(0)^T g2, its equal-time response, updates of W1
        back.noalias() += (c.c_expert1 * sq_ratio) * LG2[m].sample_block(Rho1[m], K0, P);
        const Mat<double> CB = pop.mean(Zeta[m].leftCols(K0 + P).transpose() * g2);
        back.noalias() += (c.c_expert1 * c.ratio) * (X1.leftCols(K0 + P) * CB);
        if (k > 0 && pairs) back.noalias() += (c.lr_expert1 * c.ratio * invS) * (experts[m].M1.transpose() * g2);
        else if (k > 0) back.noalias() += (c.lr_expert1 * c.ratio) * (PD1.leftCols(K0) * G2[m].block(K0, 0, P, K0).transpose());
      }
      tr.g2[k] = g2_mean;
      Mat<double> phi2_mean = Mat<double>::Zero(P, P);
      for (int m = 0; m < M; ++m) phi2_mean += Phi2[m].block(K0, K0, P, P) / M;
      tr.phi2[k] = phi2_mean;
      // router: dL/dpsi_m = -w pi_m with pi from the gate Jacobian applied to chi_m = <z o_m>
      Mat<double> pik = Mat<double>::Zero(M, P);
      for (int mu = 0; mu < P; ++mu) {
        const auto& s = selk[mu];
        const int kk = static_cast<int>(s.size());
        for (int j = 0; j < kk; ++j) {
          q[j] = qk(s[j], mu);
          dg[j] = chi(s[j], mu);
        }
        gate_backward(cfg.gate, cfg.renormalize, c.gate, q.data(), dg.data(), kk, dpsi.data());
        for (int j = 0; j < kk; ++j) pik(s[j], mu) = dpsi[j];
      }
      for (int m = 0; m < M; ++m)
        if (c.lr_router != 0.0 && pik.row(m).cwiseAbs().maxCoeff() > 0.0) touched[m] = 1;
      back.noalias() += R * pik;
      const Mat<double> g1 = d1k.cwiseProduct(back);
      PD1.middleCols(K0, P) = a1k.array().rowwise() * w.transpose().array();

      // ---------------- updates that close step k
      const Mat<double> g1w = g1.array().rowwise() * w.transpose().array();
      if (pairs) {
        close_entrywise(K0, a1k, a2k, g1w, pik, hagg, w);
        continue;
      }
      U1.noalias() += c.lr_in * (g1w * XXt);
      R.noalias() += c.lr_router * (PD1.middleCols(K0, P) * pik.transpose());
      Z.noalias() += c.lr_out * (hagg * w);
    }
  }

  // The entrywise updates of step k (section 8): every group moves by its constant times the
  // direction u of its O(1) gradient entries; with u(c) = c these are the SGD updates above.
  void close_entrywise(int K0, const Mat<double>& a1k, const std::vector<Mat<double>>& a2k, const Mat<double>& g1w,
                       const Mat<double>& pik, const Mat<double>& hagg, const Vec<double>& w) {
    steps.begin_step();
    for (int m = 0; m < M; ++m)  // expert2's entries weight the tokens by w g_m
      experts[m].update(steps, GD2[m].middleCols(K0, P), a1k, a2k[m] * WG[m].segment(K0, P), Z, c.eps_expert1,
                        c.eps_expert2);
    steps.input(g1w, *x, c.lr_in, c.eps_in, U1);
    // router: per neuron, c_im = sum_mu w pi_m a1_i
    steps.entries.noalias() = PD1.middleCols(K0, P) * pik.transpose();
    steps.rule.direction(steps.entries, m_router, v_router, steps.dir, c.eps_router);
    R.noalias() += c.lr_router * steps.dir;
    steps.readout(hagg, w, c.lr_out, c.eps_out, Z);
  }
};

MoeTrace march_moe_once(const MoeDmftConfig& cfg, const Mat<double>& x, const Mat<double>& XXt, const Vec<double>& y,
                        uint64_t seed) {
  return march_once<MoeMarch>(cfg, x, XXt, y, seed);
}

}  // namespace moedmft::dmft
