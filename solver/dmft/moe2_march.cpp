// One replicate of the regime-II MoE DMFT: a single causal march over t = 0..T. Every term and its
// coefficient is listed in docs/dmft_moe_regime2.md section 3. Histories are [rows, n] with
// n = (T+1) P, time-major; expert neurons are rows m Ne + j (particle m, hidden neuron j).
#include <cmath>

#include "models/gating.hpp"
#include "models/network.hpp"
#include "solver/dmft/activation.hpp"
#include "solver/dmft/particle_march.hpp"

namespace moedmft::dmft {

void particle_gates(const ParticleSolveOptions& cfg, int K, const Mat<double>& psi, Mat<double>& ghat, Mat<double>& q,
                    std::vector<std::vector<int>>& selected) {
  const int E = static_cast<int>(psi.rows()), P = static_cast<int>(psi.cols());
  if (cfg.routing != Routing::topk) K = E;
  // Normalised gates divide by the particle mean (1/S_e) sum_selected q: gate_values' factor S_e
  // turns its sum over the selected into that mean.
  const double factor = cfg.normalised() ? double(E) : 1.0;
  ghat.setZero(E, P);
  q.setZero(E, P);
  selected.assign(P, {});
  std::vector<double> col(E), qs(K), gs(K);
  for (int mu = 0; mu < P; ++mu) {
    for (int m = 0; m < E; ++m) col[m] = psi(m, mu);
    std::vector<int>& sel = selected[mu];
    if (K < E) {
      select_topk(col.data(), E, K, sel);
    } else {
      sel.resize(E);
      for (int m = 0; m < E; ++m) sel[m] = m;
    }
    gate_values(cfg.gate, cfg.renormalize, factor, col.data(), sel, qs.data(), gs.data());
    for (int j = 0; j < K; ++j) {
      ghat(sel[j], mu) = gs[j];
      q(sel[j], mu) = qs[j];
    }
  }
}

Mat<double> particle_gate_backward(const ParticleSolveOptions& cfg, const Mat<double>& q, const Mat<double>& chi,
                                   const std::vector<std::vector<int>>& selected) {
  const int E = static_cast<int>(q.rows()), P = static_cast<int>(q.cols());
  const double factor = cfg.normalised() ? double(E) : 1.0;
  Mat<double> out = Mat<double>::Zero(E, P);
  std::vector<double> qs, dg, dpsi;
  for (int mu = 0; mu < P; ++mu) {
    const std::vector<int>& sel = selected[mu];
    const int K = static_cast<int>(sel.size());
    qs.resize(K);
    dg.resize(K);
    dpsi.resize(K);
    for (int j = 0; j < K; ++j) {
      qs[j] = q(sel[j], mu);
      dg[j] = chi(sel[j], mu);
    }
    gate_backward(cfg.gate, cfg.renormalize, factor, qs.data(), dg.data(), K, dpsi.data());
    for (int j = 0; j < K; ++j) out(sel[j], mu) = dpsi[j];
  }
  return out;
}

struct Moe2March : ParticleStream {
  const Moe2DmftConfig& cfg;
  const Moe2LimitConstants& c;
  const int Ne, EN;

  // particles: expert neurons (rows m Ne + j); At holds the gated activations ghat a2 that feed
  // expert2; Rho1 is the expert1 backward noise of the h1 neurons
  Mat<double> Rho1, Zeta1, At, Xt, G2h, Y2, GD2, Rho2, A20, KG2, Phit;
  CausalChol LG2, LPt;
  ExpertPairs experts;  // pair estimator: rows of M1 and columns of M2 are the expert neurons

  Moe2March(const Moe2DmftConfig& cf, const Mat<double>& xxt, const Vec<double>& yy)
      : ParticleStream(cf, cf.k, xxt, yy), cfg(cf), c(cf.k), Ne(cf.k.Ne), EN(cf.expert_samples * cf.k.Ne) {}

  void draw(uint64_t s) {
    seed = s;
    Rng rng(s);
    draw_h1(rng);
    Rho1 = neurons(n, rng, true);
    ZetaR = white(E, n, rng, false, false);
    Zeta1 = white(EN, n, rng, false, false);
    Rho2 = white(EN, T + 1, rng, false, false);
    draw_hagg(rng);
  }

  void allocate() {
    allocate_stream();
    for (Mat<double>* m : {&At, &Xt, &G2h, &Y2, &GD2}) m->setZero(EN, n);
    for (Mat<double>* m : {&KG2, &Phit}) m->setZero(n, n);
    for (CausalChol* l : {&LG2, &LPt}) l->init(n);
    if (cfg.pairs()) experts.allocate(EN, S);
  }

  // The init term W2(0)^T [ghat(k) a2(0)] of hagg: jointly Gaussian with the expert2 source of
  // the history, so it is the regression on that source's noise plus an independent residual,
  // plus its own forward response. Cv = <v a~> against the history, V = <v v>.
  Mat<double> init_term(const Mat<double>& v, const Mat<double>& Cv, int k) const {
    Mat<double> out = c.c_expert2 * regression_on_source(LPt, Zo, pop, v, Cv, k, P, seed);
    if (k > 0)
      out.noalias() +=
          (c.c_expert2 * std::sqrt(c.nu * Ne)) * (Zw.leftCols(k) * ((Rho2.leftCols(k).transpose() * v) / double(EN)));
    return out;
  }

  void run() {
    const double invEN = 1.0 / EN;
    const Population expert_neurons = whole_population(EN);
    const bool pairs = cfg.pairs();
    const double nuNe = c.nu * Ne, sqnuNe = std::sqrt(nuNe);
    Mat<double> a1k, d1k, a2k, d2k, ghat, q;
    std::vector<std::vector<int>> sel;
    for (int k = 0; k <= T; ++k) {
      const int K0 = k * P;
      h1_forward(k, a1k, d1k, Zeta1);
      const Mat<double> Phi1_past = phi1_past(k);

      // ---------------- particles: router logits, selection, gates
      const Mat<double> psi = route(k, a1k, Phi1_past, cfg.selected(), ghat, q, sel);

      // ---------------- particles: expert neurons
      Mat<double> u2 = c.c_expert1 * LPhi1.sample_block(Zeta1, K0, P);
      if (k > 0) {
        u2.noalias() += (c.c_expert1 / sqnuNe) * (Y2.leftCols(K0) * pop.mean(Rho1.leftCols(K0).transpose() * a1k));
        if (pairs) u2.noalias() += (c.lr_expert1 / S) * (experts.M1 * a1k);
        else u2.noalias() += c.lr_expert1 * (GD2.leftCols(K0) * Phi1_past);
      }
      act_both(cfg.phi, u2, a2k, d2k);
      if (k == 0) A20 = a2k;
      const Mat<double> gexp = per_neuron(ghat, Ne);
      const Mat<double> atk = a2k.cwiseProduct(gexp);
      At.middleCols(K0, P) = atk;
      kernel_row(atk, At, expert_neurons, K0, P, Phit, &LPt, cfg.jitter);
      LPt.kill_dead_noise(Zo, K0, P);
      LPt.whiten_block(At, Xt, K0, P);
      tr.gated[k] = Phit.block(K0, K0, P, P);
      tr.phi2[k] = (a2k.transpose() * a2k) * invEN;

      // ---------------- hagg: source + response (W2(0)^T a~) and update term (dW2^T a~)
      Mat<double> src = c.c_expert2 * LPt.sample_block(Zo, K0, P);
      Mat<double> learned = Mat<double>::Zero(S, P), eff = learned;
      const Mat<double> v = A20.cwiseProduct(gexp);  // ghat(k) a2(0): input of the init terms
      const Mat<double> Cv = (v.transpose() * At.leftCols(K0 + P)) * invEN;
      if (k > 0) {
        src.noalias() += (c.c_expert2 * sqnuNe) * (Zw.leftCols(k) * ((Rho2.leftCols(k).transpose() * atk) * invEN));
        if (pairs) {  // learned: against a~(k); effective: against ghat(k) a2(0)
          learned.noalias() = (c.lr_expert2 * nuNe * invEN) * (experts.M2 * atk);
          eff.noalias() = (c.lr_expert2 * nuNe * invEN) * (experts.M2 * v);
        } else {
          learned.noalias() = (c.lr_expert2 * nuNe) * (Zh.leftCols(k) * fold(Phit, K0, Wh, k, P));
          eff.noalias() = (c.lr_expert2 * nuNe) * (Zh.leftCols(k) * fold(Cv, 0, Wh, k, P));
        }
      }
      const Mat<double> init = c.c_expert2 != 0.0 ? init_term(v, Cv, k) : Mat<double>::Zero(S, P);
      const Mat<double> hagg = src + learned;
      const Vec<double> w = output(k, hagg);
      tr.agg.row(k) << std::sqrt(pop.mean_square(hagg)), std::sqrt(pop.mean_square(init)),
          std::sqrt(pop.mean_square(src - init)), std::sqrt(pop.mean_square(eff)),
          std::sqrt(pop.mean_square(learned - eff));
      tr.rms.row(k) << std::sqrt(pop.mean_square(a1k)), std::sqrt(mean_square(psi)), std::sqrt(mean_square(a2k)),
          std::sqrt(pop.mean_square(hagg));
      readout_history(k, Rho2);

      // ---------------- particles backward: b~ = (Gamma/M) W2(t) z(t) per expert neuron
      Vec<double> bt = (c.c_expert2 / sqnuNe) * Lz.sample_block(Rho2, k, 1).col(0);
      if (k > 0) {
        bt.noalias() += (c.c_expert2 / nuNe) * (Xt.leftCols(K0) * pop.mean(Zo.leftCols(K0).transpose() * Z));
        if (pairs) {
          bt.noalias() += (c.lr_expert2 / S) * (experts.M2.transpose() * Z);
        } else {
          Vec<double> cw(K0);
          for (int s = 0; s < k; ++s) cw.segment(s * P, P) = Cz(k, s) * Wh.segment(s * P, P);
          bt.noalias() += c.lr_expert2 * (At.leftCols(K0) * cw);
        }
      }
      const Mat<double> g2 = d2k.cwiseProduct(gexp).array().colwise() * bt.array();
      G2h.middleCols(K0, P) = g2;
      GD2.middleCols(K0, P) = g2.array().rowwise() * w.transpose().array();
      kernel_row(g2, G2h, expert_neurons, K0, P, KG2, &LG2, cfg.jitter);
      LG2.kill_dead_noise(Rho1, K0, P);
      LG2.whiten_block(G2h, Y2, K0, P);
      tr.g2[k] = KG2.block(K0, K0, P, P);
      // dL/dghat_m = -(w/N) chi_m with chi_m = sum_j a2_mj b~_mj; then the gate Jacobian
      Mat<double> chi(E, P);
      const Mat<double> ab = a2k.array().colwise() * bt.array();
      for (int m = 0; m < E; ++m) chi.row(m) = ab.middleRows(m * Ne, Ne).colwise().sum();
      const Mat<double> gr = particle_gate_backward(cfg, q, chi, sel);
      router_backward(k, gr, w);

      // ---------------- h1 backward: router terms, expert1 source, equal-time response, update
      Mat<double> back = router_back(k, gr);
      back.noalias() += (c.c_expert1 * sqnuNe) * LG2.sample_block(Rho1, K0, P);
      back.noalias() +=
          (c.c_expert1 * nuNe) * (X1.leftCols(K0 + P) * ((Zeta1.leftCols(K0 + P).transpose() * g2) * invEN));
      if (k > 0 && pairs)
        back.noalias() += (c.lr_expert1 * nuNe * invEN) * (experts.M1.transpose() * g2);
      else if (k > 0)
        back.noalias() += (c.lr_expert1 * nuNe) * (PD1.leftCols(K0) * KG2.block(K0, 0, P, K0).transpose());
      if (pairs) {  // starts the rule's step, before the stream's close_step
        steps.begin_step();
        experts.update(steps, GD2.middleCols(K0, P), a1k, atk * w, Z, c.eps_expert1, c.eps_expert2);
      }
      close_step(k, a1k, d1k, back, hagg, w);
    }
  }
};

Moe2Trace march_moe2_once(const Moe2DmftConfig& cfg, const Mat<double>& x, const Mat<double>& XXt, const Vec<double>& y,
                          uint64_t seed) {
  return march_once<Moe2March>(cfg, x, XXt, y, seed);
}

}  // namespace moedmft::dmft
