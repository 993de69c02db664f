// gptrain finetune-instruct: the book's chapter 7 run (instruction finetuning on Alpaca-format
// data), as a job with every option of the CLI. Defaults are the book's, except that the prompt's
// targets are masked (-100) unless --no-mask-prompt.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/instruction_data.h"
#include "generate/instruct.h"
#include "model/transformer.h"
#include "tokenizer/bpe.h"
#include "train/train_options.h"

namespace gptrain {

struct InstructOptions : TrainOptions {
  InstructOptions() {
    // the book's chapter 7 run
    out_dir = "out/instruct";
    drop_rate = 0.0;
    batch_size = 8;
    lr = 5e-5;
    epochs = 2;
    eval_interval = 5;
  }
  std::string data;  // Alpaca JSON or JSONL; default instruction-data.json from the data dir
  std::string val_data, test_data;  // replace that part of the split
  double train_split = 0.85, test_split = 0.10;  // the rest is validation
  std::string data_dir;
  std::string init;  // a model dir (required)
  std::string trainable = "all";  // what of the base learns (classifier_model.h's modes); with LoRA: none
  int64_t max_length = 1024;  // the book's allowed_max_length; capped at the model's context
  bool mask_prompt = true;
  int64_t sample_tokens = 256;  // the answer to the first validation entry after each epoch; 0: none
  bool answer_test = true;       // write test-responses.json for the test split at the end
  int64_t answer_tokens = 256;
  // The prompt: "alpaca" (the book's) or "chat" (--chat-template FILE, else the model dir's
  // template, else its family's: Llama 3, Qwen3); system: a system message for chat templates.
  std::string prompt_template = "alpaca";
  std::string chat_template;
  std::string system;
};

// Returns the process exit code: 0 when done, 128 + signal when stopped by SIGINT/SIGTERM (after
// writing a checkpoint).
int run_finetune_instruct(const InstructOptions& options);

// What finetune-instruct and finetune-dpo share.
// The sample after an epoch: the entry's prompt and the model's answer to it (max_new_tokens),
// on one line (newlines as spaces).
std::string answer_sample(const Transformer& model, const Tokenizer& tokenizer, const data::InstructionEntry& entry,
                          const AnswerOptions& answer);
// final/: the trained model (or its adapter), the tokenizer files, and how it was prompted
// (recorded where a tokenizer_config.json exists or a chat template was used; a GPT-2 dir without
// one is Alpaca anyway).
void save_instruction_model(const Transformer& model, const std::filesystem::path& final_dir, const std::string& init,
                            const std::filesystem::path& tokenizer_dir, const AnswerOptions& answer);
// The book's last step: the model's answer to every test entry, saved with the entries as `out`.
void answer_test_entries(const Transformer& model, const Tokenizer& tokenizer,
                         const std::vector<data::InstructionEntry>& entries, const AnswerOptions& answer,
                         const std::filesystem::path& out);

}  // namespace gptrain
