// The run directory (--out-dir) of a training job: refuses to clobber a previous run, checks a
// resume against the checkpoint's options, writes run.json.
#pragma once

#include <filesystem>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "train/checkpoint.h"

namespace gptrain {

struct RunDirPlan {
  std::filesystem::path dir;
  std::optional<std::filesystem::path> resume_from;  // set when resuming
  TrainerState resume_state;
};

// Prepares `dir` for a run with `options` (every option of the job, as JSON):
// - new run: the dir must be absent or empty, unless overwrite (then our previous outputs are
//   removed); the dir must be writable;
// - resume: the newest complete checkpoint is used; every option outside `may_change` must equal
//   the checkpoint's, or the error lists each difference. An option the checkpoint does not record
//   (it was written by a version without that option) counts as its value in `defaults`, so runs
//   stay resumable when a release adds an option.
// Writes run.json (options, version, the checkpoint resumed from).
RunDirPlan prepare_run_dir(const std::filesystem::path& dir, const nlohmann::json& options, bool resume,
                           bool overwrite, const std::set<std::string>& may_change,
                           const nlohmann::json& defaults = nlohmann::json::object());

}  // namespace gptrain
