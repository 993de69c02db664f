// gptrain finetune-dpo: the book's chapter 7 bonus (preference tuning with DPO on
// instruction-data-with-preference.json) as a job with every option of the CLI. Defaults are the
// book's: beta 0.1, the mean log-probability over response tokens, AdamW lr 5e-6 and weight decay
// 0.01, 1 epoch of batches of 8 pairs, evaluation every 5 steps over 5 batches.
#pragma once

#include <cstdint>
#include <string>

#include "train/train_options.h"

namespace gptrain {

struct DpoOptions : TrainOptions {
  DpoOptions() {
    out_dir = "out/dpo";
    drop_rate = 0.0;
    batch_size = 8;
    lr = 5e-6;
    weight_decay = 0.01;
    epochs = 1;
    eval_interval = 5;
    eval_iters = 5;
  }
  std::string data;  // preference JSON or JSONL; default instruction-data-with-preference.json
  double train_split = 0.85, test_split = 0.10;  // the rest is validation (1100: 935 / 110 / 55)
  std::string data_dir;
  std::string init;       // the instruction-finetuned model (required)
  std::string reference;  // the reference model dir (a frozen copy); default: --init
  double beta = 0.1;
  std::string logprob = "mean";  // mean (the book's) | sum (the paper's, TRL's)
  // The reference's log-probabilities of every pair computed once before training, instead of a
  // frozen copy of the weights beside the policy.
  bool precompute_reference = false;
  int64_t max_length = 1024;  // the book's allowed_max_length; capped at the model's context
  bool mask_prompt = true;
  std::string trainable = "all";  // what of the base learns; with LoRA: none
  // "auto": the model dir's recorded prompt format (a GPT-2 dir without one: Alpaca, the book's);
  // "alpaca"; "chat" (the dir's chat template, else its family's).
  std::string prompt_template = "auto";
  std::string chat_template;
  std::string system;
  int64_t sample_tokens = 256;  // the policy's answer to the third validation entry after each epoch (the book's)
  bool answer_test = false;     // write test-responses.json for the test split at the end
  int64_t answer_tokens = 256;
};

// Returns the process exit code: 0 when done, 128 + signal when stopped by SIGINT/SIGTERM (after
// writing a checkpoint).
int run_finetune_dpo(const DpoOptions& options);

}  // namespace gptrain
