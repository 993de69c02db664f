// JSON text byte-identical to Python's json.dumps(obj, indent=N) with its defaults (ensure_ascii,
// separators "," and ": " when indenting, floats as repr()), so files we write compare equal to
// the book's (e.g. instruction-data-with-response.json).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace gptrain::data {

// indent < 0: Python's compact form (separators ", " and ": "). Strings must be valid UTF-8.
std::string python_json_dumps(const nlohmann::ordered_json& value, int indent = 4);

}  // namespace gptrain::data
