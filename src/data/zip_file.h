// Reading one member of a zip archive: stored or deflated (zlib), no zip64, no encryption. Enough
// for the data sets the book downloads as zips (the SMS Spam Collection).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace gptrain::data {

// Names of the archive's members, in central-directory order.
std::vector<std::string> zip_member_names(const std::filesystem::path& zip);
// The bytes of the member named `name`, or of the one whose last path component is `name`. Checks
// its size and CRC-32. Errors name the archive and what is wrong with it. Nothing is allocated from
// the (unverified) directory's sizes beyond what the archive can hold: a deflated member inflates
// at most 1032-fold, and when `expected_size` is given a member of another size is refused first.
std::string read_zip_member(const std::filesystem::path& zip, const std::string& name,
                            std::optional<uint64_t> expected_size = std::nullopt);

}  // namespace gptrain::data
