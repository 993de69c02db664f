// The run directory (--out-dir) of a training job: refuses to clobber a previous run, checks a
// resume against the checkpoint's options, writes run.json.
#pragma once

#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/checkpoint.h"

namespace gptrain {

struct RunDirPlan {
  std::filesystem::path dir;
  std::optional<std::filesystem::path> resume_from;  // set when resuming
  TrainerState resume_state;
  // The run's data files as [{option, path, size, sha256}], recorded in run.json and in every
  // checkpoint, so a resume can tell that a file under the same name changed.
  nlohmann::json inputs = nlohmann::json::array();
};

// Which options of a job name its data files, and whether a resume may go on when one changed.
struct RunDataFiles {
  std::vector<std::string> options;  // keys of the options JSON: a path, or a list of paths ("" = none)
  bool allow_changed = false;        // --allow-changed-data
};

// Prepares `dir` for a run with `options` (every option of the job, as JSON):
// - new run: the dir must be absent or empty, unless overwrite (then our previous outputs are
//   removed); the dir must be writable;
// - resume: the newest complete checkpoint is used; every option outside `may_change` must equal
//   the checkpoint's, or the error lists each difference. An option the checkpoint does not record
//   (it was written by a version without that option) counts as its value in `defaults`, so runs
//   stay resumable when a release adds an option. The data files named by `data` must have the
//   size and sha256 the checkpoint recorded, unless data.allow_changed (then a warning says which
//   changed); a checkpoint from before fingerprints were recorded is not checked.
// Writes run.json (options, version, the data files' fingerprints, the checkpoint resumed from).
RunDirPlan prepare_run_dir(const std::filesystem::path& dir, const nlohmann::json& options, bool resume,
                           bool overwrite, const std::set<std::string>& may_change, const nlohmann::json& defaults,
                           const RunDataFiles& data);

}  // namespace gptrain
