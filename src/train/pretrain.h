// gptrain pretrain: the book's chapter 5 run (GPT-2 on raw text, next-token prediction), as a
// job with every option of the CLI. Defaults are the book's notebook run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/train_options.h"

namespace gptrain {

struct PretrainOptions : TrainOptions {
  PretrainOptions() {
    // the book's chapter 5 notebook run
    out_dir = "out/pretrain";
    drop_rate = 0.1;
    batch_size = 2;
    lr = 4e-4;
    epochs = 10;
    eval_interval = 5;
  }
  std::vector<std::string> files;  // text files, or one token shard (.u16/.u32); default the-verdict.txt
  std::string trainable = "all";   // what of the base learns (classifier_model.h's modes); with LoRA: none
  std::string val_data;            // validation text or shard; default: the last 10% of the text
  double train_split = 0.9;
  std::string data_dir;
  std::string shard_format;  // "u16"/"u32" for shards without the extension
  std::string init = "gpt2-small";  // preset, "scratch" (= gpt2-small), or a model dir
  int64_t context_length = 256;
  int64_t stride = 0;  // 0: the context length
  ShapeOverrides shape;      // preset overrides
  std::string tokenizer;     // tokenizer dir; default: the model dir's, else the family's in the data dir
  bool no_shuffle = false;  // train batches in corpus order every epoch
  std::string sample_prompt = "Every effort moves you";
  int64_t sample_tokens = 50;
};

// Returns the process exit code: 0 when done, 128 + signal when stopped by SIGINT/SIGTERM (after
// writing a checkpoint).
int run_pretrain(const PretrainOptions& options);

}  // namespace gptrain
