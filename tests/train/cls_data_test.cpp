// The data steps of classification finetuning against pandas and numpy (fixtures written by
// tests/tools/gen_cls_fixtures.py): delimited-text parsing as read_csv, numpy's legacy
// RandomState permutation, the book's balanced set and 70/10/20 split of the SMS Spam Collection
// row for row, the split CSVs byte for byte, and the errors for bad input files.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "data/classification.h"
#include "data/csv.h"
#include "data/labelled_text.h"
#include "data/numpy_random.h"
#include "data/text_file.h"
#include "tests/common/temp_dir.h"
#include "tokenizer/bpe.h"
#include "train/classifier_data.h"
#include "util/error.h"

namespace gptrain {
namespace {

namespace fs = std::filesystem;
using testing_util::TempDir;

nlohmann::json fixture(const std::string& name) {
  return nlohmann::json::parse(data::read_text_file(fs::path(GPTRAIN_FIXTURES_DIR) / "cls" / name));
}

std::string fnv1a64(const std::string& bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ULL;
  return fmt::format("{:016x}", h);
}

// The data dir's SMS Spam Collection, or "" (the test then skips).
fs::path sms_file() {
  const char* dir = std::getenv("GPTRAIN_TEST_DATA_DIR");
  if (!dir) return {};
  const fs::path p = fs::path(dir) / "sms_spam" / "SMSSpamCollection";
  return fs::exists(p) ? p : fs::path();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

void write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

TEST(Csv, parses_like_pandas_read_csv) {
  const nlohmann::json cases = fixture("csv_cases.json");
  ASSERT_GE(cases["cases"].size(), 20u);
  for (const auto& c : cases["cases"]) {
    const std::string name = c["name"], text = c["text"], sep = c["sep"];
    SCOPED_TRACE(name);
    if (c.contains("error")) {
      EXPECT_THROW(data::parse_table(text, sep[0], name), Error) << "pandas: " << c["error"];
      continue;
    }
    const std::vector<data::CsvRecord> records = data::parse_table(text, sep[0], name);
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : records) rows.push_back(r.fields);
    EXPECT_EQ(rows, c["rows"].get<std::vector<std::vector<std::string>>>());
  }
}

TEST(Csv, records_know_their_lines_and_writing_round_trips) {
  const auto records = data::parse_delimited("a\tb\n\nc\t\"x\ny\"\nd\te", '\t', "t");
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].line, 1);
  EXPECT_EQ(records[1].line, 3);
  EXPECT_EQ(records[1].last_line, 4);
  EXPECT_EQ(records[2].line, 5);
  const std::vector<std::string> fields = {"plain", "with, comma", "with \"quotes\"", "two\nlines", "cr\rhere", ""};
  const std::string line = data::csv_line(fields);
  EXPECT_EQ(line, "plain,\"with, comma\",\"with \"\"quotes\"\"\",\"two\nlines\",\"cr\rhere\",\n");
  const auto back = data::parse_delimited(line, ',', "t");
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].fields, fields);
}

TEST(NumpyRandom, legacy_permutation_equals_numpy) {
  // np.random.RandomState(123).permutation(n)[:10] for n = 4825 (the ham rows) and 1494.
  const std::vector<int64_t> ham = {3720, 3580, 4182, 3858, 4713, 3847, 2247, 1912, 4512, 879};
  const std::vector<int64_t> all = {263, 627, 887, 925, 1050, 587, 182, 1411, 103, 392};
  auto p = data::NumpyRandomState(123).permutation(4825);
  EXPECT_EQ(std::vector<int64_t>(p.begin(), p.begin() + 10), ham);
  p = data::NumpyRandomState(123).permutation(1494);
  EXPECT_EQ(std::vector<int64_t>(p.begin(), p.begin() + 10), all);
}

TEST(SmsSpam, parsing_balancing_and_split_equal_the_book) {
  const fs::path sms = sms_file();
  if (sms.empty()) GTEST_SKIP() << "GPTRAIN_TEST_DATA_DIR has no sms_spam/SMSSpamCollection";
  const nlohmann::json book = fixture("sms_spam_book.json");
  const data::LabelledTable table = data::read_labelled_table(sms, {});
  ASSERT_EQ(static_cast<int64_t>(table.rows.size()), book["rows"].get<int64_t>());  // 5572, not 5574 lines
  std::string records;
  std::map<std::string, int64_t> counts;
  for (const auto& r : table.rows) {
    records += r.label + "\t" + r.text + "\n";
    ++counts[r.label];
  }
  EXPECT_EQ(fnv1a64(records), book["records_fnv1a64"].get<std::string>());
  EXPECT_EQ(counts["ham"], 4825);
  EXPECT_EQ(counts["spam"], 747);
  // Raw lines 5082-5084 are one record (an unclosed quote), and line 283 ("Wen u miss someone, ...
  // Keep-in-touch" gdeve..) loses its quotes.
  bool merged = false;
  for (const auto& r : table.rows) merged |= r.line == 5082 && r.text.starts_with("Keep ur problems") &&
                                            r.text.find('\n') != std::string::npos;
  EXPECT_TRUE(merged);
  for (const auto& r : table.rows) {
    if (r.line == 283) {
      EXPECT_EQ(r.text.substr(0, 10) + "|" + r.text.substr(r.text.size() - 26), "Wen u miss|just Keep-in-touch gdeve..");
    }
  }

  const std::vector<std::string> classes = data::class_names_of(table.rows);
  ASSERT_EQ(classes, (std::vector<std::string>{"ham", "spam"}));
  const std::vector<int32_t> ids = label_ids(table, classes);
  const std::vector<int64_t> balanced = data::balance_by_undersampling(ids, 2, 123);
  EXPECT_EQ(balanced, book["balanced_rows"].get<std::vector<int64_t>>());
  const data::Split split = data::random_split(balanced, 0.7, 0.1, 123);
  EXPECT_EQ(split.train.size(), 1045u);
  EXPECT_EQ(split.validation.size(), 149u);
  EXPECT_EQ(split.test.size(), 300u);
  const std::map<std::string, const std::vector<int64_t>*> parts = {
      {"train", &split.train}, {"validation", &split.validation}, {"test", &split.test}};
  for (const auto& [name, rows] : parts) {
    SCOPED_TRACE(name);
    EXPECT_EQ(*rows, book["splits"][name]["rows"].get<std::vector<int64_t>>());
    // The book's file: labels mapped to 0/1 before splitting, to_csv(index=None).
    std::vector<data::LabelledRow> mapped;
    for (int64_t r : *rows) {
      data::LabelledRow row = table.rows[static_cast<size_t>(r)];
      row.label = row.label == "ham" ? "0" : "1";
      mapped.push_back(row);
    }
    const std::string csv = data::labelled_csv(mapped);
    EXPECT_EQ(fnv1a64(csv), book["splits"][name]["csv_fnv1a64"].get<std::string>());
    // ... and reading it back gives the same rows (the round trip of --train/--val/--test).
    TempDir dir;
    write(dir / (name + ".csv"), csv);
    const data::LabelledTable back = data::read_labelled_table(dir / (name + ".csv"), {});
    ASSERT_EQ(back.rows.size(), mapped.size());
    for (size_t i = 0; i < mapped.size(); ++i) {
      EXPECT_EQ(back.rows[i].label, mapped[i].label);
      EXPECT_EQ(back.rows[i].text, mapped[i].text);
    }
  }
}

TEST(SmsSpam, padded_length_and_batches_equal_the_book) {
  const fs::path sms = sms_file();
  if (sms.empty()) GTEST_SKIP() << "GPTRAIN_TEST_DATA_DIR has no sms_spam/SMSSpamCollection";
  ClassifierDataOptions o;
  o.data = sms.string();
  o.balance = true;
  const ClassifierSplits s = prepare_classifier_splits(o);
  const Tokenizer tokenizer = Tokenizer::from_dir(sms.parent_path().parent_path() / "gpt2_tokenizer");
  const auto encoded = encode_texts(tokenizer, s.train);
  const int64_t T = choose_max_length(encoded, s.train, 0, 1024);
  EXPECT_EQ(T, 120);
  const data::ClassificationSet train = data::pad_and_stack(encoded, label_ids(s.train, s.class_names), T, 50256);
  EXPECT_EQ(data::ClassificationLoader(train, 8, true, true, 123).num_batches(), 130);
  const data::ClassificationSet val = data::pad_and_stack(encode_texts(tokenizer, s.validation),
                                                          label_ids(s.validation, s.class_names), T, 50256);
  EXPECT_EQ(data::ClassificationLoader(val, 8, false, false, 123).num_batches(), 19);
  // A context shorter than the longest text: the error suggests --max-length.
  EXPECT_NE(error_of([&] { choose_max_length(encoded, s.train, 0, 100); }).find("pass --max-length 100"),
            std::string::npos);
}

TEST(LabelledText, any_columns_and_classes) {
  TempDir dir;
  write(dir / "reviews.csv", "id,sentiment,review\n1,pos,\"Great, really\"\n2,neg,Bad\n3,neutral,Meh\n4,pos,Nice\n");
  data::TableOptions t;
  t.text_column = "review";
  t.label_column = "sentiment";
  const data::LabelledTable table = data::read_labelled_table(dir / "reviews.csv", t);
  ASSERT_EQ(table.rows.size(), 4u);
  EXPECT_EQ(table.rows[0].text, "Great, really");
  EXPECT_EQ(table.rows[0].line, 2);
  EXPECT_EQ(data::class_names_of(table.rows), (std::vector<std::string>{"neg", "neutral", "pos"}));
  // Numeric labels sort as numbers; columns may be given by index.
  write(dir / "n.tsv", "9\tnine\n10\tten\n2\ttwo\n");
  t = {};
  t.header = 0;
  const data::LabelledTable numbers = data::read_labelled_table(dir / "n.tsv", t);
  EXPECT_EQ(data::class_names_of(numbers.rows), (std::vector<std::string>{"2", "9", "10"}));
  // Undersampling with three classes keeps the smallest class whole and samples the others.
  const std::vector<int32_t> labels = {0, 0, 0, 1, 1, 2, 2, 2, 2};
  const std::vector<int64_t> kept = data::balance_by_undersampling(labels, 3, 123);
  ASSERT_EQ(kept.size(), 6u);
  EXPECT_EQ(labels[static_cast<size_t>(kept[0])], 0);
  EXPECT_EQ(std::vector<int64_t>(kept.begin() + 2, kept.begin() + 4), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(labels[static_cast<size_t>(kept[5])], 2);
}

// Must show 6: each error names the file and the line, says what is wrong and how to fix it.
TEST(LabelledText, errors_name_file_and_line) {
  TempDir dir;
  const auto path = [&](const std::string& name, const std::string& text) {
    write(dir / name, text);
    return (dir / name).string();
  };
  const std::string good = path("train.csv", "Label,Text\nham,hello\nspam,WIN\nham,see you\n");

  const std::string missing = path("missing.csv", "Label,Message\nham,hello\n");
  std::string e = error_of([&] { data::read_labelled_table(missing, {}); });
  EXPECT_NE(e.find(missing + " line 1: missing column: no column 'Text'"), std::string::npos) << e;
  EXPECT_NE(e.find("'Label', 'Message'"), std::string::npos) << e;
  EXPECT_NE(e.find("--text-column"), std::string::npos) << e;

  const std::string unknown = path("val.csv", "Label,Text\nham,hi\n\"eggs\",what\n");
  ClassifierDataOptions o;
  o.train = good;
  o.val = unknown;
  e = error_of([&] { prepare_classifier_splits(o); });
  EXPECT_NE(e.find(unknown + " line 3: unknown label 'eggs'"), std::string::npos) << e;
  EXPECT_NE(e.find("'ham', 'spam'"), std::string::npos) << e;

  const std::string empty = path("empty.csv", "Label,Text\nham,hi\nspam,\"\"\n");
  e = error_of([&] { data::read_labelled_table(empty, {}); });
  EXPECT_NE(e.find(empty + " line 3: empty text in column 'Text'"), std::string::npos) << e;

  const std::string unclosed = path("unclosed.tsv", "ham\thi\nspam\t\"never closed\nham\tok\n");
  data::TableOptions no_header;
  no_header.header = 0;
  e = error_of([&] { data::read_labelled_table(unclosed, no_header); });
  EXPECT_NE(e.find(unclosed + " line 2: malformed line: the quoted field that starts here is never closed"),
            std::string::npos)
      << e;
  const std::string wide = path("wide.tsv", "ham\thi\nspam\tfree\tmoney\n");
  e = error_of([&] { data::read_labelled_table(wide, no_header); });
  EXPECT_NE(e.find(wide + " line 2: malformed line: 3 fields separated by tabs, but line 1 has 2"), std::string::npos)
      << e;
  const std::string narrow = path("narrow.csv", "Label,Text\nham,hi\nspam\n");
  e = error_of([&] { data::read_labelled_table(narrow, {}); });
  EXPECT_NE(e.find(narrow + " line 3: malformed line: 1 field, so the 2nd field (Text) is missing"), std::string::npos)
      << e;

  const std::string single = path("single.csv", "Label,Text\nham,hi\nham,there\n");
  o = {};
  o.train = single;
  o.val = good;
  e = error_of([&] { prepare_classifier_splits(o); });
  EXPECT_NE(e.find(single + ": single class: every one of the 2 training rows has the label 'ham'"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("line 2"), std::string::npos) << e;
}

}  // namespace
}  // namespace gptrain
