#include "cli/train_options_cli.h"

#include <fmt/format.h>

#include "cli/device_option.h"

namespace gptrain::cli {

void add_training_options(CLI::App* s, TrainOptions& o, const TrainOptionsHelp& help) {
  s->add_option("--drop-rate", o.drop_rate, "Dropout rate")->capture_default_str();
  s->add_option("--batch-size", o.batch_size, help.batch_size)->capture_default_str();
  s->add_option("--lr", o.lr, "Peak learning rate")->capture_default_str();
  s->add_option("--weight-decay", o.weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  s->add_flag("--no-decay-bias-norm", o.no_decay_bias_norm, "Exempt biases and LayerNorm parameters from decay");
  s->add_option("--epochs", o.epochs, help.epochs)->capture_default_str();
  s->add_option("--max-steps", o.max_steps, "Stop after this many optimizer steps (0: no limit)");
  s->add_option("--eval-interval", o.eval_interval, help.eval_interval)->capture_default_str();
  s->add_option("--eval-iters", o.eval_iters, help.eval_iters)->capture_default_str();
  s->add_option("--warmup-steps", o.warmup_steps, "Linear warmup steps from --initial-lr to --lr");
  s->add_option("--initial-lr", o.initial_lr, "Learning rate of the first warmup step");
  s->add_option("--lr-schedule", o.lr_schedule, "constant or cosine (decay to --min-lr after warmup)")
      ->capture_default_str()
      ->check(CLI::IsMember({"constant", "cosine"}));
  s->add_option("--min-lr", o.min_lr, "Final learning rate of the cosine decay");
  s->add_option("--grad-clip", o.grad_clip, "Clip gradients to this global L2 norm after warmup (0: off)");
  s->add_option("--grad-accum", o.grad_accum, "Micro-batches per optimizer step")->capture_default_str();
  s->add_option("--zero", o.zero,
                "1: shard AdamW's state across the ranks of a data-parallel run (ZeRO stage 1; checkpoints still hold "
                "all of it)")
      ->check(CLI::IsMember({0, 1}))
      ->capture_default_str();
}

void add_shape_options(CLI::App* s, ShapeOverrides& shape, bool with_tie_weights) {
  s->add_option("--emb-dim", shape.emb_dim, "Presets: override the embedding width");
  s->add_option("--n-layers", shape.n_layers, "Presets: override the number of blocks");
  s->add_option("--n-heads", shape.n_heads, "Presets: override the number of query heads");
  s->add_option("--n-kv-heads", shape.n_kv_heads,
                "Presets: override the key/value heads (grouped-query attention; must divide --n-heads)");
  s->add_option("--head-dim", shape.head_dim, "Presets: override the head size (default: the preset's, or width / heads)");
  s->add_option("--mlp-dim", shape.mlp_dim, "Presets: override the MLP's hidden width");
  s->add_flag("--qkv-bias", shape.qkv_bias, "Presets: biases on the query/key/value projections");
  if (with_tie_weights)
    s->add_flag("--tie-weights", shape.tie_weights, "Presets: share the output head with the token embedding");
}

void add_run_options(CLI::App* s, TrainOptions& o, const char* seed_help) {
  s->add_option("--save-interval", o.save_interval, "Steps between checkpoints (0: after every epoch)");
  s->add_option("--keep-last", o.keep_last, "Checkpoints to keep (0: all)")->capture_default_str();
  s->add_option("--seed", o.seed, seed_help)->capture_default_str();
  s->add_option("--threads", o.threads, "CPU threads (0: all cores)");
  add_device_option(s, o.device, o.tf32);
  add_dtype_option(s, o.dtype);
  s->add_flag("--resume", o.resume, "Continue the run in --out-dir from its newest complete checkpoint");
  s->add_flag("--overwrite", o.overwrite, "Replace a previous run in --out-dir");
  s->add_flag("--allow-changed-data", o.allow_changed_data,
              "With --resume: go on although a data file changed since the checkpoint (its size or sha256)");
}

void add_lora_options(CLI::App* s, TrainOptions& o) {
  CLI::Option* rank = s->add_option_function<int64_t>(
      "--lora-rank",
      [&o](const int64_t& r) {
        if (r < 1) throw CLI::ValidationError("--lora-rank", fmt::format("{}: the rank must be at least 1 (the book uses 16)", r));
        o.lora.rank = r;
      },
      "Train LoRA adapters of this rank on a frozen base (the book's appendix E: 16)");
  s->add_option_function<double>(
       "--lora-alpha",
       [&o](const double& a) {
         if (!(a > 0)) throw CLI::ValidationError("--lora-alpha", fmt::format("{}: alpha must be positive", a));
         o.lora.alpha = a;
       },
       "LoRA alpha [default: the rank]")
      ->needs(rank);
  s->add_option("--lora-scaling", o.lora.scaling,
                "rank: the update is scaled by alpha / rank (the book's code, PEFT); none: by alpha (the book's "
                "first text)")
      ->capture_default_str()
      ->check(CLI::IsMember({"rank", "none"}))
      ->needs(rank);
  s->add_option("--lora-targets", o.lora.targets,
                "default (every Linear of the blocks, and a classification head), all-linear, attention, mlp, or a "
                "comma list of query, key, value, attn_out, mlp_in, gate, up, mlp_out, head (or module names: "
                "c_attn, q_proj, v_proj, ...)")
      ->capture_default_str()
      ->needs(rank);
  s->add_option("--lora-dropout", o.lora.dropout, "Dropout on the adapters' inputs (PEFT's lora_dropout)")
      ->capture_default_str()
      ->needs(rank);
}

void default_trainable_for_lora(const CLI::App* s, const TrainOptions& o, std::string& trainable) {
  if (o.lora.enabled() && s->count("--trainable") == 0) trainable = "none";
}

}  // namespace gptrain::cli
