// Reading one member of a zip archive: stored or deflated (zlib), no zip64, no encryption. Enough
// for the data sets the book downloads as zips (the SMS Spam Collection).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace gptrain::data {

// Names of the archive's members, in central-directory order.
std::vector<std::string> zip_member_names(const std::filesystem::path& zip);
// The bytes of the member named `name`, or of the one whose last path component is `name`. Checks
// its size and CRC-32. Errors name the archive and what is wrong with it.
std::string read_zip_member(const std::filesystem::path& zip, const std::string& name);

}  // namespace gptrain::data
