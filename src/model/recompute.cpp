#include "drifa/model/recompute.h"

#include <atomic>

#include <torch/torch.h>

#include "drifa/runtime/autocast.h"

namespace drifa {

namespace {

std::atomic<bool> g_recompute{false};

// The function travels to the backward pass in the autograd context (a capsule keeps it alive
// exactly as long as the graph node).
struct Holder : torch::CustomClassHolder {
  explicit Holder(Recomputable f) : f(std::move(f)) {}
  Recomputable f;
};

struct Recomputed : public torch::autograd::Function<Recomputed> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                                                c10::intrusive_ptr<Holder> holder, at::TensorList weights) {
    ctx->save_for_backward({x});
    ctx->saved_data["f"] = c10::IValue::make_capsule(holder);
    ctx->saved_data["weights"] = weights.vec();
    // Backward runs after the caller's autocast scope has closed: the maps are recomputed in the
    // precision the forward pass used, or the gradient would be of other (fp32) maps.
    ctx->saved_data["autocast"] = autocast_enabled(x.device());
    return holder->f(x);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list g) {
    const auto holder = c10::static_intrusive_pointer_cast<Holder>(ctx->saved_data["f"].toCapsule());
    const auto weights = ctx->saved_data["weights"].toTensorVector();
    const auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    torch::autograd::variable_list out;
    {
      torch::AutoGradMode on(true);
      AutocastGuard ac(ctx->saved_data["autocast"].toBool(), x.device());
      out = holder->f(x);
    }
    torch::autograd::variable_list wrt{x}, used_out, used_g;
    wrt.insert(wrt.end(), weights.begin(), weights.end());
    for (size_t i = 0; i < out.size(); ++i)
      if (g[i].defined() && out[i].requires_grad()) used_out.push_back(out[i]), used_g.push_back(g[i]);
    torch::autograd::variable_list grads(wrt.size());
    if (!used_out.empty())
      grads = torch::autograd::grad(used_out, wrt, used_g, /*retain_graph=*/false, /*create_graph=*/false, /*allow_unused=*/true);
    torch::autograd::variable_list result{grads[0], torch::Tensor()};  // x, the holder
    result.insert(result.end(), grads.begin() + 1, grads.end());
    return result;
  }
};

}  // namespace

void set_attention_recompute(bool on) { g_recompute = on; }
bool attention_recompute() { return g_recompute; }

std::vector<torch::Tensor> recomputed(const torch::Tensor& x, const std::vector<torch::Tensor>& weights, Recomputable f) {
  return Recomputed::apply(x, c10::make_intrusive<Holder>(std::move(f)), at::TensorList(weights));
}

}  // namespace drifa
