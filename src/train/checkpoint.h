// Training checkpoints (docs/DESIGN.md §5): <run dir>/checkpoints/step_NNNNNNNN/ holding a model
// dir (config.json, model.safetensors), optimizer.safetensors (AdamW moments), trainer_state.json
// (step, data cursor, tokens seen, seed, the run's options) and a DONE marker. Everything is
// written into a temporary sibling directory, flushed, and renamed into place, so a directory
// with the final name is always complete; a kill at any moment leaves the previous checkpoint
// intact. Older checkpoints are deleted only after a newer one is complete.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/transformer.h"
#include "train/adamw.h"

namespace gptrain {

struct TrainerState {
  int64_t step = 0;         // optimizer steps done
  int64_t epoch = 0;        // 0-based epoch of the next micro-batch
  int64_t batch = 0;        // index of the next micro-batch within that epoch
  int64_t tokens_seen = 0;  // inputs processed (B*T per micro-batch, padding included, as the book)
  int64_t examples_seen = 0;
  nlohmann::json options;   // the run's options, to refuse a resume that contradicts them
  nlohmann::json inputs = nlohmann::json::array();  // its data files' sizes and sha256 (RunDirPlan::inputs)
};

std::filesystem::path checkpoint_dir(const std::filesystem::path& run_dir, int64_t step);

// A sharded optimizer's whole moments (--zero 1: gathered from every rank), which a checkpoint holds.
struct FullMoments {
  Tensor m, v;
};

// Writes the checkpoint of `state` and keeps at most `keep_last` complete ones (0 keeps all).
// A sharded optimizer's moments come in `full` (a checkpoint is the same for any shards).
// `complete` adds what makes the dir a complete model dir (the tokenizer's files, a classifier's
// padding) before it is marked done.
std::filesystem::path save_checkpoint(const std::filesystem::path& run_dir, const Transformer& model, const AdamW& optimizer,
                                      const TrainerState& state, int keep_last,
                                      const std::vector<std::string>& class_names = {},
                                      const FullMoments* full = nullptr,
                                      const std::function<void(const std::filesystem::path&)>& complete = {});

// The complete checkpoint with the highest step, if any (incomplete and temporary dirs are ignored).
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& run_dir);

// Reads trainer_state.json (errors name the file and the field).
TrainerState read_trainer_state(const std::filesystem::path& checkpoint);

// Restores weights and optimizer moments into a model and optimizer built with the same
// configuration and trainable set; returns the trainer state.
TrainerState load_checkpoint(const std::filesystem::path& checkpoint, Transformer& model, AdamW& optimizer);

// Removes temporary checkpoint directories left by an interrupted write.
void remove_incomplete_checkpoints(const std::filesystem::path& run_dir);

// A trained model's final/ dir: the model dir, or with LoRA adapters the PEFT adapter dir alone
// (model/adapter_dir.h; base_model: the base's dir, recorded as an absolute path), unless base
// weights were trained too, when the model dir is written beside it.
void save_trained_model(const Transformer& model, const std::filesystem::path& dir, const std::string& base_model);

// The tokenizer next to the weights, under Hugging Face's names, so a model dir is complete:
// tokenizer.json, tokenizer_config.json, special_tokens_map.json, generation_config.json,
// vocab.json and merges.txt, whichever `from` holds (GPT-2's encoder.json and vocab.bpe are
// written as vocab.json and merges.txt). Nothing happens when from is to.
void copy_tokenizer_files(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace gptrain
