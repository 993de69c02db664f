// gptrain finetune-cls: every option of the job, defined once with its default (the book's
// chapter 6 run on the SMS Spam Collection).
#include <memory>

#include "cli/commands.h"
#include "cli/device_option.h"
#include "cli/train_options_cli.h"
#include "train/finetune_cls.h"

namespace gptrain::cli {

Command register_finetune_cls(CLI::App& app) {
  auto o = std::make_shared<FinetuneClsOptions>();
  CLI::App* s = app.add_subcommand(
      "finetune-cls", "Finetune a GPT-2 into a text classifier (default: the book's chapter 6 spam classifier)");
  s->add_option("--data", o->data,
                "Labelled CSV/TSV to balance and split [default: the data dir's SMS Spam Collection]");
  s->add_option("--train", o->train, "Ready training CSV/TSV (e.g. a previous run's train.csv); skips splitting");
  s->add_option("--val", o->val, "Ready validation CSV/TSV (with --train)");
  s->add_option("--test", o->test, "Ready test CSV/TSV (with --train; optional)");
  s->add_option("--text-column", o->text_column, "Text column: a header name or a 0-based index [default: Text, or 1 "
                                                  "without a header]");
  s->add_option("--label-column", o->label_column, "Label column: a header name or a 0-based index [default: Label, "
                                                    "or 0 without a header]");
  s->add_flag("--no-header", o->no_header,
              "The files have no header row (the SMS Spam Collection is known to have none)");
  s->add_option("--sep", o->sep, "Field separator: one character, 'tab' or 'comma' [default: tab for .tsv and files "
                                 "whose first line has a tab, else comma]");
  s->add_flag("--balance", o->balance, "Undersample the larger classes to the smallest one's size (on for the SMS data)");
  s->add_flag("--no-balance", o->no_balance, "Keep every row, also for the SMS data");
  s->add_option("--split", o->split, "Training and validation fractions of a --data split; the rest is test")
      ->delimiter(',')
      ->expected(2)
      ->capture_default_str();
  s->add_option("--data-dir", o->data_dir, "Data directory [default: $GPTRAIN_DATA_DIR or ../shared/data]");
  s->add_option("--out-dir", o->out_dir, "Run directory (splits, metrics, plots, checkpoints, final model)")
      ->capture_default_str();
  s->add_option("--init", o->init, "Model dir (gptrain or Hugging Face GPT-2, Llama, Qwen3) whose body to finetune, "
                                   "or a preset (gpt2-small, ..., qwen3-tiny, scratch) initialised at random")
      ->capture_default_str();
  s->add_option("--context-length", o->context_length, "Presets: context length [default: 1024]");
  add_shape_options(s, o->shape, /*with_tie_weights=*/false);
  s->add_option("--trainable", o->trainable, "What learns: head, last-block (the book: last block + final norm + "
                                             "head), last-N, all, or none (with --lora-rank, its default: only "
                                             "the adapters)")
      ->capture_default_str();
  s->add_option("--pool", o->pool, "Which position's logits are classified: last (the book), first, or mean")
      ->capture_default_str()
      ->check(CLI::IsMember({"last", "first", "mean"}));
  s->add_option("--max-length", o->max_length, "Truncate and pad every text to this many tokens [default: the "
                                               "longest training text]");
  s->add_option("--pad-token-id", o->pad_token_id,
                "Padding token [default: the tokenizer's end-of-text: 50256 for GPT-2 as the book, <|end_of_text|> "
                "for Llama 3, <|endoftext|> for Qwen]");
  add_training_options(s, *o,
                       TrainOptionsHelp{"Texts per micro-batch", "Passes over the training data",
                                        "Steps between loss evaluations", "Batches per evaluation and per epoch accuracy"});
  add_lora_options(s, *o);
  add_run_options(s, *o, "Seed of the split, the head's initialisation, shuffling and dropout");
  return [o, s] {
    activate_device(o->device, o->dtype, o->tf32);
    default_trainable_for_lora(s, *o, o->trainable);
    return run_finetune_cls(*o);
  };
}

}  // namespace gptrain::cli
