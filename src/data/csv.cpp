#include "data/csv.h"

#include "util/error.h"

namespace gptrain::data {

namespace {

std::string separator_name(char sep) {
  if (sep == '\t') return "a tab";
  return fmt::format("'{}'", sep);
}

}  // namespace

std::vector<CsvRecord> parse_delimited(std::string_view text, char sep, const std::string& source) {
  const size_t n = text.size();
  size_t i = text.starts_with("\xEF\xBB\xBF") ? 3 : 0;
  int64_t line = 1;
  std::vector<CsvRecord> records;
  // Characters of a blank line: pandas' WHITESPACE_LINE state skips spaces and tabs, except the
  // separator itself (a line "\t" is a record of two empty fields in a TSV).
  const auto blank = [sep](char c) { return (c == ' ' || c == '\t') && c != sep; };
  const auto line_break_at = [&](size_t k) { return k < n && (text[k] == '\n' || text[k] == '\r'); };
  // Steps over the line break at i (\r\n counts once).
  const auto skip_line_break = [&] {
    i += text[i] == '\r' && i + 1 < n && text[i + 1] == '\n' ? 2 : 1;
    ++line;
  };
  std::string field;
  while (i < n) {
    size_t j = i;
    while (j < n && blank(text[j])) ++j;
    if (j == n) break;  // spaces at the very end
    if (line_break_at(j)) {
      i = j;
      skip_line_break();
      continue;
    }
    CsvRecord record;
    record.line = line;
    for (;;) {  // one field per iteration
      field.clear();
      if (i < n && text[i] == '"') {
        const int64_t opened = line;
        ++i;
        for (;;) {
          if (i >= n)
            fail("{} line {}: malformed line: the quoted field that starts here is never closed (the file ends "
                 "inside it; pandas: \"EOF inside string\"); a field that starts with '\"' must end with '\"', with "
                 "every '\"' inside it doubled",
                 source, opened);
          const char c = text[i];
          if (c == '"') {
            if (i + 1 < n && text[i + 1] == '"') {  // "" inside quotes is one quote
              field += '"';
              i += 2;
              continue;
            }
            ++i;  // the closing quote; what follows it joins the field as plain text
            break;
          }
          if (c == '\n' || (c == '\r' && !(i + 1 < n && text[i + 1] == '\n'))) ++line;
          field += c;
          ++i;
        }
      }
      while (i < n && text[i] != sep && text[i] != '\n' && text[i] != '\r') field += text[i++];
      record.fields.push_back(field);
      if (i >= n) break;
      if (text[i] == sep) {
        ++i;
        continue;
      }
      record.last_line = line;
      skip_line_break();
      break;
    }
    if (record.last_line == 0) record.last_line = line;
    records.push_back(std::move(record));
  }
  return records;
}

std::vector<CsvRecord> parse_table(std::string_view text, char sep, const std::string& source) {
  std::vector<CsvRecord> records = parse_delimited(text, sep, source);
  if (records.empty()) return records;
  const size_t width = records.front().fields.size();
  for (CsvRecord& r : records) {
    if (r.fields.size() > width)
      fail("{} line {}: malformed line: {} fields separated by {}, but line {} has {}; quote a field that contains "
           "the separator (\"...\")",
           source, r.line, r.fields.size(), separator_name(sep), records.front().line, width);
    r.fields.resize(width);
  }
  return records;
}

std::string csv_line(const std::vector<std::string>& fields) {
  std::string out;
  for (size_t f = 0; f < fields.size(); ++f) {
    if (f) out += ',';
    const std::string& s = fields[f];
    if (s.find_first_of(",\"\n\r") == std::string::npos) {
      out += s;
      continue;
    }
    out += '"';
    for (char c : s) {
      if (c == '"') out += '"';
      out += c;
    }
    out += '"';
  }
  out += '\n';
  return out;
}

}  // namespace gptrain::data
