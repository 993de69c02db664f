// gptrain classify: the book's classify_review for any number of texts and classes. Each text is
// encoded, truncated and right-padded with the pad id to the length the classifier was trained
// with (its pooled "last" position is that length - 1), and labelled with the argmax of its
// logits; the probability is the softmax of that class.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "data/data_dir.h"
#include "data/datasets.h"
#include "data/csv.h"
#include "data/text_file.h"
#include "generate/engine.h"
#include "kernels/ops.h"
#include "model/adapter_dir.h"
#include "model/model_dir.h"
#include "tokenizer/bpe.h"
#include "train/checkpoint.h"
#include "train/classifier_model.h"
#include "train/finetune_cls.h"
#include "util/error.h"

namespace gptrain {

namespace fs = std::filesystem;

namespace {

// One text per non-empty line of a plain file; the text column of a .csv/.tsv.
std::vector<std::string> read_inputs(const std::string& path, const std::string& text_column) {
  const std::string ext = fs::path(path).extension().string();
  std::vector<std::string> texts;
  if (ext == ".csv" || ext == ".tsv") {
    // A header row names the columns; the texts are in --text-column (default "Text").
    const std::vector<data::CsvRecord> records =
        data::parse_table(data::read_text_file(path), ext == ".tsv" ? '\t' : ',', path);
    if (records.size() < 2) fail("{}: no rows below the header", path);
    const std::string name = text_column.empty() ? "Text" : text_column;
    const std::vector<std::string>& header = records.front().fields;
    size_t column = header.size();
    for (size_t i = 0; i < header.size() && column == header.size(); ++i)
      if (header[i] == name) column = i;
    if (column == header.size()) {
      std::string found;
      for (size_t i = 0; i < header.size(); ++i) found += (i ? ", '" : "'") + header[i] + "'";
      fail("{} line {}: missing column: no column '{}' in the header ({}); name the text column with --text-column",
           path, records.front().line, name, found);
    }
    for (size_t r = 1; r < records.size(); ++r) {
      if (records[r].fields[column].empty())
        fail("{} line {}: empty text in column '{}'", path, records[r].line, name);
      texts.push_back(records[r].fields[column]);
    }
    return texts;
  }
  const std::string content = data::read_text_file(path);
  size_t start = 0;
  while (start <= content.size()) {
    size_t end = content.find('\n', start);
    if (end == std::string::npos) end = content.size();
    std::string line = content.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) texts.push_back(line);
    start = end + 1;
  }
  return texts;
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  return s;
}

}  // namespace

int run_classify(const ClassifyOptions& o) {
  ops::set_num_threads(o.threads);
  if (o.model.empty()) fail("--model DIR is required: a classifier dir written by gptrain finetune-cls (its final/)");
  if (o.batch_size <= 0) fail("--batch-size must be positive, got {}", o.batch_size);
  std::vector<std::string> texts = o.texts;
  if (!o.input.empty()) {
    const std::vector<std::string> more = read_inputs(o.input, o.text_column);
    texts.insert(texts.end(), more.begin(), more.end());
  }
  if (texts.empty()) fail("no text to classify: give texts as arguments or --input FILE (one text per line)");
  for (size_t i = 0; i < texts.size(); ++i)
    if (texts[i].empty()) fail("text {} is empty; every text needs at least one character", i + 1);

  ModelLoadOptions lo;
  lo.drop_rate = 0.0f;
  // A LoRA run's final/ holds its base and, beside it, the adapter: applied unless another is named.
  lo.adapter = !o.adapter.empty() ? fs::path(o.adapter) : is_adapter_dir(o.model) ? fs::path(o.model) : fs::path();
  std::unique_ptr<Transformer> model = load_model_dir(o.model, lo);
  model->to_device(o.device);
  const ModelConfig& cfg = model->config();
  if (cfg.head != HeadType::Classifier)
    fail("{}: a language model, not a classifier (config.json gptrain.head is \"lm\"); train one with gptrain "
         "finetune-cls --init {}",
         o.model, o.model);
  std::vector<std::string> names = read_class_names(o.model);
  if (names.empty())
    for (int64_t c = 0; c < cfg.n_classes; ++c) names.push_back(std::to_string(c));
  const ClassifierInputs inputs = read_classifier_inputs(o.model);
  int64_t T = o.max_length > 0 ? o.max_length : inputs.max_length;
  if (T <= 0)
    fail("{}/config.json has no gptrain.max_length (the padded length the classifier was trained with; a training "
         "checkpoint lacks it, the run's final/ has it); pass --max-length N (finetune-cls printed \"padded length "
         "N\")",
         o.model);
  T = std::min(T, cfg.context_length);  // the book: min(max_length, supported_context_length)
  const fs::path tokenizer_dir = data::resolve_tokenizer_dir("", o.model, cfg.family, data::resolve_data_dir(o.data_dir));
  const Tokenizer tokenizer = Tokenizer::from_dir(tokenizer_dir);
  check_vocabulary(cfg, tokenizer, inputs.pad_token_id, o.model);

  DecodeEngine engine(*model);
  for (size_t first = 0; first < texts.size(); first += static_cast<size_t>(o.batch_size)) {
    const size_t count = std::min(texts.size() - first, static_cast<size_t>(o.batch_size));
    std::vector<std::vector<int32_t>> batch(count, std::vector<int32_t>(static_cast<size_t>(T), inputs.pad_token_id));
    for (size_t i = 0; i < count; ++i) {
      const std::vector<int32_t> ids = tokenizer.encode(texts[first + i], /*allow_special=*/false);
      std::copy_n(ids.begin(), std::min(ids.size(), static_cast<size_t>(T)), batch[i].begin());
    }
    const std::vector<std::vector<float>> logits = engine.classify(batch);
    const int64_t n = cfg.n_classes;
    for (size_t i = 0; i < count; ++i) {
      const float* row = logits[i].data();
      const int64_t best = std::max_element(row, row + n) - row;
      double sum = 0;
      for (int64_t c = 0; c < n; ++c) sum += std::exp(static_cast<double>(row[c]) - row[best]);
      fmt::print("{}\t{:.4f}\t{}\n", names[static_cast<size_t>(best)], 1.0 / sum, one_line(texts[first + i]));
    }
  }
  return 0;
}

}  // namespace gptrain
