// gptrain pretrain: every option of the job, defined once with its default (the book's ch05 run).
#include <memory>

#include "cli/commands.h"
#include "cli/device_option.h"
#include "cli/train_options_cli.h"
#include "train/pretrain.h"

namespace gptrain::cli {

Command register_pretrain(CLI::App& app) {
  auto o = std::make_shared<PretrainOptions>();
  CLI::App* s = app.add_subcommand("pretrain", "Pretrain a model on text (default: the book's chapter 5 run, GPT-2 124M)");
  CLI::Option* positional =
      s->add_option("files", o->files, "Text files (joined with <|endoftext|>), or one token shard (.u16/.u32) "
                                       "[default: the-verdict.txt from the data dir]");
  s->add_option("--data", o->files, "The same as the positional FILES")->excludes(positional);
  s->add_option("--val-data", o->val_data, "Validation text or token shard [default: the last part of the text]");
  s->add_option("--train-split", o->train_split, "Fraction of the characters for training")->capture_default_str();
  s->add_option("--data-dir", o->data_dir, "Data directory [default: $GPTRAIN_DATA_DIR or ../shared/data]");
  s->add_option("--shard-format", o->shard_format, "Token width of shards without a .u16/.u32 extension")
      ->check(CLI::IsMember({"u16", "u32"}));
  s->add_option("--out-dir", o->out_dir, "Run directory (metrics, plots, checkpoints, final model)")
      ->capture_default_str();
  s->add_option("--init", o->init, "Preset (gpt2-small..gpt2-xl, llama-3.2-1b, llama-3.2-3b, llama-tiny, qwen3-0.6b, qwen3-1.7b, qwen3-tiny, scratch) or a model dir")
      ->capture_default_str();
  s->add_option("--context-length", o->context_length, "Tokens per training window")->capture_default_str();
  s->add_option("--stride", o->stride, "Step between windows [default: the context length]");
  add_shape_options(s, o->shape);
  s->add_option("--tokenizer", o->tokenizer,
                "Tokenizer dir (tokenizer.json, or GPT-2's files) [default: the model dir's, else the family's in the "
                "data dir: gpt2_tokenizer/, tokenizers/llama3/, tokenizers/qwen/]");
  s->add_flag("--no-shuffle", o->no_shuffle, "Train on the windows in corpus order every epoch (default: a seeded shuffle per epoch)");
  add_training_options(s, *o);
  s->add_option("--sample-prompt", o->sample_prompt, "Prompt of the greedy sample after each epoch")
      ->capture_default_str();
  s->add_option("--sample-tokens", o->sample_tokens, "Tokens in that sample (0: no sample)")->capture_default_str();
  s->add_option("--trainable", o->trainable, "What of the base learns: all, none (with --lora-rank, its default: only "
                                             "the adapters), head, last-block, last-N")
      ->capture_default_str();
  add_lora_options(s, *o);
  add_run_options(s, *o, "Seed of initialisation, shuffling and dropout");
  return [o, s] {
    activate_device(o->device, o->dtype, o->tf32);
    default_trainable_for_lora(s, *o, o->trainable);
    return run_pretrain(*o);
  };
}

}  // namespace gptrain::cli
