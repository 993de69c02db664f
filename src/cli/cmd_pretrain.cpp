// gptrain pretrain: every option of the job, defined once with its default (the book's ch05 run).
#include <memory>

#include "cli/commands.h"
#include "cli/train_options_cli.h"
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
  s->add_flag("--no-shuffle", o->no_shuffle, "Train on the windows in corpus order every epoch (default: a seeded shuffle per epoch)");
  add_training_options(s, *o);
  s->add_option("--sample-prompt", o->sample_prompt, "Prompt of the greedy sample after each epoch")
      ->capture_default_str();
  s->add_option("--sample-tokens", o->sample_tokens, "Tokens in that sample (0: no sample)")->capture_default_str();
  add_run_options(s, *o, "Seed of initialisation, shuffling and dropout");
  return [o] { return run_pretrain(*o); };
}

}  // namespace gptrain::cli
