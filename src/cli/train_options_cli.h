// Registers the options every training command shares (train/train_options.h) on a subcommand,
// with that command's defaults shown in --help and its own wording where the meaning differs.
#pragma once

#include <CLI/CLI.hpp>

#include "model/config.h"
#include "train/train_options.h"

namespace gptrain::cli {

struct TrainOptionsHelp {
  const char* batch_size = "Sequences per micro-batch";
  const char* epochs = "Passes over the training data";
  const char* eval_interval = "Steps between evaluations";
  const char* eval_iters = "Batches per evaluation";
};

// --drop-rate, --batch-size, AdamW (--lr, --weight-decay, --no-decay-bias-norm), the loop (--epochs,
// --max-steps, --eval-interval, --eval-iters) and the schedule (--warmup-steps, --initial-lr,
// --lr-schedule, --min-lr, --grad-clip, --grad-accum).
void add_training_options(CLI::App* s, TrainOptions& o, const TrainOptionsHelp& help = {});

// --emb-dim, --n-layers, --n-heads, --n-kv-heads, --head-dim, --mlp-dim, --qkv-bias and (when
// with_tie_weights) --tie-weights, each described as reshaping a preset.
void add_shape_options(CLI::App* s, ShapeOverrides& shape, bool with_tie_weights = true);

// --save-interval, --keep-last, --seed (described by seed_help), --threads, --resume, --overwrite.
void add_run_options(CLI::App* s, TrainOptions& o, const char* seed_help);

// --lora-rank, --lora-alpha, --lora-scaling, --lora-targets, --lora-dropout (model/lora.h). The
// others without --lora-rank, or a rank below 1, are refused when the command line is parsed.
void add_lora_options(CLI::App* s, TrainOptions& o);
// With --lora-rank and no --trainable on the command line, only the adapters learn ("none").
void default_trainable_for_lora(const CLI::App* s, const TrainOptions& o, std::string& trainable);

}  // namespace gptrain::cli
