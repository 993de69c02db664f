#include "data/python_json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <string_view>

#include "util/error.h"

namespace gptrain::data {

namespace {

void append_u16(std::string& out, uint32_t unit) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\u%04x", unit);
  out += buf;
}

// json.encoder.py_encode_basestring_ascii: \" \\ \n \r \t \b \f, every other byte outside
// 0x20..0x7e as \uXXXX (lowercase), code points above U+FFFF as surrogate pairs.
void append_string(std::string& out, std::string_view s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (c < 0x20 || c == 0x7f)
            append_u16(out, c);
          else
            out += static_cast<char>(c);
      }
      continue;
    }
    const int n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    GPTRAIN_CHECK(n > 0 && i + n <= s.size(), "invalid UTF-8 at byte {} of a JSON string", i);
    uint32_t cp = c & (0x7F >> n);
    for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    i += n;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      append_u16(out, 0xD800 | (cp >> 10));
      append_u16(out, 0xDC00 | (cp & 0x3FF));
    } else {
      append_u16(out, cp);
    }
  }
  out += '"';
}

// float.__repr__: the shortest digits that round-trip; positional for decimal exponents in
// [-4, 16), otherwise d.ddde+XX with at least two exponent digits.
void append_float(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "Infinity" : "-Infinity";
    return;
  }
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(r.ptr - buf));
  const size_t e = sci.find('e');
  std::string mantissa(sci.substr(0, e));
  const int exp10 = std::stoi(std::string(sci.substr(e + 1)));
  std::string sign;
  if (mantissa[0] == '-') {
    sign = "-";
    mantissa.erase(0, 1);
  }
  std::string digits;
  for (char ch : mantissa)
    if (ch != '.') digits += ch;
  if (exp10 >= -4 && exp10 < 16) {
    std::string s;
    if (exp10 < 0) {
      s = "0." + std::string(static_cast<size_t>(-exp10 - 1), '0') + digits;
    } else if (static_cast<int>(digits.size()) <= exp10 + 1) {
      s = digits + std::string(static_cast<size_t>(exp10 + 1) - digits.size(), '0') + ".0";
    } else {
      s = digits.substr(0, static_cast<size_t>(exp10 + 1)) + "." + digits.substr(static_cast<size_t>(exp10 + 1));
    }
    out += sign + s;
    return;
  }
  std::string m = digits.substr(0, 1);
  if (digits.size() > 1) m += "." + digits.substr(1);
  char ebuf[16];
  std::snprintf(ebuf, sizeof ebuf, "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
  out += sign + m + ebuf;
}

void dump(std::string& out, const nlohmann::ordered_json& v, int indent, int level) {
  const std::string item_sep = indent >= 0 ? "," : ", ";
  auto newline = [&](int lvl) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent * lvl), ' ');
  };
  switch (v.type()) {
    case nlohmann::ordered_json::value_t::object: {
      if (v.empty()) {
        out += "{}";
        return;
      }
      out += '{';
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) out += item_sep;
        first = false;
        newline(level + 1);
        append_string(out, it.key());
        out += ": ";
        dump(out, it.value(), indent, level + 1);
      }
      newline(level);
      out += '}';
      return;
    }
    case nlohmann::ordered_json::value_t::array: {
      if (v.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      bool first = true;
      for (const auto& item : v) {
        if (!first) out += item_sep;
        first = false;
        newline(level + 1);
        dump(out, item, indent, level + 1);
      }
      newline(level);
      out += ']';
      return;
    }
    case nlohmann::ordered_json::value_t::string: append_string(out, v.get_ref<const std::string&>()); return;
    case nlohmann::ordered_json::value_t::boolean: out += v.get<bool>() ? "true" : "false"; return;
    case nlohmann::ordered_json::value_t::number_integer: out += std::to_string(v.get<int64_t>()); return;
    case nlohmann::ordered_json::value_t::number_unsigned: out += std::to_string(v.get<uint64_t>()); return;
    case nlohmann::ordered_json::value_t::number_float: append_float(out, v.get<double>()); return;
    default: out += "null"; return;
  }
}

}  // namespace

std::string python_json_dumps(const nlohmann::ordered_json& value, int indent) {
  std::string out;
  dump(out, value, indent, 0);
  return out;
}

}  // namespace gptrain::data
