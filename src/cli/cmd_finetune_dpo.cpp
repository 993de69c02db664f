// gptrain finetune-dpo: every option of the job, defined once with its default (the book's
// chapter 7 DPO bonus).
#include <memory>

#include "cli/commands.h"
#include "cli/device_option.h"
#include "cli/train_options_cli.h"
#include "train/finetune_dpo.h"

namespace gptrain::cli {

Command register_finetune_dpo(CLI::App& app) {
  auto o = std::make_shared<DpoOptions>();
  CLI::App* s = app.add_subcommand(
      "finetune-dpo", "Align an instruction model with preference pairs by DPO (the book's chapter 7 bonus)");
  CLI::Option* positional =
      s->add_option("file", o->data, "Preference JSON array or JSON Lines with instruction, input, chosen, rejected "
                                     "[default: instruction-data-with-preference.json from the data dir]");
  s->add_option("--data", o->data, "The same as the positional FILE")->excludes(positional);
  s->add_option("--train-split", o->train_split, "Fraction of the pairs for training (in file order)")
      ->capture_default_str();
  s->add_option("--test-split", o->test_split, "Fraction for testing, after the training part; the rest validates")
      ->capture_default_str();
  s->add_option("--data-dir", o->data_dir, "Data directory [default: $GPTRAIN_DATA_DIR or ../shared/data]");
  s->add_option("--out-dir", o->out_dir, "Run directory (metrics, plots, checkpoints, final model)")
      ->capture_default_str();
  s->add_option("--init", o->init, "The instruction-finetuned model dir to align (the policy; also the reference)")
      ->required();
  s->add_option("--reference", o->reference,
                "Another model dir as the frozen reference [default: --init]");
  s->add_option("--beta", o->beta, "DPO's beta: how far the policy may move from the reference")->capture_default_str();
  s->add_option("--logprob", o->logprob,
                "A response's log-probability: mean over its tokens (the book's) or sum (the DPO paper's, TRL's)")
      ->capture_default_str()
      ->check(CLI::IsMember({"mean", "sum"}));
  s->add_flag("--precompute-reference", o->precompute_reference,
              "Compute the reference's log-probabilities of every pair once before training, instead of keeping a "
              "frozen copy of the weights (with --lora-rank the reference is the base without the adapters anyway)");
  s->add_option("--template", o->prompt_template,
                "Prompt format: auto (the model dir's; GPT-2: Alpaca), alpaca (the book's), or chat")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "alpaca", "chat"}));
  s->add_option("--chat-template", o->chat_template, "A chat template file; implies --template chat");
  s->add_option("--system", o->system, "System message of every pair (chat templates)");
  s->add_option("--max-length", o->max_length, "Cut every sequence to this many tokens (at most the model's context)")
      ->capture_default_str();
  auto no_mask_prompt = std::make_shared<bool>(false);
  s->add_flag("--no-mask-prompt", *no_mask_prompt, "Count the prompt's tokens in the log-probabilities too");
  add_training_options(s, *o,
                       TrainOptionsHelp{"Pairs per micro-batch", "Passes over the training pairs",
                                        "Steps between evaluations", "Batches per evaluation"});
  s->add_option("--sample-tokens", o->sample_tokens,
                "New tokens of the answer to the third validation entry after each epoch (0: none)")
      ->capture_default_str();
  s->add_flag("--answer-test", o->answer_test, "At the end, answer the test entries into test-responses.json");
  s->add_option("--answer-tokens", o->answer_tokens, "New tokens per test answer")->capture_default_str();
  s->add_option("--trainable", o->trainable, "What of the base learns: all, none (with --lora-rank, its default: only "
                                             "the adapters), head, last-block, last-N")
      ->capture_default_str();
  add_lora_options(s, *o);
  add_run_options(s, *o, "Seed of shuffling, dropout and LoRA's initialisation");
  return [o, s, no_mask_prompt] {
    o->mask_prompt = !*no_mask_prompt;
    default_trainable_for_lora(s, *o, o->trainable);
    activate_device(o->device, o->dtype, o->tf32);
    return run_finetune_dpo(*o);
  };
}

}  // namespace gptrain::cli
