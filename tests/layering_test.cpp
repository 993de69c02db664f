// The layering of docs/DESIGN.md §1, exactly: every #include of every file under src/ against the
// two tables there (which project folders a folder may include; which external headers only some
// folders may see). A wrong-way include of a header compiles (every header is on the include path)
// and header-only code links anywhere, so only this test catches it.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> split_list(const std::string& cell) {
  std::vector<std::string> out;
  std::stringstream s(cell);
  std::string item;
  while (std::getline(s, item, ',')) {
    const size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

// The rows of the markdown table whose header's first cell is `first_header`: first cell -> list.
std::map<std::string, std::vector<std::string>> table(const std::string& doc, const std::string& first_header) {
  std::map<std::string, std::vector<std::string>> rows;
  std::stringstream lines(doc);
  std::string line;
  bool in = false;
  while (std::getline(lines, line)) {
    if (!in) {
      in = line.rfind("| " + first_header + " |", 0) == 0;
      continue;
    }
    if (line.rfind("|", 0) != 0) break;
    if (line.rfind("|---", 0) == 0) continue;
    const size_t mid = line.find('|', 1), end = line.find('|', mid + 1);
    const std::string key = split_list(line.substr(1, mid - 1)).at(0);
    rows[key] = split_list(line.substr(mid + 1, end - mid - 1));
  }
  return rows;
}

struct Layering {
  std::map<std::string, std::vector<std::string>> may_include, external_only_in;
  // The row a path under src/ belongs to: the longest folder of the table that contains it.
  std::string folder_of(const std::string& path) const {
    std::string best;
    for (const auto& [folder, _] : may_include)
      if ((path.rfind(folder + "/", 0) == 0) && folder.size() > best.size()) best = folder;
    return best;
  }
};

Layering read_layering() {
  const std::string doc = read(fs::path(GPTRAIN_SOURCE_DIR) / "docs" / "DESIGN.md");
  Layering l{table(doc, "folder"), table(doc, "external header")};
  return l;
}

TEST(Layering, the_tables_of_the_design_are_there) {
  const Layering l = read_layering();
  EXPECT_GE(l.may_include.size(), 10u) << "docs/DESIGN.md §1 lost its 'folder | may include' table";
  EXPECT_GE(l.external_only_in.size(), 5u) << "docs/DESIGN.md §1 lost its 'external header | only in' table";
  for (const auto& [folder, allowed] : l.may_include)
    for (const std::string& a : allowed) EXPECT_TRUE(l.may_include.count(a)) << folder << " may include unknown " << a;
}

TEST(Layering, every_include_of_src_follows_docs_design) {
  const Layering l = read_layering();
  const fs::path src = fs::path(GPTRAIN_SOURCE_DIR) / "src";
  const std::regex project(R"(^\s*#\s*include\s*"([^"]+)\")"), external(R"(^\s*#\s*include\s*<([^>]+)>)");
  std::set<std::string> folders_seen;
  int files = 0, includes = 0;
  for (const auto& entry : fs::recursive_directory_iterator(src)) {
    if (!entry.is_regular_file()) continue;
    const std::string ext = entry.path().extension().string();
    if (ext != ".h" && ext != ".cpp" && ext != ".cu" && ext != ".cuh") continue;
    const std::string rel = fs::relative(entry.path(), src).generic_string();
    if (rel.find('/') == std::string::npos) continue;  // no files at the top of src/
    const std::string folder = l.folder_of(rel);
    if (folder.empty()) {
      ADD_FAILURE() << "src/" << rel << ": its folder has no row in docs/DESIGN.md §1 (folder | may include)";
      continue;
    }
    folders_seen.insert(folder);
    ++files;
    std::set<std::string> allowed(l.may_include.at(folder).begin(), l.may_include.at(folder).end());
    allowed.insert(folder);
    std::stringstream text(read(entry.path()));
    std::string line;
    int number = 0;
    while (std::getline(text, line)) {
      ++number;
      std::smatch m;
      if (std::regex_search(line, m, project)) {
        ++includes;
        const std::string target = l.folder_of(m[1].str());
        if (target.empty()) {
          ADD_FAILURE() << "src/" << rel << ":" << number << ": includes \"" << m[1] << "\", outside every folder of "
                        << "docs/DESIGN.md §1";
        } else if (!allowed.count(target)) {
          ADD_FAILURE() << "src/" << rel << ":" << number << ": " << folder << " includes \"" << m[1] << "\" of "
                        << target << ", which docs/DESIGN.md §1 does not let " << folder << " use";
        }
      } else if (std::regex_search(line, m, external)) {
        const std::string header = m[1].str();
        for (const auto& [prefix, only_in] : l.external_only_in)
          if (header.rfind(prefix, 0) == 0 &&
              std::find(only_in.begin(), only_in.end(), folder) == only_in.end())
            ADD_FAILURE() << "src/" << rel << ":" << number << ": includes <" << header << ">, which docs/DESIGN.md §1 "
                          << "keeps to " << [&] {
                                 std::string s;
                                 for (const std::string& f : only_in) s += (s.empty() ? "" : ", ") + f;
                                 return s;
                               }();
      }
    }
  }
  EXPECT_GT(files, 100);
  EXPECT_GT(includes, 300);
  // Rows for folders that do not exist yet (dist, kernels/cuda) are allowed: they are the plan.
  for (const char* f : {"util", "tensor", "kernels", "kernels/cpu", "kernels/ref", "model", "train", "cli"})
    EXPECT_TRUE(folders_seen.count(f)) << "no file found in src/" << f;
}

}  // namespace
