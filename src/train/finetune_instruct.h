// gptrain finetune-instruct: the book's chapter 7 run (instruction finetuning on Alpaca-format
// data), as a job with every option of the CLI. Defaults are the book's, except that the prompt's
// targets are masked (-100) unless --no-mask-prompt.
#pragma once

#include <cstdint>
#include <string>

namespace gptrain {

struct InstructOptions {
  std::string data;  // Alpaca JSON or JSONL; default instruction-data.json from the data dir
  std::string val_data, test_data;  // replace that part of the split
  double train_split = 0.85, test_split = 0.10;  // the rest is validation
  std::string data_dir;
  std::string out_dir = "out/instruct";
  std::string init;  // a model dir (required)
  int64_t max_length = 1024;  // the book's allowed_max_length; capped at the model's context
  bool mask_prompt = true;
  double drop_rate = 0.0;
  int64_t batch_size = 8;
  double lr = 5e-5;
  double weight_decay = 0.1;
  bool no_decay_bias_norm = false;
  int64_t epochs = 2;
  int64_t max_steps = 0;
  int64_t eval_interval = 5;
  int64_t eval_iters = 5;
  int64_t warmup_steps = 0;
  double initial_lr = 0.0;
  std::string lr_schedule = "constant";
  double min_lr = 0.0;
  double grad_clip = 0.0;
  int64_t grad_accum = 1;
  int64_t sample_tokens = 256;  // the answer to the first validation entry after each epoch; 0: none
  bool answer_test = true;       // write test-responses.json for the test split at the end
  int64_t answer_tokens = 256;
  int64_t save_interval = 0;
  int keep_last = 2;
  uint64_t seed = 123;
  int threads = 0;
  bool resume = false;
  bool overwrite = false;
};

// Returns the process exit code: 0 when done, 128 + signal when stopped by SIGINT/SIGTERM (after
// writing a checkpoint).
int run_finetune_instruct(const InstructOptions& options);

}  // namespace gptrain
