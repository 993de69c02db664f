// Where the data lives: --data-dir, else $GPTRAIN_DATA_DIR, else ../shared/data next to the
// checkout (found from the working directory or from the gptrain binary's location), else
// ~/.cache/gptrain. Named files are looked up inside it.
#pragma once

#include <filesystem>
#include <string>

namespace gptrain::data {

// `cli_value` is the --data-dir option ("" when not given).
std::filesystem::path resolve_data_dir(const std::string& cli_value = "");

// data_dir / relative when it exists; a named data set's file (data/datasets.h) is downloaded when
// missing; otherwise a gptrain::Error that says which file to put where (and, for `what`, which data
// set it is).
std::filesystem::path require_data_file(const std::filesystem::path& data_dir, const std::string& relative,
                                        const std::string& what);

}  // namespace gptrain::data
