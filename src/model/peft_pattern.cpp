#include "model/peft_pattern.h"

#include <cctype>
#include <memory>

#include "util/error.h"

namespace gptrain {

namespace {

using Inst = PeftPattern::Inst;
using ByteSet = std::bitset<256>;

enum AssertKind { kBegin, kEnd, kEndStrict, kWordBoundary, kNotWordBoundary };

// PEFT's composition: the key is pasted into this text, as its f-string does, so a key's
// unbalanced parenthesis means there what it means here.
constexpr std::string_view kBefore = "(.*\\.)?(", kAfter = ")$";
constexpr int kMaxDepth = 64;             // nested groups
constexpr size_t kMaxProgram = 1 << 16;   // instructions, after counted repeats are unrolled
constexpr int kMaxCount = 1000;           // the m and n of {m,n}

struct Node {
  enum Kind { kClass, kConcat, kAlternation, kRepeat, kAssertion } kind = kConcat;
  ByteSet bytes;                             // kClass
  std::vector<std::unique_ptr<Node>> kids;   // kConcat, kAlternation; kRepeat: one
  int min = 0, max = 0;                      // kRepeat; max -1: unbounded
  AssertKind assertion = kBegin;             // kAssertion
};
using NodePtr = std::unique_ptr<Node>;

bool is_word(unsigned char c) { return std::isalnum(c) || c == '_'; }

ByteSet class_of(char letter) {  // \d \w \s and their complements, ASCII
  ByteSet s;
  for (int c = 0; c < 256; ++c) {
    const bool in = letter == 'd' || letter == 'D' ? (c >= '0' && c <= '9')
                    : letter == 'w' || letter == 'W' ? is_word(static_cast<unsigned char>(c))
                                                     : (c == ' ' || (c >= '\t' && c <= '\r'));
    s[c] = in;
  }
  return std::isupper(static_cast<unsigned char>(letter)) ? ~s : s;
}

class Parser {
 public:
  Parser(std::string_view text, std::string_view key) : p_(text), key_(key) {}

  NodePtr parse() {
    NodePtr n = alternation(0);
    if (i_ < p_.size()) error("unbalanced parenthesis");  // only a ')' stops alternation early
    return n;
  }

 private:
  [[noreturn]] void error(std::string_view what) const {
    // positions in the key, not in PEFT's composition around it
    const long at = static_cast<long>(i_) - static_cast<long>(kBefore.size());
    if (at >= 0 && at <= static_cast<long>(key_.size()))
      fail("pattern key '{}': {} at position {}", key_, what, at);
    fail("pattern key '{}': {}", key_, what);
  }
  bool more() const { return i_ < p_.size(); }
  char peek() const { return p_[i_]; }

  NodePtr alternation(int depth) {
    if (depth > kMaxDepth) error(fmt::format("groups nested deeper than {}", kMaxDepth));
    auto alt = std::make_unique<Node>();
    alt->kind = Node::kAlternation;
    alt->kids.push_back(concatenation(depth));
    while (more() && peek() == '|') {
      ++i_;
      alt->kids.push_back(concatenation(depth));
    }
    return alt->kids.size() == 1 ? std::move(alt->kids[0]) : std::move(alt);
  }

  NodePtr concatenation(int depth) {
    auto cat = std::make_unique<Node>();
    cat->kind = Node::kConcat;
    while (more() && peek() != '|' && peek() != ')') cat->kids.push_back(repeated(depth));
    return cat;
  }

  // {m}, {m,}, {,n}, {m,n} at i_ (Python's syntax; anything else is a literal '{')
  bool counted(int& min, int& max) {
    size_t j = i_ + 1;
    const auto number = [&](int& out) {
      const size_t from = j;
      long v = 0;
      while (j < p_.size() && std::isdigit(static_cast<unsigned char>(p_[j]))) {
        v = std::min<long>(v * 10 + (p_[j] - '0'), kMaxCount + 1L);
        ++j;
      }
      out = static_cast<int>(v);
      return j > from;
    };
    int lo = 0, hi = -1;
    const bool has_lo = number(lo);
    if (j < p_.size() && p_[j] == ',') {
      ++j;
      if (!number(hi)) hi = -1;
    } else {
      if (!has_lo) return false;
      hi = lo;
    }
    if (j >= p_.size() || p_[j] != '}') return false;
    if (lo > kMaxCount || hi > kMaxCount) error(fmt::format("a repeat count above {}", kMaxCount));
    if (hi >= 0 && lo > hi) error("min repeat greater than max repeat");
    i_ = j + 1;
    min = lo;
    max = hi;
    return true;
  }

  NodePtr repeated(int depth) {
    NodePtr atom_node = atom(depth);
    bool quantified = false;
    while (more()) {
      int min = 0, max = -1;
      const size_t at = i_;
      const char c = peek();
      if (c == '*' || c == '+' || c == '?') {
        min = c == '+' ? 1 : 0;
        max = c == '?' ? 1 : -1;
        ++i_;
      } else if (c != '{' || !counted(min, max)) {
        break;
      }
      if (quantified || atom_node->kind == Node::kAssertion) {
        i_ = at;  // errors point at the quantifier, as Python's do
        error(quantified ? "multiple repeat" : "nothing to repeat");
      }
      if (more() && peek() == '?') ++i_;  // lazy: the same yes/no
      else if (more() && peek() == '+') error("a possessive quantifier (it needs backtracking control)");
      auto rep = std::make_unique<Node>();
      rep->kind = Node::kRepeat;
      rep->min = min;
      rep->max = max;
      rep->kids.push_back(std::move(atom_node));
      atom_node = std::move(rep);
      quantified = true;
    }
    return atom_node;
  }

  NodePtr of_class(const ByteSet& s) {
    auto n = std::make_unique<Node>();
    n->kind = Node::kClass;
    n->bytes = s;
    return n;
  }
  NodePtr of_assertion(AssertKind k) {
    auto n = std::make_unique<Node>();
    n->kind = Node::kAssertion;
    n->assertion = k;
    return n;
  }

  // An escape's single byte (\n, \x41, \.), or -1 for a class letter it leaves to the caller.
  int escaped_byte(bool in_class) {
    if (!more()) error("bad escape (end of pattern)");
    const char c = p_[i_++];
    switch (c) {
      case 'n': return '\n';
      case 't': return '\t';
      case 'r': return '\r';
      case 'f': return '\f';
      case 'v': return '\v';
      case 'a': return '\a';
      case '0': return 0;
      case 'x': {
        if (i_ + 2 > p_.size() || !std::isxdigit(static_cast<unsigned char>(p_[i_])) ||
            !std::isxdigit(static_cast<unsigned char>(p_[i_ + 1])))
          error("incomplete escape \\x");
        const int v = std::stoi(std::string(p_.substr(i_, 2)), nullptr, 16);
        i_ += 2;
        return v;
      }
      case 'b':
        if (in_class) return '\b';
        return -1;
      default: break;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) error("a backreference");
    if (std::string_view("dDwWsS").find(c) != std::string_view::npos) return -1;
    if (!in_class && std::string_view("AZB").find(c) != std::string_view::npos) return -1;
    if (std::isalpha(static_cast<unsigned char>(c))) error(fmt::format("bad escape \\{}", c));
    return static_cast<unsigned char>(c);
  }

  NodePtr bracket() {  // at the byte after '['
    ByteSet s;
    const bool negated = more() && peek() == '^';
    if (negated) ++i_;
    bool first = true;
    for (;;) {
      if (!more()) error("unterminated character set");
      if (peek() == ']' && !first) {
        ++i_;
        break;
      }
      first = false;
      int lo;
      if (peek() == '\\') {
        ++i_;
        lo = escaped_byte(true);
        if (lo < 0) {
          s |= class_of(p_[i_ - 1]);
          continue;
        }
      } else {
        lo = static_cast<unsigned char>(p_[i_++]);
      }
      int hi = lo;
      if (i_ + 1 < p_.size() && peek() == '-' && p_[i_ + 1] != ']') {
        ++i_;
        if (peek() == '\\') {
          ++i_;
          hi = escaped_byte(true);
          if (hi < 0) error("bad character range");
        } else {
          hi = static_cast<unsigned char>(p_[i_++]);
        }
        if (hi < lo) error("bad character range");
      }
      for (int c = lo; c <= hi; ++c) s[c] = true;
    }
    return of_class(negated ? ~s : s);
  }

  NodePtr atom(int depth) {
    const char c = p_[i_++];
    switch (c) {
      case '(': {
        if (more() && peek() == '?') {
          ++i_;
          if (more() && peek() == ':') {
            ++i_;
          } else if (i_ + 1 < p_.size() && peek() == 'P' && p_[i_ + 1] == '<') {
            const size_t close = p_.find('>', i_ + 2);
            if (close == std::string_view::npos || close == i_ + 2) error("a group name");
            for (size_t j = i_ + 2; j < close; ++j)
              if (!is_word(static_cast<unsigned char>(p_[j]))) error("a group name");
            i_ = close + 1;
          } else {
            error("lookaround, a backreference or inline flags ('(?' other than '(?:' and '(?P<name>')");
          }
        }
        NodePtr inner = alternation(depth + 1);
        if (!more() || peek() != ')') error("missing ), unterminated subpattern");
        ++i_;
        return inner;
      }
      case '[': return bracket();
      case '.': return of_class(~ByteSet().set('\n'));
      case '^': return of_assertion(kBegin);
      case '$': return of_assertion(kEnd);
      case '*':
      case '+':
      case '?': --i_; error("nothing to repeat");
      case '{': {
        int min, max;
        --i_;
        if (counted(min, max)) error("nothing to repeat");
        ++i_;
        break;
      }
      case '\\': {
        const int b = escaped_byte(false);
        if (b >= 0) return of_class(ByteSet().set(b));
        const char e = p_[i_ - 1];
        if (e == 'A') return of_assertion(kBegin);
        if (e == 'Z') return of_assertion(kEndStrict);
        if (e == 'b') return of_assertion(kWordBoundary);
        if (e == 'B') return of_assertion(kNotWordBoundary);
        return of_class(class_of(e));
      }
      default: break;
    }
    return of_class(ByteSet().set(static_cast<unsigned char>(c)));
  }

  std::string_view p_, key_;
  size_t i_ = 0;
};

class Compiler {
 public:
  Compiler(std::vector<Inst>& program, std::vector<ByteSet>& classes, std::string_view key)
      : prog_(program), classes_(classes), key_(key) {}

  void emit(const Node& n) {
    // A repeat of what emits nothing ("((){1000}){1000}") adds no state but still costs a call.
    if (++calls_ > 4 * kMaxProgram)
      fail("pattern key '{}': more than {} parts once its repeats are unrolled", key_, 4 * kMaxProgram);
    switch (n.kind) {
      case Node::kClass:
        classes_.push_back(n.bytes);
        add({Inst::kByte, static_cast<int>(classes_.size() - 1)});
        break;
      case Node::kAssertion: add({Inst::kAssert, n.assertion}); break;
      case Node::kConcat:
        for (const NodePtr& k : n.kids) emit(*k);
        break;
      case Node::kAlternation: {
        std::vector<size_t> jumps;
        for (size_t k = 0; k + 1 < n.kids.size(); ++k) {  // split(kid, rest); kid; jump end
          const size_t split = add({Inst::kSplit});
          prog_[split].x = here();
          emit(*n.kids[k]);
          jumps.push_back(add({Inst::kJump}));
          prog_[split].y = here();
        }
        emit(*n.kids.back());
        for (size_t j : jumps) prog_[j].x = here();
        break;
      }
      case Node::kRepeat: {
        const Node& body = *n.kids[0];
        for (int k = 0; k < n.min; ++k) emit(body);
        if (n.max < 0) {  // L: split(body, out); body; jump L
          const size_t loop = add({Inst::kSplit});
          prog_[loop].x = here();
          emit(body);
          add({Inst::kJump, static_cast<int>(loop)});
          prog_[loop].y = here();
        } else {  // each optional copy may skip to the end
          std::vector<size_t> splits;
          for (int k = n.min; k < n.max; ++k) {
            splits.push_back(add({Inst::kSplit}));
            prog_[splits.back()].x = here();
            emit(body);
          }
          for (size_t s : splits) prog_[s].y = here();
        }
        break;
      }
    }
  }
  size_t add(Inst inst) {
    if (prog_.size() >= kMaxProgram)
      fail("pattern key '{}': more than {} states once its repeats are unrolled", key_, kMaxProgram);
    prog_.push_back(inst);
    return prog_.size() - 1;
  }

 private:
  int here() const { return static_cast<int>(prog_.size()); }
  std::vector<Inst>& prog_;
  std::vector<ByteSet>& classes_;
  std::string_view key_;
  size_t calls_ = 0;
};

}  // namespace

PeftPattern::PeftPattern(std::string_view key) : key_(key) {
  const std::string text = std::string(kBefore) + key_ + std::string(kAfter);
  const NodePtr root = Parser(text, key_).parse();
  Compiler c(program_, classes_, key_);
  c.emit(*root);
  c.add({Inst::kMatch});
}

bool PeftPattern::matches(std::string_view s) const {
  const size_t n = s.size();
  const auto holds = [&](int kind, size_t pos) {
    switch (kind) {
      case kBegin: return pos == 0;
      case kEnd: return pos == n || (pos + 1 == n && s[pos] == '\n');  // Python's '$'
      case kEndStrict: return pos == n;
      default: {
        const bool before = pos > 0 && is_word(static_cast<unsigned char>(s[pos - 1]));
        const bool after = pos < n && is_word(static_cast<unsigned char>(s[pos]));
        return (before != after) == (kind == kWordBoundary);
      }
    }
  };
  // The threads at one position: each instruction once (its mark is the position), so a step
  // costs at most the program's length.
  std::vector<int> mark(program_.size(), -1), current, next, stack;
  const auto add = [&](std::vector<int>& list, int pc0, size_t pos) {
    stack.assign(1, pc0);
    while (!stack.empty()) {
      const int pc = stack.back();
      stack.pop_back();
      if (mark[pc] == static_cast<int>(pos)) continue;
      mark[pc] = static_cast<int>(pos);
      const Inst& in = program_[pc];
      switch (in.op) {
        case Inst::kByte:
        case Inst::kMatch: list.push_back(pc); break;
        case Inst::kJump: stack.push_back(in.x); break;
        case Inst::kSplit:
          stack.push_back(in.y);
          stack.push_back(in.x);
          break;
        case Inst::kAssert:
          if (holds(in.x, pos)) stack.push_back(pc + 1);
          break;
      }
    }
  };
  add(current, 0, 0);
  for (size_t pos = 0;; ++pos) {
    for (int pc : current)
      if (program_[pc].op == Inst::kMatch) return true;
    if (pos == n || current.empty()) return false;
    const unsigned char c = static_cast<unsigned char>(s[pos]);
    next.clear();
    for (int pc : current)
      if (program_[pc].op == Inst::kByte && classes_[program_[pc].x][c]) add(next, pc + 1, pos + 1);
    current.swap(next);
  }
}

int first_match(const std::vector<PeftPattern>& patterns, std::string_view module) {
  for (size_t i = 0; i < patterns.size(); ++i)
    if (patterns[i].matches(module)) return static_cast<int>(i);
  return -1;
}

std::string match_peft_pattern(const std::vector<std::string>& keys, const std::string& module) {
  const std::vector<PeftPattern> patterns(keys.begin(), keys.end());
  const int i = first_match(patterns, module);
  return i < 0 ? "" : keys[static_cast<size_t>(i)];
}

}  // namespace gptrain
