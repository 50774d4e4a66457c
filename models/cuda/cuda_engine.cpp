// Host side of the CUDA backend: validation, packing of Eigen matrices, optimizer
// hyperparameters (schedules, bias correction) and the TrainingEngine adapter. Compiled by the
// host C++ compiler; the device work is in device_moe.cu behind cuda_detail::DeviceMoe.
#include "models/cuda/cuda_engine.hpp"

#include <cmath>
#include <stdexcept>

#include "models/cuda/device_moe.hpp"

namespace moedmft {

namespace {

using cuda_detail::DeviceMoe;
using cuda_detail::DeviceShape;
using cuda_detail::RunConstants;
using cuda_detail::StepHyper;

static_assert(cuda_detail::kGroups == kNumGroups, "group tables must agree");
static_assert(int(Group::in) == cuda_detail::kIn && int(Group::router) == cuda_detail::kRouter &&
                  int(Group::expert1) == cuda_detail::kExpert1 && int(Group::expert2) == cuda_detail::kExpert2 &&
                  int(Group::out) == cuda_detail::kOut && int(Group::bias) == cuda_detail::kBias,
              "group order must agree");

bool same_shape(const Shape& a, const Shape& b) {
  return a.D == b.D && a.N == b.N && a.Ne == b.Ne && a.M == b.M && a.K == b.K && a.L == b.L && a.C == b.C;
}
bool same_options(const ModelOptions& a, const ModelOptions& b) {
  return a.routing == b.routing && a.gate == b.gate && a.selection == b.selection && a.renormalize == b.renormalize &&
         a.residual == b.residual && a.activation == b.activation && a.loss == b.loss;
}

template <class T>
DeviceShape device_shape(const MoeNetwork<T>& net, const OptimizerConfig& oc, const CudaOptions& co, int R) {
  const Shape& s = net.shape();
  const ModelOptions& o = net.options();
  DeviceShape d;
  d.R = R;
  d.D = s.D;
  d.N = s.N;
  d.Ne = s.Ne;
  d.M = s.M;
  d.K = s.K;
  d.L = s.L;
  d.C = s.C;
  d.routing = o.routing == Routing::topk ? 1 : 0;
  d.gate = o.gate == GateFn::sigmoid ? 0 : (o.gate == GateFn::softmax ? 1 : 2);
  d.selection = o.selection == Selection::biased_sigmoid ? 1 : 0;
  switch (o.activation) {
    case Activation::gelu: d.activation = 0; break;
    case Activation::tanh: d.activation = 1; break;
    case Activation::relu: d.activation = 2; break;
    case Activation::identity: d.activation = 3; break;
  }
  d.loss = o.loss == LossKind::cross_entropy ? 1 : 0;
  d.renormalize = o.renormalize;
  d.residual = o.residual;
  switch (oc.kind) {
    case OptimizerKind::sgd: d.optimizer = 0; break;
    case OptimizerKind::adam: d.optimizer = 1; break;
    case OptimizerKind::adamw: d.optimizer = 2; break;
    case OptimizerKind::signgd: d.optimizer = 3; break;
  }
  d.tf32 = co.tf32;
  d.device = co.device;
  return d;
}

RunConstants run_constants(const ResolvedParam& p) {
  RunConstants c;
  for (int g = 0; g < kNumGroups; ++g) c.multiplier[g] = p.groups[g].multiplier;
  c.gate_factor = p.gate_factor;
  c.aggregation = p.aggregation;
  c.residual_multiplier = p.residual_multiplier;
  return c;
}

}  // namespace

bool cuda_device_available(std::string* why) { return cuda_detail::device_available(why); }

template <class T>
struct CudaMultiRunEngine<T>::Impl {
  std::vector<MoeNetwork<T>*> nets;
  std::vector<OptimizerConfig> optims;
  std::vector<int> steps;              // optimizer steps taken per run
  bool balance = false;                // Jiang load balancing of the router bias
  std::unique_ptr<DeviceMoe<T>> dev;
  std::vector<std::vector<Vec<T>>> grads;
  std::vector<char> grads_stale;       // device holds newer gradients than grads[r]
  std::vector<char> has_grads;
  std::vector<T> xbuf, ybuf, fbuf;
  std::vector<int> lbuf;

  int R() const { return int(nets.size()); }

  void fetch_grads(int r) {
    auto& gr = grads[r];
    gr.resize(kNumGroups);
    for (int g = 0; g < kNumGroups; ++g) {
      gr[g].resize(dev->group_size(g));
      dev->download_grad(g, r, gr[g].data());
    }
    grads_stale[r] = 0;
  }
};

template <class T>
CudaMultiRunEngine<T>::CudaMultiRunEngine(const std::vector<MoeNetwork<T>*>& nets,
                                          const std::vector<OptimizerConfig>& optims, const CudaOptions& options)
    : impl_(std::make_unique<Impl>()) {
  if (nets.empty()) throw ConfigError("cuda: CudaMultiRunEngine needs at least one network");
  if (optims.size() != nets.size() && optims.size() != 1)
    throw ConfigError("cuda: CudaMultiRunEngine needs one OptimizerConfig, or one per network");
  const int R = int(nets.size());
  const MoeNetwork<T>& first = *nets[0];
  std::vector<RunConstants> constants;
  for (int r = 0; r < R; ++r) {
    const MoeNetwork<T>& net = *nets[r];
    const OptimizerConfig& oc = optims[optims.size() == 1 ? 0 : r];
    if (!same_shape(net.shape(), first.shape()))
      throw ConfigError("cuda: run " + std::to_string(r) + " has another shape; batched runs must share model.*");
    if (!same_options(net.options(), first.options()))
      throw ConfigError("cuda: run " + std::to_string(r) +
                        " has other model options (routing, gate, selection, activation, loss, renormalize, "
                        "residual); batched runs must share them");
    if (oc.kind != optims[0].kind)
      throw ConfigError("cuda: run " + std::to_string(r) + " uses optim.kind = " + to_string(oc.kind) +
                        " but run 0 uses " + to_string(optims[0].kind) + "; batched runs must share it");
    if (!(oc.beta1 >= 0 && oc.beta1 < 1)) throw ConfigError("optim.beta1: must lie in [0, 1)");
    if (!(oc.beta2 >= 0 && oc.beta2 < 1)) throw ConfigError("optim.beta2: must lie in [0, 1)");
    constants.push_back(run_constants(net.param()));
    impl_->nets.push_back(nets[r]);
    impl_->optims.push_back(oc);
  }
  impl_->steps.assign(R, 0);
  impl_->balance = first.options().selection == Selection::biased_sigmoid;
  impl_->dev = std::make_unique<DeviceMoe<T>>(device_shape(first, optims[0], options, R), constants);
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < kNumGroups; ++g) {
      const auto& p = nets[r]->params()[g];
      if (p.data.size() != impl_->dev->group_size(g))
        throw std::runtime_error("cuda: parameter " + p.name + " has an unexpected size");
      impl_->dev->upload(g, r, p.data.data());
    }
  impl_->grads.resize(R);
  impl_->grads_stale.assign(R, 0);
  impl_->has_grads.assign(R, 0);
}

template <class T>
CudaMultiRunEngine<T>::~CudaMultiRunEngine() = default;

template <class T>
int CudaMultiRunEngine<T>::runs() const {
  return impl_->R();
}

template <class T>
std::vector<double> CudaMultiRunEngine<T>::step(const Mat<T>& x, const Mat<T>& y, const std::vector<int>& labels,
                                                std::vector<Mat<T>>* f) {
  return step({&x}, {&y}, {&labels}, f);
}

template <class T>
std::vector<double> CudaMultiRunEngine<T>::step(const std::vector<const Mat<T>*>& xs,
                                                const std::vector<const Mat<T>*>& ys,
                                                const std::vector<const std::vector<int>*>& ls,
                                                std::vector<Mat<T>>* f) {
  Impl& im = *impl_;
  const int R = im.R();
  const Shape& s = im.nets[0]->shape();
  auto count_ok = [R](size_t n) { return n == 1 || n == size_t(R); };
  if (!count_ok(xs.size()) || !count_ok(ys.size()) || !(ls.empty() || count_ok(ls.size())))
    throw ConfigError("cuda: step() takes one batch shared by all runs or one per run");
  const int B = int(xs[0]->rows());
  if (B < 1) throw ConfigError("data.x: empty batch");
  for (const Mat<T>* x : xs)
    if (x->rows() != B || x->cols() != s.D)
      throw ConfigError("data.x: input dimension " + std::to_string(x->cols()) + " does not match model.D = " +
                        std::to_string(s.D) + " (or batches differ in size)");
  for (const Mat<T>* y : ys)
    if (y->rows() != B || y->cols() != s.C)
      throw ConfigError("data.y: targets are " + std::to_string(y->rows()) + "x" + std::to_string(y->cols()) +
                        " but the network outputs " + std::to_string(B) + "x" + std::to_string(s.C));
  bool have_labels = !ls.empty() && ls[0] && !ls[0]->empty();
  for (const auto* l : ls)
    if (have_labels && (!l || int(l->size()) != B)) throw ConfigError("data.labels: need one label per row");

  auto pack = [](const std::vector<const Mat<T>*>& ms, std::vector<T>& buf) -> const T* {
    if (ms.size() == 1) return ms[0]->data();  // row-major already
    const size_t per = size_t(ms[0]->size());
    buf.resize(per * ms.size());
    for (size_t r = 0; r < ms.size(); ++r) std::copy(ms[r]->data(), ms[r]->data() + per, buf.data() + r * per);
    return buf.data();
  };
  const T* xp = pack(xs, im.xbuf);
  const T* yp = pack(ys, im.ybuf);
  const int* lp = nullptr;
  if (have_labels) {
    if (ls.size() == 1) {
      lp = ls[0]->data();
    } else {
      im.lbuf.resize(size_t(B) * R);
      for (int r = 0; r < R; ++r) std::copy(ls[r]->begin(), ls[r]->end(), im.lbuf.begin() + size_t(r) * B);
      lp = im.lbuf.data();
    }
  }
  std::vector<double> losses(R);
  if (f) im.fbuf.resize(size_t(R) * B * s.C);
  im.dev->forward_loss(B, xp, xs.size() == 1, yp, ys.size() == 1, lp, ls.size() == 1, losses.data(),
                       f ? im.fbuf.data() : nullptr);
  if (f) {
    f->resize(R);
    for (int r = 0; r < R; ++r) {
      (*f)[r].resize(B, s.C);
      std::copy(im.fbuf.begin() + size_t(r) * B * s.C, im.fbuf.begin() + size_t(r + 1) * B * s.C, (*f)[r].data());
    }
  }

  std::vector<char> active(R);
  bool any = false;
  for (int r = 0; r < R; ++r) any |= (active[r] = std::isfinite(losses[r]) ? 1 : 0);
  if (!any) return losses;
  // The backward below overwrites every run's gradients: keep those of runs that diverged now.
  for (int r = 0; r < R; ++r)
    if (!active[r] && im.grads_stale[r]) im.fetch_grads(r);
  im.dev->backward();

  std::vector<StepHyper> hyper(size_t(R) * kNumGroups);
  std::vector<double> rates;
  for (int r = 0; r < R; ++r) {
    const OptimizerConfig& oc = im.optims[r];
    const ResolvedParam& p = im.nets[r]->param();
    const double schedule = oc.schedule.factor(im.steps[r]);
    const int t = im.steps[r] + (active[r] ? 1 : 0);
    const double c1 = 1.0 - std::pow(oc.beta1, std::max(t, 1)), c2 = 1.0 - std::pow(oc.beta2, std::max(t, 1));
    for (int g = 0; g < kNumGroups; ++g) {
      StepHyper& h = hyper[size_t(r) * kNumGroups + g];
      const ResolvedGroup& rg = p.groups[g];
      h.lr = double(T(rg.lr * schedule));  // the CPU rounds lr to T first
      h.wd = rg.weight_decay;
      h.eps = rg.eps;
      h.beta1 = oc.beta1;
      h.beta2 = oc.beta2;
      h.step_size = h.lr / c1;
      h.root2 = std::sqrt(c2);
    }
    if (active[r]) {
      im.steps[r] = t;
      im.grads_stale[r] = 1;
      im.has_grads[r] = 1;
    }
    if (im.balance) rates.push_back(p[Group::bias].lr);
  }
  im.dev->update(active, hyper, rates);
  return losses;
}

template <class T>
const std::vector<Vec<T>>& CudaMultiRunEngine<T>::gradients(int r) {
  Impl& im = *impl_;
  if (r < 0 || r >= im.R()) throw std::out_of_range("cuda: run index out of range");
  if (im.has_grads[r] && im.grads_stale[r]) im.fetch_grads(r);
  return im.grads[r];
}

template <class T>
const MoeNetwork<T>& CudaMultiRunEngine<T>::network(int r) {
  Impl& im = *impl_;
  if (r < 0 || r >= im.R()) throw std::out_of_range("cuda: run index out of range");
  for (int g = 0; g < kNumGroups; ++g) im.dev->download(g, r, im.nets[r]->params()[g].data.data());
  return *im.nets[r];
}

// ---------------------------------------------------------------------------------------------
// Single-run engine: the R = 1 case behind the TrainingEngine interface.

namespace {

template <class T>
class CudaEngine final : public TrainingEngine<T> {
 public:
  CudaEngine(MoeNetwork<T>& net, const OptimizerConfig& optim, const CudaOptions& options)
      : multi_({&net}, {optim}, options) {}
  double step(const Mat<T>& x, const Mat<T>& y, const std::vector<int>& labels, Mat<T>* f) override {
    if (!f) return multi_.step(x, y, labels, nullptr)[0];
    const double loss = multi_.step(x, y, labels, &f_)[0];
    f->swap(f_[0]);
    return loss;
  }
  const std::vector<Vec<T>>& last_gradients() override { return multi_.gradients(0); }
  const MoeNetwork<T>& network() override { return multi_.network(0); }

 private:
  CudaMultiRunEngine<T> multi_;
  std::vector<Mat<T>> f_;
};

}  // namespace

template <class T>
std::unique_ptr<TrainingEngine<T>> make_cuda_engine(MoeNetwork<T>& net, const OptimizerConfig& optim,
                                                    const CudaOptions& options) {
  return std::make_unique<CudaEngine<T>>(net, optim, options);
}

template class CudaMultiRunEngine<float>;
template class CudaMultiRunEngine<double>;
template std::unique_ptr<TrainingEngine<float>> make_cuda_engine<float>(MoeNetwork<float>&, const OptimizerConfig&,
                                                                        const CudaOptions&);
template std::unique_ptr<TrainingEngine<double>> make_cuda_engine<double>(MoeNetwork<double>&,
                                                                          const OptimizerConfig&, const CudaOptions&);

}  // namespace moedmft
