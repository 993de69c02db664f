#include "train/train_options.h"

#include <fmt/core.h>

#include "dist/communicator.h"
#include "kernels/backend.h"
#include "util/error.h"

namespace gptrain {

Device training_device(const TrainOptions& o) {
  const Device device = device_named(o.device);
  (void)kernels::backend_for(device, DType::F32);  // fails naming the device when it is not ready
  return device;
}

DType training_dtype(const TrainOptions& o) {
  if (o.dtype != "f32" && o.dtype != "bf16") fail("--dtype {}: f32 or bf16", o.dtype);
  const DType dtype = o.dtype == "bf16" ? DType::BF16 : DType::F32;
  (void)kernels::backend_for(device_named(o.device), dtype);  // fails naming the pair when there are no kernels
  return dtype;
}

nlohmann::json train_options_json(const TrainOptions& o) {
  nlohmann::json j = {{"drop-rate", o.drop_rate},
          {"batch-size", o.batch_size},
          {"lr", o.lr},
          {"weight-decay", o.weight_decay},
          {"no-decay-bias-norm", o.no_decay_bias_norm},
          {"epochs", o.epochs},
          {"max-steps", o.max_steps},
          {"eval-interval", o.eval_interval},
          {"eval-iters", o.eval_iters},
          {"warmup-steps", o.warmup_steps},
          {"initial-lr", o.initial_lr},
          {"lr-schedule", o.lr_schedule},
          {"min-lr", o.min_lr},
          {"grad-clip", o.grad_clip},
          {"grad-accum", o.grad_accum},
          {"save-interval", o.save_interval},
          {"keep-last", o.keep_last},
          {"seed", o.seed},
          {"threads", o.threads}};
  // A data-parallel run records its ranks (absent: 1, so single-process records read as before).
  if (const int ranks = dist::world().size(); ranks > 1) j["ranks"] = ranks;
  if (o.zero) j["zero"] = o.zero;
  // Recorded when not the defaults, so runs from before these options read back the same.
  if (o.device != "cpu") j["device"] = o.device;
  if (o.dtype != "f32") j["dtype"] = o.dtype;
  if (o.tf32) j["tf32"] = true;
  if (o.lora.enabled()) {
    j["lora-rank"] = o.lora.rank;
    j["lora-alpha"] = o.lora.alpha.value_or(static_cast<double>(o.lora.rank));
    j["lora-scaling"] = o.lora.scaling;
    j["lora-targets"] = o.lora.targets;
    j["lora-dropout"] = o.lora.dropout;
  }
  return j;
}

void print_run_options(const nlohmann::json& options) {
  for (auto it = options.begin(); it != options.end(); ++it)
    if (it.key() != "ranks") fmt::print("  --{} {}\n", it.key(), it.value().dump());
  if (options.contains("ranks")) fmt::print("  (ranks: {})\n", options["ranks"].dump());
}

const std::set<std::string>& train_options_may_change_on_resume() {
  // ranks and grad-accum may trade places as long as the micro-batches per step stay (run_dir.cpp);
  // checkpoints are device-independent, so a run may go on on another device.
  static const std::set<std::string> keys = {"epochs",     "max-steps", "eval-interval", "eval-iters",
                                             "save-interval", "keep-last", "threads",       "ranks",
                                             "grad-accum", "zero",      "device",        "tf32"};
  return keys;
}

nlohmann::json shape_options_json(const ShapeOverrides& s, bool with_tie_weights) {
  nlohmann::json j = {{"emb-dim", s.emb_dim}, {"n-layers", s.n_layers}, {"n-heads", s.n_heads}, {"qkv-bias", s.qkv_bias}};
  if (with_tie_weights) j["tie-weights"] = s.tie_weights;
  if (s.n_kv_heads) j["n-kv-heads"] = s.n_kv_heads;
  if (s.head_dim) j["head-dim"] = s.head_dim;
  if (s.mlp_dim) j["mlp-dim"] = s.mlp_dim;
  return j;
}

}  // namespace gptrain
