// The decode engine: any number of independent sequences over one set of read-only weights. Each
// sequence has its own KV cache, position, sampler and random stream, its stop ids and stop
// strings, and can be cancelled between tokens. A step advances every running sequence by one
// token: a sequence that needs a prefill (its prompt, or its window after it slid past the
// context) runs alone through BLAS; every sequence that feeds one new token joins one batched
// decode pass, whose matrix products are batch-invariant (kernels/params.h, MatmulParams), so a
// sequence gets exactly the tokens it gets when decoded alone, whatever runs beside it.
//
// Generation follows the book's generate(): the window is the last context_length ids; when the
// text outgrows the context the window slides (positions restart at 0), which a cache cannot
// reuse, so each later token re-reads its window; draws are numbered by the token's index, so a
// seed gives the same text with or without the cache.
//
// One thread drives an engine (a server runs it on its worker thread); the model it reads may be
// shared by several engines. on_event may call add() and cancel(); release() only between steps.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "generate/sampler.h"
#include "generate/text_stream.h"
#include "model/transformer.h"

namespace gptrain {

struct SequenceRequest {
  std::vector<int32_t> prompt;
  SamplingOptions sampling;
  int64_t max_new_tokens = 50;
  std::vector<int32_t> stop_ids;          // chosen: the sequence stops without emitting it
  std::vector<std::string> stop_strings;  // generated: it stops, the text ends before the string
  bool kv_cache = true;                   // false: every token recomputes its whole window
};

enum class FinishReason { None, StopId, StopString, Length, Cancelled };
const char* finish_reason_name(FinishReason r);  // "", "stop", "stop_string", "length", "cancelled"

struct TokenEvent {
  int64_t seq = 0;
  int32_t token = -1;  // the emitted id; -1 for the event that closes a sequence without one
  // Text this event releases: whole UTF-8 characters, held back while they could still begin a
  // stop string (empty without a token_text function).
  std::string text;
  FinishReason finish = FinishReason::None;  // set on a sequence's last event
};

struct SequenceResult {
  std::vector<int32_t> prompt, generated;  // generated: the emitted ids
  std::string text;                        // the released text, all of it (ends before a stop string)
  FinishReason finish = FinishReason::None;
};

struct EngineOptions {
  int64_t max_batch = 16;  // decode rows per pass (more running sequences take several passes)
};

class DecodeEngine {
 public:
  // token_text: a token's bytes (for stop strings and TokenEvent::text); optional.
  explicit DecodeEngine(const Transformer& model, std::function<std::string(int32_t)> token_text = {},
                        EngineOptions options = {});
  ~DecodeEngine();
  DecodeEngine(const DecodeEngine&) = delete;
  DecodeEngine& operator=(const DecodeEngine&) = delete;

  // Queues a sequence (the prompt is checked: not empty, ids inside the vocabulary); returns its id.
  int64_t add(SequenceRequest request);
  // The sequence stops before its next token (its closing event comes with the next step).
  void cancel(int64_t id);
  // Advances every running sequence by one token, calling on_event for each event in sequence id
  // order; returns how many sequences are still running.
  int64_t step(const std::function<void(const TokenEvent&)>& on_event = {});
  // Steps until no sequence runs.
  void run(const std::function<void(const TokenEvent&)>& on_event = {});
  bool finished(int64_t id) const;
  const SequenceResult& result(int64_t id) const;
  // Frees a sequence (its cache and result).
  void release(int64_t id);
  int64_t running() const;

  // Classifier logits [n_classes] of each of `batch` (all the same length): one evaluation pass
  // over the batch, the same as the training code's (a classifier pools every position, so it
  // needs no cache).
  std::vector<std::vector<float>> classify(const std::vector<std::vector<int32_t>>& batch);

  // Memory one sequence of up to `positions` positions costs (its KV cache).
  size_t sequence_bytes(int64_t positions) const { return model_.kv_cache_bytes(positions); }
  const Transformer& model() const { return model_; }

 private:
  struct Sequence;
  void emit(Sequence& s, int32_t token, FinishReason finish, const std::function<void(const TokenEvent&)>& on_event);
  void close(Sequence& s, FinishReason finish, const std::function<void(const TokenEvent&)>& on_event);
  // Samples the next token of s from its logits row and emits it (or stops).
  void advance(Sequence& s, const float* logits, const std::function<void(const TokenEvent&)>& on_event);

  const Transformer& model_;
  std::function<std::string(int32_t)> token_text_;
  EngineOptions options_;
  std::map<int64_t, std::unique_ptr<Sequence>> sequences_;
  int64_t next_id_ = 0;
  DecodeWorkspace decode_ws_;
  BatchWorkspace batch_ws_;
  // The sampler reads logits on the host: a model on a device copies them here, once a step.
  const float* host_logits(const Tensor& logits);
  Tensor host_logits_;
};

// The engine with one sequence, run to the end: prompt + generated ids. on_token(id) runs for every
// generated id, in order.
struct GenerateOptions {
  int64_t max_new_tokens = 50;
  SamplingOptions sampling;
  int32_t eos_id = -1;  // stop (without emitting it) when this id is chosen; -1: never
  std::vector<int32_t> stop_ids;  // more such ids (a model's several eos ids)
  bool kv_cache = true;
};
std::vector<int32_t> generate(const Transformer& model, const std::vector<int32_t>& prompt,
                              const GenerateOptions& options, const std::function<void(int32_t)>& on_token = {});

}  // namespace gptrain
