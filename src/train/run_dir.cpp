#include "train/run_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "io/atomic_file.h"
#include "util/error.h"

namespace gptrain {

namespace fs = std::filesystem;

namespace {

// The files and directories a training run writes; --overwrite removes these and nothing else.
const char* const kRunOutputs[] = {"run.json", "metrics.jsonl", "loss.svg", "accuracy.svg", "checkpoints", "final",
                                   "train.csv", "validation.csv", "test.csv", "test-responses.json"};

void check_writable(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("--out-dir {}: cannot create it: {}", dir.string(), ec.message());
  const fs::path probe = dir / ".gptrain-write-test";
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("--out-dir {}: not writable: {}", dir.string(), std::strerror(errno));
  ::close(fd);
  fs::remove(probe, ec);
}

}  // namespace

RunDirPlan prepare_run_dir(const fs::path& dir, const nlohmann::json& options, bool resume, bool overwrite,
                           const std::set<std::string>& may_change, const nlohmann::json& defaults) {
  if (resume && overwrite) fail("--resume and --overwrite contradict each other: choose one");
  RunDirPlan plan;
  plan.dir = dir;
  std::error_code ec;
  const bool exists = fs::exists(dir, ec);
  if (exists && !fs::is_directory(dir, ec)) fail("--out-dir {}: exists and is not a directory", dir.string());
  const bool empty = !exists || fs::is_empty(dir, ec);
  if (resume) {
    if (!exists) fail("--resume: {} does not exist; start without --resume", dir.string());
    remove_incomplete_checkpoints(dir);
    plan.resume_from = latest_checkpoint(dir);
    if (!plan.resume_from)
      fail("--resume: no complete checkpoint in {}; start without --resume (and with --overwrite to replace the "
           "run)",
           (dir / "checkpoints").string());
    plan.resume_state = read_trainer_state(*plan.resume_from);
    std::string diffs;
    const nlohmann::json& saved = plan.resume_state.options;
    for (auto it = options.begin(); it != options.end(); ++it) {
      if (may_change.count(it.key())) continue;
      const nlohmann::json before = saved.contains(it.key())      ? saved[it.key()]
                                    : defaults.contains(it.key()) ? defaults[it.key()]
                                                                  : nlohmann::json();
      if (before != it.value())
        diffs += fmt::format("\n  --{}: checkpoint {}, now {}", it.key(), before.dump(), it.value().dump());
    }
    if (!diffs.empty())
      fail("--resume: these options contradict the checkpoint {}:{}\nrun with the checkpoint's values, or start a "
           "new run in another --out-dir",
           plan.resume_from->string(), diffs);
  } else if (!empty) {
    if (!overwrite)
      fail("--out-dir {} is not empty; pass --resume to continue its run or --overwrite to replace it", dir.string());
    for (const char* name : kRunOutputs) fs::remove_all(dir / name, ec);
  }
  check_writable(dir);
  nlohmann::json run = {{"gptrain_version", "0.1.0"}, {"options", options}};
  if (plan.resume_from) run["resumed_from"] = plan.resume_from->string();
  io::write_file_atomic(dir / "run.json", run.dump(2) + "\n");
  return plan;
}

}  // namespace gptrain
