#include "util/error.h"

namespace gptrain::detail {

void check_failed(const char* file, int line, const char* condition, const std::string& message) {
  throw Error(fmt::format("internal check failed at {}:{}: ({}) {}", file, line, condition, message));
}

}  // namespace gptrain::detail
