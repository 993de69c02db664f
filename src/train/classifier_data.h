// The data side of classification finetuning (the book's chapter 6): labelled texts from one
// file (balanced and split as the book) or from ready train/validation/test files, label names
// mapped to class ids, and the texts encoded, truncated and padded as the book's SpamDataset.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/classification.h"
#include "data/labelled_text.h"
#include "tokenizer/bpe.h"

namespace gptrain {

struct ClassifierDataOptions {
  std::string data;              // one labelled file to balance and split
  std::string train, val, test;  // or ready splits (test optional)
  data::TableOptions table;
  bool balance = false;
  double train_fraction = 0.7, validation_fraction = 0.1;
  uint64_t seed = 123;
};

struct ClassifierSplits {
  data::LabelledTable train, validation, test;  // test.rows empty when there is no test set
  std::vector<std::string> class_names;         // id order
  bool from_split = false;                      // made here from `data` (then worth writing out)
};

// Reads and (for `data`) balances and splits, printing the class histogram of each step. Errors
// name the file and line: a single class in the training data, a label in validation or test data
// that the training data lacks, and everything read_labelled_table() checks.
ClassifierSplits prepare_classifier_splits(const ClassifierDataOptions& options);

// Class id of every row; a label outside class_names is an error naming the file and line.
std::vector<int32_t> label_ids(const data::LabelledTable& table, const std::vector<std::string>& class_names);

// "ham 747, spam 747"
std::string class_histogram(const std::vector<int32_t>& ids, const std::vector<std::string>& class_names);

// Token ids of each text, encoded as the book's tokenizer.encode(text) ("<|endoftext|>" in a text
// is plain text).
std::vector<std::vector<int32_t>> encode_texts(const Tokenizer& tokenizer, const data::LabelledTable& table);

// The padded length: max_length when given (checked against the context length), else the
// longest training text, which must fit the context (else the error suggests --max-length).
int64_t choose_max_length(const std::vector<std::vector<int32_t>>& train_encoded, const data::LabelledTable& train,
                          int64_t max_length, int64_t context_length);

}  // namespace gptrain
