// gptrain pretrain: every option of the job, defined once with its default (the book's ch05 run).
#include <memory>

#include "cli/commands.h"
#include "train/pretrain.h"

namespace gptrain::cli {

Command register_pretrain(CLI::App& app) {
  auto o = std::make_shared<PretrainOptions>();
  CLI::App* s = app.add_subcommand("pretrain", "Pretrain a GPT-2 model on text (default: the book's chapter 5 run)");
  s->add_option("files", o->files, "Text files (joined with <|endoftext|>), or one token shard (.u16/.u32) "
                                   "[default: the-verdict.txt from the data dir]");
  s->add_option("--val-data", o->val_data, "Validation text or token shard [default: the last part of the text]");
  s->add_option("--train-split", o->train_split, "Fraction of the characters for training")->capture_default_str();
  s->add_option("--data-dir", o->data_dir, "Data directory [default: $GPTRAIN_DATA_DIR or ../shared/data]");
  s->add_option("--shard-format", o->shard_format, "Token width of shards without a .u16/.u32 extension")
      ->check(CLI::IsMember({"u16", "u32"}));
  s->add_option("--out-dir", o->out_dir, "Run directory (metrics, plots, checkpoints, final model)")
      ->capture_default_str();
  s->add_option("--init", o->init, "Preset (gpt2-small, gpt2-medium, gpt2-large, gpt2-xl, scratch) or a model dir")
      ->capture_default_str();
  s->add_option("--context-length", o->context_length, "Tokens per training window")->capture_default_str();
  s->add_option("--stride", o->stride, "Step between windows [default: the context length]");
  s->add_option("--emb-dim", o->emb_dim, "Override the preset's embedding width");
  s->add_option("--n-layers", o->n_layers, "Override the preset's number of blocks");
  s->add_option("--n-heads", o->n_heads, "Override the preset's number of attention heads");
  s->add_flag("--qkv-bias", o->qkv_bias, "Biases on the query/key/value projections");
  s->add_flag("--tie-weights", o->tie_weights, "Share the output head with the token embedding");
  s->add_option("--drop-rate", o->drop_rate, "Dropout rate")->capture_default_str();
  s->add_option("--batch-size", o->batch_size, "Sequences per micro-batch")->capture_default_str();
  s->add_flag("--no-shuffle", o->no_shuffle, "Train on the windows in corpus order every epoch (default: a seeded shuffle per epoch)");
  s->add_option("--lr", o->lr, "Peak learning rate")->capture_default_str();
  s->add_option("--weight-decay", o->weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  s->add_flag("--no-decay-bias-norm", o->no_decay_bias_norm, "Exempt biases and LayerNorm parameters from decay");
  s->add_option("--epochs", o->epochs, "Passes over the training data")->capture_default_str();
  s->add_option("--max-steps", o->max_steps, "Stop after this many optimizer steps (0: no limit)");
  s->add_option("--eval-interval", o->eval_interval, "Steps between evaluations")->capture_default_str();
  s->add_option("--eval-iters", o->eval_iters, "Batches per evaluation")->capture_default_str();
  s->add_option("--warmup-steps", o->warmup_steps, "Linear warmup steps from --initial-lr to --lr");
  s->add_option("--initial-lr", o->initial_lr, "Learning rate of the first warmup step");
  s->add_option("--lr-schedule", o->lr_schedule, "constant or cosine (decay to --min-lr after warmup)")
      ->capture_default_str()
      ->check(CLI::IsMember({"constant", "cosine"}));
  s->add_option("--min-lr", o->min_lr, "Final learning rate of the cosine decay");
  s->add_option("--grad-clip", o->grad_clip, "Clip gradients to this global L2 norm after warmup (0: off)");
  s->add_option("--grad-accum", o->grad_accum, "Micro-batches per optimizer step")->capture_default_str();
  s->add_option("--sample-prompt", o->sample_prompt, "Prompt of the greedy sample after each epoch")
      ->capture_default_str();
  s->add_option("--sample-tokens", o->sample_tokens, "Tokens in that sample (0: no sample)")->capture_default_str();
  s->add_option("--save-interval", o->save_interval, "Steps between checkpoints (0: after every epoch)");
  s->add_option("--keep-last", o->keep_last, "Checkpoints to keep (0: all)")->capture_default_str();
  s->add_option("--seed", o->seed, "Seed of initialisation, shuffling and dropout")->capture_default_str();
  s->add_option("--threads", o->threads, "CPU threads (0: all cores)");
  s->add_flag("--resume", o->resume, "Continue the run in --out-dir from its newest complete checkpoint");
  s->add_flag("--overwrite", o->overwrite, "Replace a previous run in --out-dir");
  return [o] { return run_pretrain(*o); };
}

}  // namespace gptrain::cli
