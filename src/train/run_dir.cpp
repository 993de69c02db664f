#include "train/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

#include "dist/communicator.h"
#include "io/atomic_file.h"
#include "net/sha256.h"
#include "util/error.h"
#include "util/version.h"

namespace gptrain {

namespace fs = std::filesystem;

namespace {

// The files and directories a training run writes; --overwrite removes these and nothing else.
const char* const kRunOutputs[] = {"run.json", "metrics.jsonl", "loss.svg", "accuracy.svg", "checkpoints", "final",
                                   "train.csv", "validation.csv", "test.csv", "test-responses.json",
                                   "rewards.svg", "reward-margins.svg", "reference-logprobs.json"};

constexpr const char* kLockFile = ".gptrain.lock";

// Empty but for a lock file left by an earlier process (a run that failed before writing anything).
bool is_empty_run_dir(const fs::path& dir) {
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec))
    if (e.path().filename() != kLockFile) return false;
  return true;
}

std::string process_description() {
  std::string cmdline;
  if (FILE* f = std::fopen("/proc/self/cmdline", "rb")) {
    char buf[512];
    const size_t n = std::fread(buf, 1, sizeof buf, f);
    std::fclose(f);
    cmdline.assign(buf, n);
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    while (!cmdline.empty() && cmdline.back() == ' ') cmdline.pop_back();
  }
  return fmt::format("process {}{}", ::getpid(), cmdline.empty() ? "" : ": " + cmdline);
}

// One writer per run dir: an exclusive flock on <dir>/.gptrain.lock, held until the process ends.
// The kernel drops it when the process dies, however it dies, so a crash leaves nothing to clean
// up. The file names the holder (pid and command line) for the message the next one gets.
void lock_run_dir(const fs::path& dir) {
  static std::map<std::string, int> held;  // this process's locks, by canonical dir (never closed)
  std::error_code ec;
  const std::string key = fs::weakly_canonical(dir, ec).string();
  if (held.count(key)) return;
  const fs::path path = dir / kLockFile;
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) fail("--out-dir {}: cannot open {}: {}", dir.string(), path.string(), std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[600] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    std::string owner(buf, n > 0 ? static_cast<size_t>(n) : 0);
    while (!owner.empty() && (owner.back() == '\n' || owner.back() == ' ')) owner.pop_back();
    if (err == EWOULDBLOCK)
      fail("--out-dir {} is in use by {}: one process writes a run dir at a time. Wait for it to end, or stop it "
           "(Ctrl-C saves a checkpoint) and then --resume",
           dir.string(), owner.empty() ? "another process" : owner);
    fail("--out-dir {}: cannot lock {}: {}", dir.string(), path.string(), std::strerror(err));
  }
  const std::string me = process_description() + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size()))
    fail("--out-dir {}: cannot write {}: {}", dir.string(), path.string(), std::strerror(errno));
  held[key] = fd;
}

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

// Size and sha256 of each data file the options name, in the order they name them.
nlohmann::json fingerprint_data(const nlohmann::json& options, const std::vector<std::string>& keys) {
  nlohmann::json out = nlohmann::json::array();
  for (const std::string& key : keys) {
    if (!options.contains(key)) continue;
    const nlohmann::json& value = options[key];
    std::vector<std::string> paths;
    if (value.is_string()) paths.push_back(value.get<std::string>());
    if (value.is_array())
      for (const nlohmann::json& v : value)
        if (v.is_string()) paths.push_back(v.get<std::string>());
    for (const std::string& p : paths) {
      if (p.empty()) continue;
      std::error_code ec;
      const uintmax_t size = fs::file_size(p, ec);
      if (ec) fail("{}: cannot read the data file: {}", p, ec.message());
      out.push_back({{"option", key}, {"path", p}, {"size", size}, {"sha256", net::sha256_file(p)}});
    }
  }
  return out;
}

std::string describe_fingerprint(const nlohmann::json& f) {
  const std::string sha = f.value("sha256", std::string());
  return fmt::format("{} bytes, sha256 {}", f.value("size", uintmax_t{0}), sha.substr(0, 16));
}

// The data files whose size or sha256 differ from the checkpoint's record, one line each. Files
// are matched by option and position (their paths are options, checked with the rest).
std::string changed_data(const nlohmann::json& saved, const nlohmann::json& now) {
  std::string lines;
  std::map<std::string, size_t> seen_saved, seen_now;
  std::map<std::pair<std::string, size_t>, const nlohmann::json*> current;
  for (const nlohmann::json& f : now) {
    const std::string option = f.value("option", std::string());
    current[{option, seen_now[option]++}] = &f;
  }
  for (const nlohmann::json& f : saved) {
    if (!f.is_object()) continue;
    const std::string option = f.value("option", std::string());
    const auto it = current.find({option, seen_saved[option]++});
    if (it == current.end()) continue;  // the option's paths changed: reported as an option
    const nlohmann::json& g = *it->second;
    if (f.value("size", uintmax_t{0}) != g.value("size", uintmax_t{0}) ||
        f.value("sha256", std::string()) != g.value("sha256", std::string()))
      lines += fmt::format("\n  {}: checkpoint {}; now {}", g.value("path", std::string()), describe_fingerprint(f),
                           describe_fingerprint(g));
  }
  return lines;
}

RunDirPlan prepare_here(const fs::path& dir, const nlohmann::json& options, bool resume, bool overwrite,
                        const std::set<std::string>& may_change, const nlohmann::json& defaults,
                        const RunDataFiles& data) {
  if (resume && overwrite) fail("--resume and --overwrite contradict each other: choose one");
  RunDirPlan plan;
  plan.dir = dir;
  std::error_code ec;
  const bool exists = fs::exists(dir, ec);
  if (exists && !fs::is_directory(dir, ec)) fail("--out-dir {}: exists and is not a directory", dir.string());
  if (resume && !exists) fail("--resume: {} does not exist; start without --resume", dir.string());
  check_writable(dir);  // creates it
  lock_run_dir(dir);    // before anything in it is read or changed
  const bool empty = is_empty_run_dir(dir);
  if (resume) {
    remove_incomplete_checkpoints(dir);
    plan.resume_from = latest_checkpoint(dir);
    if (!plan.resume_from)
      fail("--resume: no complete checkpoint in {}; start without --resume (and with --overwrite to replace the "
           "run)",
           (dir / "checkpoints").string());
    plan.resume_state = read_trainer_state(*plan.resume_from);
    std::string diffs;
    const nlohmann::json& saved = plan.resume_state.options;
    // Under the cosine schedule --epochs and --max-steps set its length, so changing them would
    // change the learning rate of every remaining step (review F1): they must stay.
    const bool cosine = options.value("lr-schedule", std::string()) == "cosine";
    for (auto it = options.begin(); it != options.end(); ++it) {
      if (may_change.count(it.key()) && !(cosine && (it.key() == "epochs" || it.key() == "max-steps"))) continue;
      const nlohmann::json before = saved.contains(it.key())      ? saved[it.key()]
                                    : defaults.contains(it.key()) ? defaults[it.key()]
                                                                  : nlohmann::json();
      if (before != it.value())
        diffs += fmt::format("\n  --{}: checkpoint {}, now {}", it.key(), before.dump(), it.value().dump());
    }
    // Options recorded only when not their defaults (--dtype, --lora-*): one the checkpoint has and
    // this run leaves out is a change too.
    for (auto it = saved.begin(); it != saved.end(); ++it) {
      if (options.contains(it.key()) || may_change.count(it.key()) || defaults.contains(it.key())) continue;
      diffs += fmt::format("\n  --{}: checkpoint {}, now not given", it.key(), it.value().dump());
    }
    // A step's micro-batches (ranks x --grad-accum) fix what every step computes; how they are
    // shared between ranks and accumulation may change (2 ranks, then 1 with --grad-accum 2).
    if (options.contains("grad-accum")) {
      const auto per_step = [](const nlohmann::json& j) {
        return j.value("grad-accum", int64_t{1}) * j.value("ranks", int64_t{1});
      };
      if (per_step(saved) != per_step(options))
        diffs += fmt::format("\n  micro-batches per step (ranks x --grad-accum): checkpoint {} ({} x {}), now {} ({} x {})",
                             per_step(saved), saved.value("ranks", int64_t{1}), saved.value("grad-accum", int64_t{1}),
                             per_step(options), options.value("ranks", int64_t{1}),
                             options.value("grad-accum", int64_t{1}));
    }
    if (!diffs.empty())
      fail("--resume: these options contradict the checkpoint {}:{}\nrun with the checkpoint's values, or start a "
           "new run in another --out-dir{}",
           plan.resume_from->string(), diffs,
           cosine ? " (with --lr-schedule cosine, --epochs and --max-steps fix the schedule's length)" : "");
    plan.inputs = fingerprint_data(options, data.options);
    const std::string changed =
        plan.resume_state.inputs.empty() ? std::string() : changed_data(plan.resume_state.inputs, plan.inputs);
    if (!changed.empty() && !data.allow_changed)
      fail("--resume: the data changed since the checkpoint {} was written:{}\nresume with the data the run started "
           "with, or pass --allow-changed-data to go on with the new data from the checkpoint's position",
           plan.resume_from->string(), changed);
    if (!changed.empty())
      fmt::print("warning: --allow-changed-data: the data changed since the checkpoint {}:{}\nthe run goes on from "
                 "the checkpoint's position (epoch {}, batch {}) in the new data\n",
                 plan.resume_from->string(), changed, plan.resume_state.epoch + 1, plan.resume_state.batch);
  } else if (!empty) {
    if (!overwrite)
      fail("--out-dir {} is not empty; pass --resume to continue its run or --overwrite to replace it", dir.string());
    for (const char* name : kRunOutputs) fs::remove_all(dir / name, ec);
  }
  if (!resume) plan.inputs = fingerprint_data(options, data.options);
  if (!resume && data.allow_changed) fmt::print("note: --allow-changed-data does nothing without --resume\n");
  nlohmann::json run = {{"gptrain_version", kVersion}, {"options", options}};
  run["inputs"] = plan.inputs;
  if (plan.resume_from) run["resumed_from"] = plan.resume_from->string();
  io::write_file_atomic(dir / "run.json", run.dump(2) + "\n");
  return plan;
}

}  // namespace

RunDirPlan prepare_run_dir(const fs::path& dir, const nlohmann::json& options, bool resume, bool overwrite,
                           const std::set<std::string>& may_change, const nlohmann::json& defaults,
                           const RunDataFiles& data) {
  dist::Communicator& comm = dist::world();
  if (comm.size() == 1) return prepare_here(dir, options, resume, overwrite, may_change, defaults, data);
  // A data-parallel run: the main rank checks and writes; the others learn from it where to
  // resume (the same checkpoint for all) and write nothing.
  int64_t ok = 0;
  RunDirPlan plan;
  std::string resume_from;
  if (comm.is_main()) {
    try {
      plan = prepare_here(dir, options, resume, overwrite, may_change, defaults, data);
      ok = 1;
    } catch (...) {
      comm.broadcast(&ok, sizeof ok, 0);
      throw;
    }
    if (plan.resume_from) resume_from = plan.resume_from->string();
  }
  comm.broadcast(&ok, sizeof ok, 0);
  if (!ok) fail("rank {}: the main rank could not prepare --out-dir {} (its error says why)", comm.rank(), dir.string());
  comm.broadcast_string(resume_from, 0);
  if (!comm.is_main()) {
    plan.dir = dir;
    if (!resume_from.empty()) {
      plan.resume_from = fs::path(resume_from);
      plan.resume_state = read_trainer_state(*plan.resume_from);
    }
  }
  return plan;
}

}  // namespace gptrain
