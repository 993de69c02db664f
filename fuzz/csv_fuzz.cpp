// libFuzzer target for delimited text (data/csv.h): the first byte chooses the separator (even:
// ',', odd: a tab; so a leading ',' or '\t' names itself), the rest is the file. parse_delimited
// and parse_table must either refuse it with gptrain::Error or give records with consistent lines
// (each starts after the previous one ended) and, for parse_table, the first record's width; a
// record csv_line writes must read back as the same fields. Any other exception, a sanitizer
// report, a leak or a hang is a bug. Build and run as in fuzz/CMakeLists.txt, with
// -dict=fuzz/csv.dict and the corpus fuzz/corpus/csv.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/csv.h"
#include "fuzz_common.h"

namespace {

using gptrain::data::CsvRecord;
using gptrain::fuzz::expect_clean_rejection;

void check_lines(const std::vector<CsvRecord>& records) {
  int64_t previous_end = 0;
  for (const CsvRecord& r : records) {
    GPTRAIN_FUZZ_REQUIRE(!r.fields.empty());
    GPTRAIN_FUZZ_REQUIRE(r.line > previous_end && r.last_line >= r.line);
    previous_end = r.last_line;
  }
}

// A line csv_line writes that parse_delimited reads as something else: one that is only blank
// (a single empty or all-space field: pandas skips blank lines) or that starts with a byte order
// mark (dropped at the start of a file).
bool reads_back(const std::string& line) {
  if (line.find_first_not_of(" \t\n") == std::string::npos) return false;
  return !std::string_view(line).starts_with("\xEF\xBB\xBF");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const char sep = (data[0] & 1) ? '\t' : ',';
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<CsvRecord> records;
  bool parsed = false;
  try {
    records = gptrain::data::parse_delimited(text, sep, "fuzz.csv");
    parsed = true;
  } catch (const gptrain::Error& e) {
    expect_clean_rejection(e);
  }
  if (parsed) check_lines(records);
  try {
    const std::vector<CsvRecord> table = gptrain::data::parse_table(text, sep, "fuzz.csv");
    GPTRAIN_FUZZ_REQUIRE(parsed && table.size() == records.size());  // the same records, padded
    check_lines(table);
    for (size_t i = 0; i < table.size(); ++i) {
      GPTRAIN_FUZZ_REQUIRE(table[i].fields.size() == table[0].fields.size());
      GPTRAIN_FUZZ_REQUIRE(table[i].line == records[i].line);
      for (size_t f = 0; f < records[i].fields.size(); ++f)
        GPTRAIN_FUZZ_REQUIRE(table[i].fields[f] == records[i].fields[f]);
    }
  } catch (const gptrain::Error& e) {
    expect_clean_rejection(e);
  }
  if (!parsed || sep != ',') return 0;
  // csv_line (DataFrame.to_csv) and parse_delimited (read_csv) agree on every record.
  for (const CsvRecord& r : records) {
    const std::string line = gptrain::data::csv_line(r.fields);
    if (!reads_back(line)) continue;
    const std::vector<CsvRecord> back = gptrain::data::parse_delimited(line, ',', "csv_line");
    GPTRAIN_FUZZ_REQUIRE(back.size() == 1 && back[0].fields == r.fields);
  }
  return 0;
}
