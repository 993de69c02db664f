// gptrain finetune-instruct: every option of the job, defined once with its default (the book's
// chapter 7 run; prompt masking on unless --no-mask-prompt).
#include <memory>

#include "cli/commands.h"
#include "cli/device_option.h"
#include "cli/train_options_cli.h"
#include "train/finetune_instruct.h"

namespace gptrain::cli {

Command register_finetune_instruct(CLI::App& app) {
  auto o = std::make_shared<InstructOptions>();
  CLI::App* s = app.add_subcommand("finetune-instruct",
                                   "Instruction-finetune a model on Alpaca-format JSON/JSONL (the book's chapter 7)");
  CLI::Option* positional = s->add_option("data", o->data, "Alpaca JSON array or JSON Lines with instruction, input, "
                                                           "output [default: instruction-data.json from the data dir]");
  s->add_option("--data", o->data, "The same as the positional DATA")->excludes(positional);
  s->add_option("--val-data", o->val_data, "Validation entries [default: the last part of the split]");
  s->add_option("--test-data", o->test_data, "Test entries [default: the part of the split after training]");
  s->add_option("--train-split", o->train_split, "Fraction of the entries for training (in file order)")
      ->capture_default_str();
  s->add_option("--test-split", o->test_split, "Fraction for testing, after the training part; the rest validates")
      ->capture_default_str();
  s->add_option("--data-dir", o->data_dir, "Data directory [default: $GPTRAIN_DATA_DIR or ../shared/data]");
  s->add_option("--out-dir", o->out_dir, "Run directory (metrics, plots, checkpoints, final model, test responses)")
      ->capture_default_str();
  s->add_option("--init", o->init,
                "Model dir to finetune (gptrain's final/ or a checkpoint, or Hugging Face GPT-2, Llama, Qwen3)")
      ->required();
  s->add_option("--template", o->prompt_template,
                "Prompt format: alpaca (the book's) or chat (the model's chat template: its tokenizer_config.json's, "
                "else its family's, Llama 3 or Qwen3)")
      ->capture_default_str()
      ->check(CLI::IsMember({"alpaca", "chat"}));
  s->add_option("--chat-template", o->chat_template,
                "A chat template file (JSON, or a Jinja template of Llama 3 / ChatML form); implies --template chat");
  s->add_option("--system", o->system, "System message of every example (chat templates)");
  s->add_option("--max-length", o->max_length, "Cut every sequence to this many tokens (at most the model's context)")
      ->capture_default_str();
  auto no_mask_prompt = std::make_shared<bool>(false), no_answer_test = std::make_shared<bool>(false);
  s->add_flag("--no-mask-prompt", *no_mask_prompt,
              "Grade the prompt's tokens too, as the book's chapter (default: only the response and its end-of-text)");
  add_training_options(s, *o,
                       TrainOptionsHelp{"Entries per micro-batch", "Passes over the training entries",
                                        "Steps between evaluations", "Batches per evaluation"});
  s->add_option("--sample-tokens", o->sample_tokens,
                "New tokens of the answer to the first validation entry after each epoch (0: none)")
      ->capture_default_str();
  s->add_flag("--no-answer-test", *no_answer_test,
              "Skip the last step: answering the test entries into test-responses.json");
  s->add_option("--answer-tokens", o->answer_tokens, "New tokens per test answer")->capture_default_str();
  s->add_option("--trainable", o->trainable, "What of the base learns: all, none (with --lora-rank, its default: only "
                                             "the adapters), head, last-block, last-N")
      ->capture_default_str();
  add_lora_options(s, *o);
  add_run_options(s, *o, "Seed of shuffling, dropout and LoRA's initialisation");
  return [o, s, no_mask_prompt, no_answer_test] {
    o->mask_prompt = !*no_mask_prompt;
    o->answer_test = !*no_answer_test;
    default_trainable_for_lora(s, *o, o->trainable);
    activate_device(o->device, o->dtype, o->tf32);
    return run_finetune_instruct(*o);
  };
}

}  // namespace gptrain::cli
