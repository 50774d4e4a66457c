// One replicate of the regime-III MoE DMFT: a single causal march over t = 0..T. Every term and
// its coefficient is derived in docs/dmft_moe_regime3.md section 3. Histories are [rows, n] with
// n = (T+1) P, time-major. Expert neurons are an S_e x S_n grid of (expert, neuron) pairs, row
// m S_n + j. The u2 and b~ source noises are drawn per pair (independent experts) or per neuron
// index j and shared by every expert (shared initial experts); `lift` spreads a per-source block
// over the pairs and `reduce` takes the pair block back to the sources (the expert mean at fixed
// j when shared), so every Stein estimate E_pairs[noise x field] is one product for both cases.
#include <cmath>

#include "models/gating.hpp"
#include "solver/dmft/activation.hpp"
#include "solver/dmft/moe3_march.hpp"
#include "solver/dmft/particle_march.hpp"

namespace moedmft::dmft {

struct Moe3March : ParticleStream {
  const Moe3DmftConfig& cfg;
  const Moe3LimitConstants& c;
  const int Sn, EN;
  const bool shared;
  const int src_rows;  // rows of the u2/b~ source noises: S_n (shared) or E S_n

  Mat<double> Rho1;  // shared init: the expert1 backward noise of the h1 neurons
  // (expert, neuron) pairs: source noises, gated activations a~ = ghat a2, gradients g2
  Mat<double> Zeta1, Rho2, At, G2h, GD2, A20, Phit, KG2;
  // shared initial experts: the expert means at fixed j (the shared expert-hidden process)
  Mat<double> Abar, Xbar, Phibar, Gbar, Ybar, KGbar;
  CausalChol LPbar, LGbar;
  ExpertPairs experts;  // pair estimator: rows of M1 and columns of M2 are the (expert, neuron) pairs

  Moe3March(const Moe3DmftConfig& cf, const Mat<double>& xxt, const Vec<double>& yy)
      : ParticleStream(cf, cf.k, xxt, yy), cfg(cf), c(cf.k), Sn(cf.neuron_samples),
        EN(cf.expert_samples * cf.neuron_samples), shared(cf.k.shared),
        src_rows(cf.k.shared ? cf.neuron_samples : cf.expert_samples * cf.neuron_samples) {}

  Mat<double> lift(const Mat<double>& src) const {
    if (!shared) return src;
    Mat<double> out(EN, src.cols());
    for (int m = 0; m < E; ++m) out.middleRows(m * Sn, Sn) = src;
    return out;
  }
  Mat<double> expert_mean(const Mat<double>& pairs) const {
    Mat<double> out = pairs.topRows(Sn);
    for (int m = 1; m < E; ++m) out += pairs.middleRows(m * Sn, Sn);
    return out / double(E);
  }
  Mat<double> reduce(const Mat<double>& pairs) const { return shared ? expert_mean(pairs) : pairs; }

  void draw(uint64_t s) {
    seed = s;
    Rng rng(s);
    const bool ant = cfg.antithetic;
    draw_h1(rng);
    ZetaR = white(E, n, rng, false, false);
    // Neuron pairs (j, j+1) share the u2 source and have opposite b~ sources: the b~ noise then
    // cancels exactly in the expert's sum chi = sum_j a2 b~ until learning correlates the two.
    Zeta1 = white(src_rows, n, rng, ant, false);
    Rho2 = white(src_rows, T + 1, rng, ant, true);
    draw_hagg(rng);
    if (shared) Rho1 = neurons(n, rng, true);
  }

  void allocate() {
    allocate_stream();
    for (Mat<double>* m : {&At, &G2h, &GD2}) m->setZero(EN, n);
    for (Mat<double>* m : {&Phit, &KG2}) m->setZero(n, n);
    if (shared) {
      for (Mat<double>* m : {&Abar, &Xbar, &Gbar, &Ybar}) m->setZero(Sn, n);
      for (Mat<double>* m : {&Phibar, &KGbar}) m->setZero(n, n);
      for (CausalChol* l : {&LPbar, &LGbar}) l->init(n);
    }
    if (cfg.pairs()) experts.allocate(EN, S);
  }

  // E_pairs[noise^T x field] over the first `cols` noise columns: the Stein estimate of a response.
  Mat<double> stein(const Mat<double>& noise, int cols, const Mat<double>& pair_field) const {
    return (noise.leftCols(cols).transpose() * reduce(pair_field)) / double(src_rows);
  }

  void run() {
    const double invEN = 1.0 / EN, invSn = 1.0 / Sn;
    const Population pairs = whole_population(EN), expert_means = whole_population(Sn);
    const bool use_pairs = cfg.pairs();
    const double rho = c.rho, sqrho = std::sqrt(rho), G = c.gate;
    Mat<double> a1k, d1k, a2k, d2k, ghat, q;
    std::vector<std::vector<int>> sel;
    for (int k = 0; k <= T; ++k) {
      const int K0 = k * P;
      h1_forward(k, a1k, d1k, Zeta1);
      const Mat<double> Phi1_past = phi1_past(k);

      // ---------------- particles: router logits, selection, gates (as in regime II)
      const Mat<double> psi = route(k, a1k, Phi1_past, cfg.selected(), ghat, q, sel);

      // ---------------- expert neurons: W1(0) source, shared response, update
      Mat<double> u2 = lift(c.c_expert1 * LPhi1.sample_block(Zeta1, K0, P));
      if (k > 0) {
        if (use_pairs) u2.noalias() += (c.lr_expert1 / S) * (experts.M1 * a1k);
        else u2.noalias() += c.lr_expert1 * (GD2.leftCols(K0) * Phi1_past);
        if (shared)
          u2 += lift((c.c_expert1 / sqrho) * (Ybar.leftCols(K0) * pop.mean(Rho1.leftCols(K0).transpose() * a1k)));
      }
      act_both(cfg.phi, u2, a2k, d2k);
      if (k == 0) A20 = a2k;
      const Mat<double> gexp = per_neuron(ghat, Sn);
      const Mat<double> atk = a2k.cwiseProduct(gexp);
      At.middleCols(K0, P) = atk;
      kernel_row(atk, At, pairs, K0, P, Phit, nullptr, cfg.jitter);
      tr.gated[k] = Phit.block(K0, K0, P, P);
      tr.phi2[k] = (a2k.transpose() * a2k) * invEN;
      if (shared) {
        Abar.middleCols(K0, P) = expert_mean(atk);
        kernel_row(Abar.middleCols(K0, P), Abar, expert_means, K0, P, Phibar, &LPbar, cfg.jitter);
        LPbar.kill_dead_noise(Zo, K0, P);
        LPbar.whiten_block(Abar, Xbar, K0, P);
      }

      // ---------------- hagg: W2(0) source (shared only) + forward response, update term
      const double c_src = G * c.c_expert2, c_resp = G * c.c_expert2 * sqrho;
      Mat<double> src = shared ? Mat<double>(c_src * LPbar.sample_block(Zo, K0, P)) : Mat<double>::Zero(S, P);
      Mat<double> learned = Mat<double>::Zero(S, P), eff = learned;
      const Mat<double> v = A20.cwiseProduct(gexp);  // ghat(k) a2(0): input of the init terms
      const Mat<double> Cv = (v.transpose() * At.leftCols(K0 + P)) * invEN;
      if (k > 0) {
        src.noalias() += c_resp * (Zw.leftCols(k) * stein(Rho2, k, atk));
        if (use_pairs) {  // learned: against a~(k); effective: against ghat(k) a2(0)
          learned.noalias() = (c.lr_expert2 * invEN) * (experts.M2 * atk);
          eff.noalias() = (c.lr_expert2 * invEN) * (experts.M2 * v);
        } else {
          learned.noalias() = c.lr_expert2 * (Zh.leftCols(k) * fold(Phit, K0, Wh, k, P));
          eff.noalias() = c.lr_expert2 * (Zh.leftCols(k) * fold(Cv, 0, Wh, k, P));
        }
      }
      Mat<double> init = Mat<double>::Zero(S, P);
      if (shared && c.c_expert2 != 0.0) {
        const Mat<double> vbar = expert_mean(v);
        const Mat<double> Cvbar = (vbar.transpose() * Abar.leftCols(K0 + P)) * invSn;
        init = c_src * regression_on_source(LPbar, Zo, pop, vbar, Cvbar, k, P, seed);
        if (k > 0) init.noalias() += c_resp * (Zw.leftCols(k) * stein(Rho2, k, v));
      }
      const Mat<double> hagg = src + learned;
      const Vec<double> w = output(k, hagg);
      tr.agg.row(k) << std::sqrt(pop.mean_square(hagg)), std::sqrt(pop.mean_square(init)),
          std::sqrt(pop.mean_square(src - init)), std::sqrt(pop.mean_square(eff)),
          std::sqrt(pop.mean_square(learned - eff));
      tr.rms.row(k) << std::sqrt(pop.mean_square(a1k)), std::sqrt(mean_square(psi)), std::sqrt(mean_square(a2k)),
          std::sqrt(pop.mean_square(hagg));

      readout_history(k, Rho2);

      // ---------------- pairs backward: b~ = W2(t) z(t) per expert neuron
      Vec<double> bt = lift((c.c_expert2 / sqrho) * Lz.sample_block(Rho2, k, 1)).col(0);
      if (k > 0) {
        if (shared)
          bt += lift((c.c_expert2 / rho) * (Xbar.leftCols(K0) * pop.mean(Zo.leftCols(K0).transpose() * Z))).col(0);
        if (use_pairs) {
          bt.noalias() += (c.lr_expert2 / (G * rho) / S) * (experts.M2.transpose() * Z);
        } else {
          Vec<double> cw(K0);
          for (int s = 0; s < k; ++s) cw.segment(s * P, P) = Cz(k, s) * Wh.segment(s * P, P);
          bt.noalias() += (c.lr_expert2 / (G * rho)) * (At.leftCols(K0) * cw);
        }
      }
      const Mat<double> g2 = d2k.cwiseProduct(gexp).array().colwise() * bt.array();
      G2h.middleCols(K0, P) = g2;
      GD2.middleCols(K0, P) = g2.array().rowwise() * w.transpose().array();
      kernel_row(g2, G2h, pairs, K0, P, KG2, nullptr, cfg.jitter);
      tr.g2[k] = KG2.block(K0, K0, P, P);
      if (shared) {
        Gbar.middleCols(K0, P) = expert_mean(g2);
        kernel_row(Gbar.middleCols(K0, P), Gbar, expert_means, K0, P, KGbar, &LGbar, cfg.jitter);
        LGbar.kill_dead_noise(Rho1, K0, P);
        LGbar.whiten_block(Gbar, Ybar, K0, P);
      }
      // dL/dghat_m = -(w/N) chi_m, chi_m = (Gamma/M) sum_j a2_mj b~_mj = Gamma (rho/nu) E_j[a2 b~]
      Mat<double> chi(E, P);
      const Mat<double> ab = a2k.array().colwise() * bt.array();
      for (int m = 0; m < E; ++m) chi.row(m) = ab.middleRows(m * Sn, Sn).colwise().mean();
      chi *= G * rho / c.nu;
      const Mat<double> gr = particle_gate_backward(cfg, q, chi, sel);
      router_backward(k, gr, w);

      // ---------------- h1 backward: router terms, expert1 response (+ source when shared), update
      Mat<double> back = router_back(k, gr);
      back.noalias() += (c.c_expert1 * G * rho) * (X1.leftCols(K0 + P) * stein(Zeta1, K0 + P, g2));
      if (shared) back.noalias() += (c.c_expert1 * G * sqrho) * LGbar.sample_block(Rho1, K0, P);
      if (k > 0 && use_pairs)
        back.noalias() += (c.lr_expert1 * G * rho * invEN) * (experts.M1.transpose() * g2);
      else if (k > 0)
        back.noalias() += (c.lr_expert1 * G * rho) * (PD1.leftCols(K0) * KG2.block(K0, 0, P, K0).transpose());
      if (use_pairs) {  // starts the rule's step, before the stream's close_step
        steps.begin_step();
        experts.update(steps, GD2.middleCols(K0, P), a1k, atk * w, Z, c.eps_expert1, c.eps_expert2);
      }
      close_step(k, a1k, d1k, back, hagg, w);
    }
  }
};

Moe2Trace march_moe3_once(const Moe3DmftConfig& cfg, const Mat<double>& x, const Mat<double>& XXt, const Vec<double>& y,
                          uint64_t seed) {
  return march_once<Moe3March>(cfg, x, XXt, y, seed);
}

}  // namespace moedmft::dmft
