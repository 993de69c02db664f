// gptrain finetune-cls: the book's chapter 6 classifier ("surgery": a pretrained GPT-2's output
// head replaced by an N-class linear layer, the body frozen but for its last block and final norm,
// trained on the last token's logits), for the SMS Spam Collection by default and for any CSV/TSV
// with a text and a label column. Defaults are the book's run. gptrain classify labels texts with
// the resulting model dir.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/train_options.h"

namespace gptrain {

struct FinetuneClsOptions : TrainOptions {
  FinetuneClsOptions() {
    // the book's chapter 6 run
    out_dir = "out/finetune-cls";
    drop_rate = 0.0;
    batch_size = 8;
    lr = 5e-5;
    epochs = 5;
    eval_interval = 50;
  }
  std::string data;              // a labelled CSV/TSV; default the data dir's SMS Spam Collection
  std::string train, val, test;  // ready splits instead (the book's train/validation/test.csv)
  std::string text_column, label_column;  // default "Text"/"Label" with a header, 1/0 without
  bool no_header = false;
  std::string sep;                        // "" auto, "tab", or one character
  bool balance = false, no_balance = false;  // neither: balance the SMS data only (the book)
  std::vector<double> split = {0.7, 0.1};    // train and validation fractions; the rest is test
  std::string data_dir;
  std::string init = "gpt2-small";  // a model dir (gptrain or Hugging Face GPT-2), a preset, or "scratch"
  int64_t context_length = 0;       // presets only; 0: the preset's 1024
  ShapeOverrides shape;                            // presets only
  std::string trainable = "last-block";            // head | last-block | last-N | all
  std::string pool = "last";                       // last | first | mean
  int64_t max_length = 0;                          // 0: the longest training text
  int64_t pad_token_id = -1;  // -1: the tokenizer's end-of-text (50256 for GPT-2, as the book)
};

// Returns the exit code: 0 when done, 128 + signal when stopped by SIGINT/SIGTERM (after writing a
// checkpoint).
int run_finetune_cls(const FinetuneClsOptions& options);

struct ClassifyOptions {
  std::string model;               // a classifier model dir (finetune-cls's final/ or a checkpoint)
  std::string adapter;             // a LoRA adapter on it; default: the one in the model dir, if any
  std::vector<std::string> texts;  // texts to label
  std::string input;               // or a file: one text per line, or a CSV/TSV (.csv/.tsv) with --text-column
  std::string text_column;
  int64_t max_length = 0;          // 0: the model's (config.json gptrain.max_length)
  int64_t batch_size = 8;
  std::string data_dir;
  int threads = 0;
  Device device = Device::CPU;     // made ready by the caller (cli/device_option.h)
};

// Prints "label<TAB>probability<TAB>text" per text.
int run_classify(const ClassifyOptions& options);

}  // namespace gptrain
