// The training loop's pieces: LR schedule (appendix D), sliding windows and the loader, the
// character split, gradient accumulation, checkpoints and the metrics log.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <numeric>
#include <set>

#include "data/text_file.h"
#include "data/token_dataset.h"
#include "model/transformer.h"
#include "io/safetensors.h"
#include "train/adamw.h"
#include "train/checkpoint.h"
#include "train/metrics.h"
#include "train/schedule.h"
#include "util/error.h"

namespace gptrain {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("gptrain-train-test-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

TEST(Schedule, appendix_d_warmup_then_cosine) {
  // The book's demo: 135 steps, 27 warmup steps from 1e-4 to a peak of 0.01, cosine to 1e-5.
  LrSchedule s{0.01, 1e-4, 1e-5, 27, 135, true};
  EXPECT_DOUBLE_EQ(s.at(0), 1e-4);  // the first step uses initial_lr
  EXPECT_DOUBLE_EQ(s.at(1), 1e-4 + (0.01 - 1e-4) / 27);
  EXPECT_DOUBLE_EQ(s.at(27), 0.01);  // progress 0: the peak
  EXPECT_NEAR(s.at(81), 1e-5 + (0.01 - 1e-5) * 0.5, 1e-15);  // halfway through the decay
  EXPECT_NEAR(s.at(134), 1e-5 + (0.01 - 1e-5) * 0.5 * (1 + std::cos(M_PI * 107.0 / 108.0)), 1e-15);
  LrSchedule constant{4e-4};
  EXPECT_EQ(constant.at(0), 4e-4);
  EXPECT_EQ(constant.at(1000), 4e-4);
}

TEST(Data, sliding_windows_count_like_the_book) {
  auto tokens = [](int n) {
    std::vector<int32_t> v(n);
    std::iota(v.begin(), v.end(), 0);
    return data::TokenSource::from_vector(v);
  };
  // len(range(0, N - L, stride)): no partial window
  EXPECT_EQ(data::SlidingWindows(tokens(20), 4, 1).size(), 16);
  EXPECT_EQ(data::SlidingWindows(tokens(20), 4, 4).size(), 4);
  EXPECT_EQ(data::SlidingWindows(tokens(5), 4, 4).size(), 1);
  EXPECT_EQ(data::SlidingWindows(tokens(4), 4, 4).size(), 0);
  // the-verdict at context 256: 4612 train and 534 val tokens give 18 and 2 windows
  EXPECT_EQ(data::SlidingWindows(tokens(4612), 256, 256).size(), 18);
  EXPECT_EQ(data::SlidingWindows(tokens(534), 256, 256).size(), 2);
  const data::SlidingWindows w(tokens(1001), 4, 1);
  std::vector<int32_t> x(4), y(4);
  w.get(0, x, y);
  EXPECT_EQ(x, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(y, (std::vector<int32_t>{1, 2, 3, 4}));
  w.get(w.size() - 1, x, y);  // the digits notebook's last sample: [996..999] -> [997..1000]
  EXPECT_EQ(x, (std::vector<int32_t>{996, 997, 998, 999}));
  EXPECT_EQ(y, (std::vector<int32_t>{997, 998, 999, 1000}));
}

// F5, F6: a shard's split is a view of the mapping (nothing copied), and ids are checked as stored:
// a u32 id of 2^32 - 100 is refused with its position, not read as the ignored target -100.
TEST(Data, shard_ids_are_checked_unsigned_and_a_split_is_a_view) {
  const fs::path dir = temp_dir("shards");
  const auto write = [&](const char* name, const std::vector<uint32_t>& ids) {
    std::ofstream(dir / name, std::ios::binary)
        .write(reinterpret_cast<const char*>(ids.data()), static_cast<std::streamsize>(ids.size() * 4));
    return dir / name;
  };
  try {
    data::TokenSource::map_shard(write("bad.u32", {1, 2, 0xFFFFFF9Cu, 3}), "", 50257);
    FAIL() << "an id of 2^32 - 100 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token id 4294967196 at position 2 (byte offset 8)"), std::string::npos)
        << e.what();
  }
  const auto all = data::TokenSource::map_shard(write("ok.u32", {5, 6, 7, 8, 9}), "", 10);
  const auto val = data::TokenSource::slice(all, 3, 5);
  ASSERT_EQ(val->size(), 2);
  EXPECT_EQ((*val)[0], 8);
  EXPECT_EQ((*val)[1], 9);
  const auto empty = data::TokenSource::slice(all, 5, 5);
  EXPECT_EQ(empty->size(), 0);
  fs::remove_all(dir);
}

TEST(Data, loader_shuffles_per_epoch_deterministically_and_drops_the_last_batch) {
  std::vector<int32_t> ids(4612);
  std::iota(ids.begin(), ids.end(), 0);
  const data::SlidingWindows w(data::TokenSource::from_vector(ids), 256, 256);
  const data::BatchLoader train(w, 2, true, true, 123), val(w, 4, false, false, 123);
  EXPECT_EQ(train.num_batches(), 9);  // the book's 9 train batches of [2, 256]
  EXPECT_EQ(val.num_batches(), 5);    // 18 windows in batches of 4, the last one short
  EXPECT_EQ(val.rows(4), 2);
  std::vector<int32_t> x, y;
  auto epoch_order = [&](int64_t epoch) {
    std::vector<int32_t> firsts;
    for (int64_t b = 0; b < train.num_batches(); ++b) {
      train.get(epoch, b, x, y);
      firsts.push_back(x[0]);
      firsts.push_back(x[256]);
    }
    return firsts;
  };
  const auto e0 = epoch_order(0), e1 = epoch_order(1);
  EXPECT_EQ(e0, epoch_order(0));
  EXPECT_NE(e0, e1);
  EXPECT_EQ(std::set<int32_t>(e0.begin(), e0.end()).size(), 18u);  // a permutation of all windows
  const data::BatchLoader again(w, 2, true, true, 123);
  again.get(1, 3, x, y);
  EXPECT_EQ(x[0], e1[6]);  // a fresh loader (a resumed run) sees the same batches
}

TEST(Data, split_by_characters_counts_code_points) {
  // 13 code points, 4 of them two-byte: int(0.9 * 13) = 11 code points go to train.
  const std::string text = "aé bç dè fà g";
  EXPECT_EQ(data::count_code_points(text), 13);
  const auto [train, val] = data::split_by_characters(text, 0.9);
  EXPECT_EQ(data::count_code_points(train), 11);
  EXPECT_EQ(train + val, text);
  EXPECT_EQ(val, " g");
}

ModelConfig tiny() {
  ModelConfig c;
  c.vocab_size = 53;
  c.context_length = 16;
  c.emb_dim = 16;
  c.n_heads = 2;
  c.n_layers = 2;
  c.drop_rate = 0.0f;
  return c;
}

TEST(Loop, gradient_accumulation_equals_the_full_batch) {
  Transformer full(tiny()), accum(tiny());
  std::vector<int32_t> x(2 * 12), y(2 * 12);
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = static_cast<int32_t>((i * 7 + 1) % 53);
    y[i] = static_cast<int32_t>((i * 11 + 5) % 53);
  }
  full.forward_loss(x, y, 2, 12, {true, 0});
  full.backward();
  for (int half = 0; half < 2; ++half) {
    const std::span<const int32_t> xs(x.data() + half * 12, 12), ys(y.data() + half * 12, 12);
    accum.forward_loss(xs, ys, 1, 12, {true, 0});
    accum.backward(0.5f);
  }
  const auto a = full.params().flat_grads().to_vector(), b = accum.params().flat_grads().to_vector();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - b[i]) * double(a[i] - b[i]);
    norm += a[i] * double(a[i]);
  }
  EXPECT_LE(std::sqrt(diff), 1e-5 * std::sqrt(norm));  // summation order differs, nothing else
}

TEST(Checkpoint, round_trip_is_bit_exact_and_old_ones_are_pruned) {
  const fs::path run = temp_dir("ckpt");
  Transformer model(tiny());
  AdamW opt(model.params(), AdamWOptions{});
  std::vector<int32_t> x(16, 3), y(16, 4);
  TrainerState state;
  state.options = {{"seed", 1}};
  for (int step = 1; step <= 3; ++step) {
    model.zero_grads();
    model.forward_loss(x, y, 1, 16, {true, 0});
    model.backward();
    opt.step();
    state.step = step;
    state.batch = step;
    state.tokens_seen = 16 * step;
    save_checkpoint(run, model, opt, state, 2);
  }
  EXPECT_FALSE(fs::exists(checkpoint_dir(run, 1)));
  EXPECT_TRUE(fs::exists(checkpoint_dir(run, 2) / "DONE"));
  // a half-written newer checkpoint (no DONE) and a temporary dir are ignored
  fs::create_directories(checkpoint_dir(run, 9));
  fs::create_directories(run / "checkpoints" / ".tmp-step_00000010");
  const auto latest = latest_checkpoint(run);
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(*latest, checkpoint_dir(run, 3));
  Transformer restored(tiny(), 999);
  AdamW opt2(restored.params(), AdamWOptions{});
  const TrainerState s = load_checkpoint(*latest, restored, opt2);
  EXPECT_EQ(s.step, 3);
  EXPECT_EQ(s.tokens_seen, 48);
  EXPECT_EQ(s.options["seed"], 1);
  EXPECT_EQ(restored.params().flat_values().to_vector(), model.params().flat_values().to_vector());
  EXPECT_EQ(opt2.first_moment().to_vector(), opt.first_moment().to_vector());
  EXPECT_EQ(opt2.second_moment().to_vector(), opt.second_moment().to_vector());
  EXPECT_EQ(opt2.steps_taken(), 3);
  remove_incomplete_checkpoints(run);
  EXPECT_FALSE(fs::exists(checkpoint_dir(run, 9)));
  fs::remove_all(run);
}

// F11: a damaged optimizer.safetensors (its metadata) is an error naming the file, not a bare
// "map::at" or a JSON exception.
TEST(Checkpoint, damaged_optimizer_metadata_names_the_file) {
  const fs::path run = temp_dir("ckpt_damaged");
  Transformer model(tiny());
  AdamW opt(model.params(), AdamWOptions{});
  TrainerState state;
  state.step = 1;
  const fs::path dir = save_checkpoint(run, model, opt, state, 2);
  const fs::path path = dir / "optimizer.safetensors";
  const io::SafeTensorsFile good = io::SafeTensorsFile::open(path);
  const std::vector<std::pair<std::string, Tensor>> moments = {{"adamw.m", good.load("adamw.m")},
                                                               {"adamw.v", good.load("adamw.v")}};
  const std::string trainable = good.metadata().at("trainable");
  const std::vector<std::pair<std::map<std::string, std::string>, std::string>> cases = {
      {{{"steps_taken", "1"}, {"trainable", "[\"wte.weight\", "}}, "metadata 'trainable' is not valid JSON"},
      {{{"steps_taken", "1"}, {"trainable", "{}"}}, "metadata 'trainable' is not a list of names"},
      {{{"trainable", trainable}}, "metadata 'steps_taken' is missing"},
      {{{"steps_taken", "1x"}, {"trainable", trainable}}, "metadata 'steps_taken' is '1x'"},
  };
  for (const auto& [metadata, message] : cases) {
    io::save_safetensors(path, moments, metadata);
    Transformer restored(tiny(), 999);
    AdamW opt2(restored.params(), AdamWOptions{});
    try {
      load_checkpoint(dir, restored, opt2);
      ADD_FAILURE() << "accepted: " << message;
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(path.string() + ": " + message), std::string::npos) << what;
    }
  }
  fs::remove_all(run);
}

TEST(Metrics, resumed_log_drops_records_after_the_checkpoint) {
  const fs::path run = temp_dir("metrics");
  {
    MetricsLog log(run, -1);
    for (int s = 0; s < 10; s += 2) {
      MetricRecord r;
      r.step = s;
      r.epoch = s / 10.0;
      r.train_loss = 10 - s;
      r.val_loss = 11 - s;
      log.append(r);
    }
    log.write_plots();
  }
  EXPECT_TRUE(fs::exists(run / "loss.svg"));
  MetricsLog resumed(run, 5);
  ASSERT_EQ(resumed.records().size(), 3u);
  EXPECT_EQ(resumed.records().back().step, 4);
  fs::remove_all(run);
}

// NaN is written as null (a record before the first step has no step loss); reading it back
// gives NaN, and the DPO rewards survive the round trip, so a resumed DPO run keeps its log.
TEST(Metrics, null_reads_back_as_nan_and_rewards_round_trip) {
  const fs::path run = temp_dir("metrics_nan");
  {
    MetricsLog log(run, -1);
    MetricRecord first;
    first.step = -1;
    first.kind = "initial";
    first.step_loss = NAN;
    first.train_loss = first.val_loss = std::log(2.0);
    first.train_chosen_reward = first.train_rejected_reward = 0.0;
    first.val_chosen_reward = 0.25;
    first.val_rejected_reward = -0.125;
    log.append(first);
    MetricRecord second = first;
    second.step = 0;
    second.kind = "";
    second.step_loss = 0.5;
    log.append(second);
    log.write_plots();
  }
  EXPECT_TRUE(fs::exists(run / "rewards.svg"));
  EXPECT_TRUE(fs::exists(run / "reward-margins.svg"));
  MetricsLog resumed(run, 0);
  ASSERT_EQ(resumed.records().size(), 2u);
  const MetricRecord& r = resumed.records()[0];
  EXPECT_EQ(r.kind, "initial");
  EXPECT_TRUE(std::isnan(r.step_loss));
  EXPECT_EQ(r.train_loss, std::log(2.0));
  ASSERT_TRUE(r.val_chosen_reward && r.val_rejected_reward && r.train_chosen_reward);
  EXPECT_EQ(*r.val_chosen_reward, 0.25);
  EXPECT_EQ(*r.val_rejected_reward, -0.125);
  EXPECT_EQ(*r.train_chosen_reward, 0.0);
  EXPECT_EQ(resumed.records()[1].step_loss, 0.5);
  fs::remove_all(run);
}

// F4: a kill mid-write can tear only the last line; that one is skipped. A bad line before it is
// damage: the resume fails naming the line and the file keeps every record.
TEST(Metrics, only_a_torn_last_line_is_skipped) {
  const fs::path run = temp_dir("metrics_torn");
  const fs::path path = run / "metrics.jsonl";
  const std::string good0 = R"({"step":0,"epoch":0,"tokens_seen":10,"train_loss":2,"val_loss":3,"train_accuracy":null})";
  const std::string good1 = R"({"step":1,"epoch":0,"tokens_seen":20,"train_loss":1,"val_loss":2})";
  {
    std::ofstream(path) << good0 << "\n" << good1 << "\n" << R"({"step":2,"epo)";
  }
  {
    MetricsLog resumed(run, 10);
    ASSERT_EQ(resumed.records().size(), 2u);
    ASSERT_TRUE(resumed.records()[0].train_accuracy.has_value());
    EXPECT_TRUE(std::isnan(*resumed.records()[0].train_accuracy));
    EXPECT_EQ(resumed.records()[1].step, 1);
  }
  const std::string damaged = good0 + "\n" + "{\"step\":1,garbage\n" + good1 + "\n";
  { std::ofstream(path) << damaged; }
  try {
    MetricsLog resumed(run, 10);
    FAIL() << "a damaged middle line was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl:2:"), std::string::npos) << e.what();
  }
  std::ifstream in(path);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), damaged);
  fs::remove_all(run);
}

}  // namespace
}  // namespace gptrain
