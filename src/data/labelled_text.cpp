#include "data/labelled_text.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>

#include "data/csv.h"
#include "data/numpy_random.h"
#include "data/text_file.h"
#include "util/error.h"

namespace gptrain::data {

namespace fs = std::filesystem;

namespace {

bool is_index(const std::string& s) {
  return !s.empty() && s.size() < 10 &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 12; ++i) {
    if (i) out += ", ";
    std::string name = names[i].size() > 40 ? names[i].substr(0, 40) + "..." : names[i];
    out += "'" + name + "'";
  }
  if (names.size() > 12) out += fmt::format(", ... ({} columns)", names.size());
  return out;
}

std::string ordinal(size_t index) {  // 0 -> "1st"
  const size_t n = index + 1;
  const char* suffix = (n % 100 >= 11 && n % 100 <= 13) ? "th"
                       : n % 10 == 1                    ? "st"
                       : n % 10 == 2                    ? "nd"
                       : n % 10 == 3                    ? "rd"
                                                        : "th";
  return std::to_string(n) + suffix;
}

struct Column {
  size_t index = 0;
  std::string name;  // for messages
};

Column resolve_column(const std::string& spec, const char* what, const std::string& source, const CsvRecord& first,
                      bool header) {
  const std::string option = fmt::format("--{}-column", what);
  if (!header) {
    const std::string s = spec.empty() ? (std::string(what) == "text" ? "1" : "0") : spec;
    if (!is_index(s))
      fail("{} has no header row, so {} must be a 0-based column index, got '{}'; or drop --no-header if its first "
           "line names the columns",
           source, option, s);
    const size_t index = std::stoul(s);
    if (index >= first.fields.size())
      fail("{} line {}: {} {} is out of range: the line has {} field{} (indices 0 to {})", source, first.line, option,
           index, first.fields.size(), first.fields.size() == 1 ? "" : "s", first.fields.size() - 1);
    return {index, fmt::format("column {}", index)};
  }
  const std::string name = spec.empty() ? (std::string(what) == "text" ? "Text" : "Label") : spec;
  const auto& fields = first.fields;
  for (size_t i = 0; i < fields.size(); ++i)
    if (fields[i] == name) return {i, name};
  std::vector<size_t> loose;
  for (size_t i = 0; i < fields.size(); ++i)
    if (lower(fields[i]) == lower(name)) loose.push_back(i);
  if (loose.size() == 1) return {loose[0], fields[loose[0]]};
  if (is_index(name) && std::stoul(name) < fields.size()) return {std::stoul(name), fields[std::stoul(name)]};
  fail("{} line {}: missing column: no column '{}' in the header ({}); name the {} column with {} NAME (or a 0-based "
       "index), or pass --no-header if line {} is data",
       source, first.line, name, quoted_list(fields), what, option, first.line);
}

char detect_separator(const fs::path& path, const std::string& text) {
  const std::string ext = lower(path.extension().string());
  if (ext == ".tsv" || ext == ".tab") return '\t';
  if (ext == ".csv") return ',';
  const size_t eol = text.find_first_of("\r\n");
  return text.substr(0, eol).find('\t') != std::string::npos ? '\t' : ',';
}

}  // namespace

LabelledTable read_labelled_table(const fs::path& path, const TableOptions& o) {
  const std::string source = path.string();
  const std::string text = read_text_file(path);
  const char sep = o.sep ? o.sep : detect_separator(path, text);
  const std::string file_name = path.filename().string();
  const bool header = o.header >= 0 ? o.header == 1
                                    : !(file_name == "SMSSpamCollection" || file_name == "SMSSpamCollection.tsv");
  std::vector<CsvRecord> records = parse_delimited(text, sep, source);
  if (records.empty()) fail("{}: no rows (the file holds only blank lines)", source);
  const CsvRecord& first = records.front();
  const Column label = resolve_column(o.label_column, "label", source, first, header);
  const Column textcol = resolve_column(o.text_column, "text", source, first, header);
  if (label.index == textcol.index)
    fail("{}: the label and the text column are the same ({}); choose two columns with --label-column and "
         "--text-column",
         source, label.name);
  LabelledTable table;
  table.source = source;
  table.label_column = label.name;
  table.text_column = textcol.name;
  const size_t width = first.fields.size();
  for (size_t r = header ? 1 : 0; r < records.size(); ++r) {
    const CsvRecord& rec = records[r];
    const std::string where = rec.last_line > rec.line ? fmt::format("{} line {} (a record up to line {})", source,
                                                                     rec.line, rec.last_line)
                                                       : fmt::format("{} line {}", source, rec.line);
    if (rec.fields.size() > width)
      fail("{}: malformed line: {} fields separated by {}, but line {} has {}; quote a field that contains the "
           "separator (\"...\")",
           where, rec.fields.size(), sep == '\t' ? "tabs" : fmt::format("'{}'", sep), first.line, width);
    for (const Column* c : {&label, &textcol})
      if (c->index >= rec.fields.size())
        fail("{}: malformed line: {} field{}, so the {} field ({}) is missing; is the separator {} right (--sep)?",
             where, rec.fields.size(), rec.fields.size() == 1 ? "" : "s", ordinal(c->index), c->name,
             sep == '\t' ? "a tab" : fmt::format("'{}'", sep));
    LabelledRow row{rec.fields[label.index], rec.fields[textcol.index], rec.line};
    if (row.text.empty())
      fail("{}: empty text in {} '{}'; every row needs a text (remove the line or fill it in)", where,
           header ? "column" : "field", textcol.name);
    if (row.label.empty())
      fail("{}: empty label in {} '{}'; every row needs a label (remove the line or fill it in)", where,
           header ? "column" : "field", label.name);
    table.rows.push_back(std::move(row));
  }
  if (table.rows.empty()) fail("{}: no data rows below the header (line {})", source, first.line);
  return table;
}

std::vector<std::string> class_names_of(const std::vector<LabelledRow>& rows) {
  std::map<std::string, int> seen;
  for (const LabelledRow& r : rows) seen[r.label] = 1;
  std::vector<std::string> names;
  for (const auto& [name, unused] : seen) names.push_back(name);
  const auto as_integer = [](const std::string& s, long long& v) {
    const char* end = s.data() + s.size();
    const auto [ptr, ec] = std::from_chars(s.data(), end, v);
    return ec == std::errc() && ptr == end;
  };
  long long unused_value = 0;
  if (std::all_of(names.begin(), names.end(), [&](const std::string& s) { return as_integer(s, unused_value); }))
    std::stable_sort(names.begin(), names.end(), [&](const std::string& a, const std::string& b) {
      long long x = 0, y = 0;
      as_integer(a, x);
      as_integer(b, y);
      return x < y;
    });
  return names;
}

std::vector<int64_t> balance_by_undersampling(const std::vector<int32_t>& labels, int32_t n_classes, uint32_t seed) {
  std::vector<std::vector<int64_t>> members(static_cast<size_t>(n_classes));
  for (size_t i = 0; i < labels.size(); ++i) members[static_cast<size_t>(labels[i])].push_back(static_cast<int64_t>(i));
  size_t smallest = labels.size();
  for (const auto& m : members) smallest = std::min(smallest, m.size());
  std::vector<int64_t> out;
  for (const auto& m : members) {
    if (m.size() == smallest) {
      out.insert(out.end(), m.begin(), m.end());
      continue;
    }
    const std::vector<int64_t> order = NumpyRandomState(seed).permutation(static_cast<int64_t>(m.size()));
    for (size_t k = 0; k < smallest; ++k) out.push_back(m[static_cast<size_t>(order[k])]);
  }
  return out;
}

Split random_split(const std::vector<int64_t>& rows, double train_fraction, double validation_fraction,
                   uint32_t seed) {
  const int64_t n = static_cast<int64_t>(rows.size());
  const std::vector<int64_t> order = NumpyRandomState(seed).permutation(n);
  // Python's int(len(df) * frac): the double product, truncated.
  const int64_t train_end = static_cast<int64_t>(static_cast<double>(n) * train_fraction);
  const int64_t validation_end = train_end + static_cast<int64_t>(static_cast<double>(n) * validation_fraction);
  Split s;
  for (int64_t k = 0; k < n; ++k) {
    const int64_t row = rows[static_cast<size_t>(order[static_cast<size_t>(k)])];
    (k < train_end ? s.train : k < validation_end ? s.validation : s.test).push_back(row);
  }
  return s;
}

std::string labelled_csv(const std::vector<LabelledRow>& rows, const std::string& label_header,
                         const std::string& text_header) {
  std::string out = csv_line({label_header, text_header});
  for (const LabelledRow& r : rows) out += csv_line({r.label, r.text});
  return out;
}

}  // namespace gptrain::data
