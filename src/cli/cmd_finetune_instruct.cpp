// gptrain finetune-instruct: every option of the job, defined once with its default (the book's
// chapter 7 run; prompt masking on unless --no-mask-prompt).
#include <memory>

#include "cli/commands.h"
#include "train/finetune_instruct.h"

namespace gptrain::cli {

Command register_finetune_instruct(CLI::App& app) {
  auto o = std::make_shared<InstructOptions>();
  CLI::App* s = app.add_subcommand("finetune-instruct",
                                   "Instruction-finetune a model on Alpaca-format JSON/JSONL (the book's chapter 7)");
  s->add_option("data", o->data, "Alpaca JSON array or JSON Lines with instruction, input, output "
                                 "[default: instruction-data.json from the data dir]");
  s->add_option("--val-data", o->val_data, "Validation entries [default: the last part of the split]");
  s->add_option("--test-data", o->test_data, "Test entries [default: the part of the split after training]");
  s->add_option("--train-split", o->train_split, "Fraction of the entries for training (in file order)")
      ->capture_default_str();
  s->add_option("--test-split", o->test_split, "Fraction for testing, after the training part; the rest validates")
      ->capture_default_str();
  s->add_option("--data-dir", o->data_dir, "Data directory [default: $GPTRAIN_DATA_DIR or ../shared/data]");
  s->add_option("--out-dir", o->out_dir, "Run directory (metrics, plots, checkpoints, final model, test responses)")
      ->capture_default_str();
  s->add_option("--init", o->init, "Model dir to finetune (gptrain's final/ or a checkpoint, or Hugging Face GPT-2)")
      ->required();
  s->add_option("--max-length", o->max_length, "Cut every sequence to this many tokens (at most the model's context)")
      ->capture_default_str();
  auto no_mask_prompt = std::make_shared<bool>(false), no_answer_test = std::make_shared<bool>(false);
  s->add_flag("--no-mask-prompt", *no_mask_prompt,
              "Grade the prompt's tokens too, as the book's chapter (default: only the response and its end-of-text)");
  s->add_option("--drop-rate", o->drop_rate, "Dropout rate")->capture_default_str();
  s->add_option("--batch-size", o->batch_size, "Entries per micro-batch")->capture_default_str();
  s->add_option("--lr", o->lr, "Peak learning rate")->capture_default_str();
  s->add_option("--weight-decay", o->weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  s->add_flag("--no-decay-bias-norm", o->no_decay_bias_norm, "Exempt biases and LayerNorm parameters from decay");
  s->add_option("--epochs", o->epochs, "Passes over the training entries")->capture_default_str();
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
  s->add_option("--sample-tokens", o->sample_tokens,
                "New tokens of the answer to the first validation entry after each epoch (0: none)")
      ->capture_default_str();
  s->add_flag("--no-answer-test", *no_answer_test,
              "Skip the last step: answering the test entries into test-responses.json");
  s->add_option("--answer-tokens", o->answer_tokens, "New tokens per test answer")->capture_default_str();
  s->add_option("--save-interval", o->save_interval, "Steps between checkpoints (0: after every epoch)");
  s->add_option("--keep-last", o->keep_last, "Checkpoints to keep (0: all)")->capture_default_str();
  s->add_option("--seed", o->seed, "Seed of shuffling and dropout")->capture_default_str();
  s->add_option("--threads", o->threads, "CPU threads (0: all cores)");
  s->add_flag("--resume", o->resume, "Continue the run in --out-dir from its newest complete checkpoint");
  s->add_flag("--overwrite", o->overwrite, "Replace a previous run in --out-dir");
  return [o, no_mask_prompt, no_answer_test] {
    o->mask_prompt = !*no_mask_prompt;
    o->answer_test = !*no_answer_test;
    return run_finetune_instruct(*o);
  };
}

}  // namespace gptrain::cli
