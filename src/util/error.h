// Errors: gptrain::Error for anything a user can cause (bad file, bad option), CHECK for internal
// invariants (always on), DCHECK for hot-path invariants (debug builds only).
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace gptrain {

// Thrown for every failure; main() prints what() and exits 1. Messages name the file, line or
// field involved and the actual against the expected value, and say how to fix it where possible.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

namespace detail {
[[noreturn]] void check_failed(const char* file, int line, const char* condition,
                               const std::string& message);
}  // namespace detail

}  // namespace gptrain

// GPTRAIN_CHECK(cond, "format {}", args...): an internal invariant; throws gptrain::Error with the
// source location. For errors a user can cause, call gptrain::fail() with a message naming the input.
#define GPTRAIN_CHECK(cond, ...)                                                       \
  do {                                                                                 \
    if (!(cond)) [[unlikely]]                                                          \
      ::gptrain::detail::check_failed(__FILE__, __LINE__, #cond,                       \
                                      ::fmt::format(__VA_ARGS__));                     \
  } while (0)

#ifdef NDEBUG
#define GPTRAIN_DCHECK(cond, ...) \
  do {                            \
  } while (0)
#else
#define GPTRAIN_DCHECK(cond, ...) GPTRAIN_CHECK(cond, __VA_ARGS__)
#endif
