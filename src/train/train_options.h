// The options every training command (pretrain, finetune-cls, finetune-instruct) shares: the run
// dir, dropout and batch size, AdamW, the loop, its learning-rate schedule and checkpoints. Each
// command's options derive from TrainOptions and set the book's defaults for that chapter in their
// constructor; the CLI registers these options once (cli/train_options_cli.h).
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/lora.h"
#include "tensor/tensor.h"

namespace gptrain {

struct TrainOptions {
  std::string out_dir;
  double drop_rate = 0.0;
  int64_t batch_size = 8;
  double lr = 5e-5;
  double weight_decay = 0.1;
  bool no_decay_bias_norm = false;
  int64_t epochs = 1;
  int64_t max_steps = 0;  // 0: no limit
  int64_t eval_interval = 5;
  int64_t eval_iters = 5;
  int64_t warmup_steps = 0;
  double initial_lr = 0.0;
  std::string lr_schedule = "constant";  // constant | cosine
  double min_lr = 0.0;
  double grad_clip = 0.0;  // 0: off
  int64_t grad_accum = 1;
  int zero = 0;  // 1: AdamW's state sharded across the ranks (ZeRO stage 1)
  int64_t save_interval = 0;  // 0: after every epoch
  int keep_last = 2;
  uint64_t seed = 123;
  int threads = 0;  // 0: all cores
  std::string device = "cpu";  // cpu | cuda (cli/device_option.h makes it ready)
  std::string dtype = "f32";
  bool tf32 = false;  // --tf32: the f32 mode's products on TF32 tensor cores (CUDA)
  bool resume = false;
  bool overwrite = false;
  bool allow_changed_data = false;  // a resume may go on although a data file's size or sha256 changed
  LoraOptions lora;  // --lora-*: low-rank adapters on a frozen base (the book's appendix E)
};

// The device of --device, with its backend registered (cli/device_option.h); an error when it is
// not.
Device training_device(const TrainOptions& o);
// The compute type of --dtype (F32, or BF16: the bf16 mode), checked to have kernels on --device.
DType training_dtype(const TrainOptions& o);

// The shared options as run.json and checkpoints record them (CLI spelling; out-dir, resume and
// overwrite are not part of a run's identity). The --lora-* options appear only when LoRA is on,
// so runs from before they existed read back the same.
nlohmann::json train_options_json(const TrainOptions& o);

// The shape overrides as run.json records them: emb-dim, n-layers, n-heads, qkv-bias (and
// tie-weights when with_tie_weights) always; n-kv-heads, head-dim and mlp-dim only when set, so
// runs from before those options existed read back the same.
nlohmann::json shape_options_json(const ShapeOverrides& s, bool with_tie_weights);

// Prints a run's options as the command line spells them ("  --lr 0.0004"), one per line; what the
// run records besides its options (the ranks of a data-parallel run) comes last, as a note.
void print_run_options(const nlohmann::json& options);

// Shared options a resumed run may change: they do not alter what the next steps compute, except
// that under --lr-schedule cosine --epochs and --max-steps set the schedule's length, so a resume refuses
// to change them there (run_dir.cpp; review defect F1).
const std::set<std::string>& train_options_may_change_on_resume();

}  // namespace gptrain
