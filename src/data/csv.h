// Delimited text (CSV, TSV) read as pandas.read_csv reads it with its C engine and default
// quoting, and written as DataFrame.to_csv writes it. The book reads the SMS Spam Collection with
// read_csv(sep="\t", header=None): a field that starts with '"' is quoted (it may hold the
// separator and line breaks; "" is one quote; the closing quote is dropped and what follows it up
// to the separator is appended), a quote anywhere else is an ordinary character. Its raw lines
// 5082-5084 therefore form one record, and 5574 lines give 5572 rows.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gptrain::data {

struct CsvRecord {
  std::vector<std::string> fields;
  int64_t line = 0;       // 1-based line of the file where the record starts
  int64_t last_line = 0;  // where it ends (a quoted field may span lines)
};

// Every record of `text`, with pandas' rules (header=None, dtype=str, keep_default_na=False):
// - line breaks are \n, \r\n or \r; a leading UTF-8 byte order mark is dropped;
// - empty lines, and lines of spaces (and tabs, unless tab is the separator), are skipped;
// - quoting as above; the fields keep their spaces; "NA" and the like stay text.
// A quoted field still open at the end of the text is an error naming `source` and the line
// where the field starts.
std::vector<CsvRecord> parse_delimited(std::string_view text, char sep, const std::string& source);

// As parse_delimited, then every record padded with empty fields to the width of the first one,
// as read_csv(header=None) does; a record wider than the first is an error naming the line
// (pandas: "Expected 2 fields in line 3, saw 3").
std::vector<CsvRecord> parse_table(std::string_view text, char sep, const std::string& source);

// One CSV line as pandas' to_csv (csv.QUOTE_MINIMAL, ',' separator, '\n' line end): a field
// holding ',', '"', '\n' or '\r' is quoted, with '"' doubled.
std::string csv_line(const std::vector<std::string>& fields);

}  // namespace gptrain::data
