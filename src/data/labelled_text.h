// Labelled texts for classification: a CSV/TSV with a text column and a label column (the SMS
// Spam Collection, the book's train/validation/test.csv, or any such file), the book's data steps
// (balancing by undersampling, the seeded 70/10/20 split, both through numpy's legacy
// RandomState as pandas uses it), and the split files it writes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace gptrain::data {

struct LabelledRow {
  std::string label, text;
  int64_t line = 0;  // where the record starts in its file (for error messages)
};

struct LabelledTable {
  std::string source;                     // the file, for messages
  std::string label_column, text_column;  // as named in messages ("Label", or "column 0")
  std::vector<LabelledRow> rows;
};

struct TableOptions {
  char sep = 0;               // 0: '\t' for .tsv and for files whose first line holds a tab, else ','
  int header = -1;            // 1: the first line names the columns; 0: no header; -1: auto (none
                              // for the SMS Spam Collection's file names, else a header)
  std::string text_column;    // a header name or a 0-based index; "" = "Text" (header) or 1 (none)
  std::string label_column;   // likewise; "" = "Label" (header) or 0 (none)
};

// Reads every row. Errors name the file and line: a missing column (listing the header's
// columns), a malformed line (an unclosed quote, more fields than the header, a row too short to
// hold the text or label), an empty text or label.
LabelledTable read_labelled_table(const std::filesystem::path& path, const TableOptions& options);

// Class names in id order: numeric order when every label is an integer ("0", "1", "10"), else
// byte order ("ham" < "spam", as the book's {"ham": 0, "spam": 1}).
std::vector<std::string> class_names_of(const std::vector<LabelledRow>& rows);

// The row indices of a balanced set (the book's create_balanced_dataset, for any number of
// classes): with m the size of the smallest class, each larger class is undersampled to m rows by
// df[label == c].sample(m, random_state=seed) (numpy's RandomState(seed).permutation(count)[:m]
// over that class's rows in file order), a class of m rows keeps its file order, and the classes
// follow each other in id order. For the SMS data: 747 sampled ham, then the 747 spam.
std::vector<int64_t> balance_by_undersampling(const std::vector<int32_t>& labels, int32_t n_classes, uint32_t seed);

struct Split {
  std::vector<int64_t> train, validation, test;  // indices into the rows given to random_split
};

// The book's random_split: df.sample(frac=1, random_state=seed), then the first
// int(n * train_fraction) rows train, the next int(n * validation_fraction) validation, the rest
// test. `rows` are indices (e.g. the balanced set); the result holds elements of `rows`.
Split random_split(const std::vector<int64_t>& rows, double train_fraction, double validation_fraction,
                   uint32_t seed);

// `header` then one line per row, as the book's df.to_csv(index=None) writes train.csv.
std::string labelled_csv(const std::vector<LabelledRow>& rows, const std::string& label_header = "Label",
                         const std::string& text_header = "Text");

}  // namespace gptrain::data
