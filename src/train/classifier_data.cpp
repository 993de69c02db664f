#include "train/classifier_data.h"

#include <fmt/core.h>

#include <algorithm>
#include <map>

#include "util/error.h"

namespace gptrain {

namespace {

data::LabelledTable subset(const data::LabelledTable& all, const std::vector<int64_t>& rows) {
  data::LabelledTable t;
  t.source = all.source;
  t.label_column = all.label_column;
  t.text_column = all.text_column;
  t.rows.reserve(rows.size());
  for (int64_t r : rows) t.rows.push_back(all.rows[static_cast<size_t>(r)]);
  return t;
}

void require_two_classes(const data::LabelledTable& t, const std::vector<std::string>& names, const std::string& what) {
  if (names.size() >= 2) return;
  fail("{}: single class: every one of the {} {} has the label '{}' (column {}, first at line {}); a classifier "
       "needs at least two classes: check --label-column, or add rows of another class",
       t.source, t.rows.size(), what, names.empty() ? "" : names[0], t.label_column,
       t.rows.empty() ? 0 : t.rows.front().line);
}

uint32_t numpy_seed(uint64_t seed) {
  if (seed > 0xffffffffULL)
    fail("--seed {} is too large for balancing and splitting, which use numpy's RandomState (seeds 0 to 2^32 - 1, "
         "as the book's random_state); use a smaller seed",
         seed);
  return static_cast<uint32_t>(seed);
}

}  // namespace

std::vector<int32_t> label_ids(const data::LabelledTable& table, const std::vector<std::string>& class_names) {
  std::map<std::string, int32_t> id;
  for (size_t i = 0; i < class_names.size(); ++i) id[class_names[i]] = static_cast<int32_t>(i);
  std::vector<int32_t> ids;
  ids.reserve(table.rows.size());
  for (const data::LabelledRow& r : table.rows) {
    const auto it = id.find(r.label);
    if (it == id.end()) {
      std::string known;
      for (size_t i = 0; i < class_names.size(); ++i) known += (i ? ", '" : "'") + class_names[i] + "'";
      fail("{} line {}: unknown label '{}' in column {}: the training data has only the classes {}; fix the label, "
           "or add rows with it to the training data",
           table.source, r.line, r.label, table.label_column, known);
    }
    ids.push_back(it->second);
  }
  return ids;
}

std::string class_histogram(const std::vector<int32_t>& ids, const std::vector<std::string>& class_names) {
  std::vector<int64_t> count(class_names.size(), 0);
  for (int32_t i : ids) ++count[static_cast<size_t>(i)];
  std::string out;
  for (size_t c = 0; c < class_names.size(); ++c)
    out += fmt::format("{}{} {}", c ? ", " : "", class_names[c], count[c]);
  return out;
}

ClassifierSplits prepare_classifier_splits(const ClassifierDataOptions& o) {
  ClassifierSplits s;
  if (!o.train.empty()) {
    if (o.val.empty())
      fail("--train needs --val too (a validation file, the book's validation.csv); or give one --data file to split");
    s.train = data::read_labelled_table(o.train, o.table);
    s.class_names = data::class_names_of(s.train.rows);
    require_two_classes(s.train, s.class_names, "training rows");
    s.validation = data::read_labelled_table(o.val, o.table);
    if (!o.test.empty()) s.test = data::read_labelled_table(o.test, o.table);
    const std::vector<int32_t> train_ids = label_ids(s.train, s.class_names);
    fmt::print("data: {} classes; train {} rows ({}) from {}\n", s.class_names.size(), s.train.rows.size(),
               class_histogram(train_ids, s.class_names), s.train.source);
    fmt::print("      validation {} rows ({}) from {}\n", s.validation.rows.size(),
               class_histogram(label_ids(s.validation, s.class_names), s.class_names), s.validation.source);
    if (!o.test.empty())
      fmt::print("      test {} rows ({}) from {}\n", s.test.rows.size(),
                 class_histogram(label_ids(s.test, s.class_names), s.class_names), s.test.source);
    return s;
  }
  if (!o.val.empty() || !o.test.empty())
    fail("--val and --test go with --train (ready splits); with one data file the split is made here (--split)");
  if (!(o.train_fraction > 0 && o.validation_fraction >= 0 && o.train_fraction + o.validation_fraction <= 1))
    fail("--split {},{}: expected a training and a validation fraction, both in [0, 1] with a sum of at most 1 "
         "(the rest is the test set), e.g. 0.7,0.1",
         o.train_fraction, o.validation_fraction);
  const uint32_t seed = numpy_seed(o.seed);
  const data::LabelledTable all = data::read_labelled_table(o.data, o.table);
  s.class_names = data::class_names_of(all.rows);
  require_two_classes(all, s.class_names, "rows");
  const std::vector<int32_t> ids = label_ids(all, s.class_names);
  fmt::print("data: {} rows from {}, {} classes: {}\n", all.rows.size(), all.source, s.class_names.size(),
             class_histogram(ids, s.class_names));
  std::vector<int64_t> rows(all.rows.size());
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int64_t>(i);
  if (o.balance) {
    rows = data::balance_by_undersampling(ids, static_cast<int32_t>(s.class_names.size()), seed);
    std::vector<int32_t> kept;
    for (int64_t r : rows) kept.push_back(ids[static_cast<size_t>(r)]);
    fmt::print("balanced (undersampling the larger classes, seed {}): {} rows: {}\n", seed, rows.size(),
               class_histogram(kept, s.class_names));
  }
  const data::Split split = data::random_split(rows, o.train_fraction, o.validation_fraction, seed);
  s.train = subset(all, split.train);
  s.validation = subset(all, split.validation);
  s.test = subset(all, split.test);
  s.from_split = true;
  const auto hist = [&](const data::LabelledTable& t) {
    return class_histogram(label_ids(t, s.class_names), s.class_names);
  };
  fmt::print("split (seed {}, {:g}/{:g}/{:g}): train {} ({}), validation {} ({}), test {} ({})\n", seed,
             o.train_fraction, o.validation_fraction, 1 - o.train_fraction - o.validation_fraction, s.train.rows.size(),
             hist(s.train), s.validation.rows.size(), hist(s.validation), s.test.rows.size(), hist(s.test));
  if (s.train.rows.empty() || s.validation.rows.empty())
    fail("{}: the split leaves {} training and {} validation rows; give more rows or larger --split fractions",
         all.source, s.train.rows.size(), s.validation.rows.size());
  const std::vector<std::string> train_classes = data::class_names_of(s.train.rows);
  if (train_classes.size() < 2) require_two_classes(s.train, train_classes, "training rows after the split");
  return s;
}

std::vector<std::vector<int32_t>> encode_texts(const Tokenizer& tokenizer, const data::LabelledTable& table) {
  std::vector<std::vector<int32_t>> out;
  out.reserve(table.rows.size());
  for (const data::LabelledRow& r : table.rows) out.push_back(tokenizer.encode(r.text, /*allow_special=*/false));
  return out;
}

int64_t choose_max_length(const std::vector<std::vector<int32_t>>& train_encoded, const data::LabelledTable& train,
                          int64_t max_length, int64_t context_length) {
  if (max_length < 0) fail("--max-length must be positive, got {}", max_length);
  if (max_length > 0) {
    if (max_length > context_length)
      fail("--max-length {} exceeds the model's context length {}; use --max-length {} or less", max_length,
           context_length, context_length);
    return max_length;
  }
  const auto [longest, at] = data::longest(train_encoded);
  if (longest > context_length)
    fail("{} line {}: the longest training text has {} tokens, more than the model's context length {} (the book: "
         "\"Dataset length {} exceeds model's context length {}\"); pass --max-length {} (or less) to truncate the "
         "texts",
         train.source, train.rows[static_cast<size_t>(at)].line, longest, context_length, longest, context_length,
         context_length);
  return longest;
}

}  // namespace gptrain
