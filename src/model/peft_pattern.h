// PEFT's rank_pattern / alpha_pattern keys (peft.utils.other.get_pattern_key): key K applies to
// module N when Python's re.match(rf"(.*\.)?({K})$", N) matches, and the first such key in the
// file's order wins.
//
// The keys are Python regular expressions. std::regex backtracks (a 90-byte key made it hang on a
// module name), so they are compiled here to a Thompson NFA and run as a Pike VM: time linear in
// the key's and the name's length, whatever the key. The syntax is Python's, less what needs
// backtracking: literals and escapes, '.', classes [...] (ranges, negation, \d \w \s and their
// complements), groups (...), (?:...) and (?P<name>...), '|', the quantifiers * + ? {m} {m,}
// {m,n} and their lazy forms (a yes/no match does not depend on laziness), and the assertions
// ^ $ \A \Z \b \B. Backreferences, lookaround, inline flags and possessive quantifiers are
// refused. Classes are ASCII (PEFT's module names are).
#pragma once

#include <bitset>
#include <string>
#include <string_view>
#include <vector>

namespace gptrain {

class PeftPattern {
 public:
  // Throws gptrain::Error saying what in `key` is not a pattern this matcher takes.
  explicit PeftPattern(std::string_view key);
  bool matches(std::string_view module) const;
  const std::string& key() const { return key_; }

  // One instruction of the Pike VM (public for the compiler in the .cpp).
  struct Inst {
    enum Op { kByte, kSplit, kJump, kAssert, kMatch } op;
    int x = 0, y = 0;  // kByte: the class index in x; kSplit: both targets; kJump: x; kAssert: the kind in x
  };

 private:
  std::string key_;
  std::vector<Inst> program_;
  std::vector<std::bitset<256>> classes_;
};

// The index of the first of `patterns` that applies to `module` (as above), -1 when none does.
// Readers compile a file's keys once and look every module up here.
int first_match(const std::vector<PeftPattern>& patterns, std::string_view module);

// The first of `keys` that applies to `module`, "" when none does (first_match on keys compiled
// for the call).
std::string match_peft_pattern(const std::vector<std::string>& keys, const std::string& module);

}  // namespace gptrain
