// The decode engine: many sequences over one model, each exactly as it is alone; stop ids, stop
// strings with held-back text, cancellation between tokens, the sliding window, and memory.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>

#include "generate/engine.h"
#include "model/transformer.h"
#include "util/error.h"

namespace gptrain {
namespace {

ModelConfig engine_config() {
  ModelConfig c;
  c.vocab_size = 61;  // every id decodes to one letter below, so texts are easy to read
  c.context_length = 24;
  c.emb_dim = 36;  // not a multiple of 8: the kernels' tails run too
  c.n_heads = 3;
  c.n_layers = 2;
  c.qkv_bias = true;
  c.drop_rate = 0.1f;  // must not matter: decoding has no dropout
  return c;
}

std::string letter(int32_t id) { return std::string(1, static_cast<char>('A' + id % 58)); }

// Eight different requests: prompts of different lengths, greedy and sampled, different seeds,
// top-k, top-p, stop ids, a stop string, one without a cache, one that outgrows the context.
std::vector<SequenceRequest> eight_requests() {
  std::vector<SequenceRequest> r(8);
  const std::vector<std::vector<int32_t>> prompts = {
      {1}, {5, 9, 2}, {7, 7, 7, 7, 7}, {3, 14, 15, 9, 26, 5, 35}, {60, 0}, {11, 22, 33, 44}, {8, 6, 4, 2, 0, 1, 3, 5, 7},
      {2, 4}};
  for (size_t i = 0; i < r.size(); ++i) {
    r[i].prompt = prompts[i];
    r[i].max_new_tokens = 6 + static_cast<int64_t>(i) * 2;
  }
  r[1].sampling.temperature = 1.0;
  r[1].sampling.seed = 5;
  r[2].sampling.temperature = 0.7;
  r[2].sampling.top_k = 5;
  r[2].sampling.seed = 6;
  r[3].sampling.temperature = 1.3;
  r[3].sampling.top_p = 0.8;
  r[3].sampling.seed = 7;
  r[4].stop_ids = {3, 17};
  r[4].sampling.temperature = 1.0;
  r[5].stop_strings = {"QQ", "ZK"};
  r[5].sampling.temperature = 2.0;
  r[5].sampling.seed = 11;
  r[6].kv_cache = false;
  r[6].sampling.temperature = 0.9;
  r[7].max_new_tokens = 40;  // 2 + 40 > context 24: the window slides
  r[7].sampling.temperature = 1.1;
  r[7].sampling.seed = 13;
  return r;
}

SequenceResult alone(const Transformer& m, const SequenceRequest& r) {
  DecodeEngine engine(m, letter);
  const int64_t id = engine.add(r);
  engine.run();
  return engine.result(id);
}

TEST(Engine, eight_sequences_together_give_exactly_what_each_gives_alone) {
  const Transformer m(engine_config(), 21);
  const std::vector<SequenceRequest> requests = eight_requests();
  std::vector<SequenceResult> solo;
  for (const SequenceRequest& r : requests) solo.push_back(alone(m, r));
  for (int64_t max_batch : {16, 3, 1}) {
    EngineOptions o;
    o.max_batch = max_batch;
    DecodeEngine engine(m, letter, o);
    std::vector<int64_t> ids;
    for (const SequenceRequest& r : requests) ids.push_back(engine.add(r));
    std::map<int64_t, std::string> streamed;
    std::map<int64_t, std::vector<int32_t>> tokens;
    int64_t steps = 0, running = 0;
    do {
      running = engine.step([&](const TokenEvent& ev) {
        streamed[ev.seq] += ev.text;
        if (ev.token >= 0) tokens[ev.seq].push_back(ev.token);
      });
      ++steps;
    } while (running > 0);
    EXPECT_EQ(steps, 40);  // each step advances every running sequence by one token
    for (size_t i = 0; i < requests.size(); ++i) {
      SCOPED_TRACE("sequence " + std::to_string(i) + ", max_batch " + std::to_string(max_batch));
      const SequenceResult& together = engine.result(ids[i]);
      EXPECT_EQ(together.generated, solo[i].generated);
      EXPECT_EQ(together.finish, solo[i].finish);
      EXPECT_EQ(together.text, solo[i].text);
      EXPECT_EQ(tokens[ids[i]], together.generated);
      EXPECT_EQ(streamed[ids[i]], together.text);
    }
  }
  // The requests exercise what they claim to.
  EXPECT_EQ(solo[0].finish, FinishReason::Length);
  EXPECT_EQ(solo[0].generated.size(), 6u);
  EXPECT_EQ(solo[7].generated.size(), 40u);
  for (int32_t t : solo[4].generated) EXPECT_TRUE(t != 3 && t != 17);
}

// --weights-dtype: a model whose decode rows read f16 / bf16 copies of its weights computes exactly
// what the same model with its f32 weights rounded to that type computes (prefill through BLAS on
// the rounded f32 values, decode rows through the half kernel = the f32 kernel on those values):
// the eight requests, together and alone, give the same tokens and text.
TEST(Engine, half_decode_weights_are_the_rounded_model_exactly) {
  for (const DType half : {DType::F16, DType::BF16}) {
   for (const bool tied : {false, true}) {
    SCOPED_TRACE(std::string(dtype_name(half)) + (tied ? " tied head" : ""));
    ModelConfig c = engine_config();
    c.tie_weights = tied;
    Transformer with_copies(c, 21), rounded(c, 21);
    with_copies.set_decode_weights(half);
    EXPECT_EQ(with_copies.decode_weights(), half);
    for (int i = 0; i < rounded.params().size(); ++i) {
      const Parameter& p = rounded.params()[i];
      const bool linear = p.kind == ParamKind::LinearWeight || (tied && p.name == "tok_emb.weight");
      if (!linear) continue;
      float* w = p.value.data<float>();
      for (int64_t k = 0; k < p.value.numel(); ++k)
        w[k] = half == DType::F16 ? f16_to_float(float_to_f16(w[k])) : bf16_to_float(float_to_bf16(w[k]));
    }
    for (int i = 0; i < rounded.params().size(); ++i) {  // the rounding the copies made is the same
      const Tensor& a = with_copies.params()[i].value;
      const Tensor& b = rounded.params()[i].value;
      ASSERT_EQ(0, std::memcmp(a.raw(), b.raw(), static_cast<size_t>(a.numel()) * 4)) << rounded.params()[i].name;
    }
    const std::vector<SequenceRequest> requests = eight_requests();
    DecodeEngine together(with_copies, letter);
    std::vector<int64_t> ids;
    for (const SequenceRequest& r : requests) ids.push_back(together.add(r));
    together.run();
    for (size_t i = 0; i < requests.size(); ++i) {
      SCOPED_TRACE("sequence " + std::to_string(i));
      const SequenceResult want = alone(rounded, requests[i]);
      EXPECT_EQ(together.result(ids[i]).generated, want.generated);
      EXPECT_EQ(alone(with_copies, requests[i]).generated, want.generated);
    }
   }
  }
  Transformer m(engine_config(), 21);
  m.set_decode_weights(DType::F16);
  EXPECT_THROW(m.set_decode_weights(DType::BF16), Error);  // rounded once
}

TEST(Engine, a_sequence_alone_equals_the_generate_loop_with_and_without_cache) {
  const Transformer m(engine_config(), 4);
  GenerateOptions g;
  g.max_new_tokens = 30;  // past the context: the window slides
  g.sampling.temperature = 1.0;
  g.sampling.seed = 3;
  const std::vector<int32_t> prompt = {4, 8, 15, 16, 23, 42};
  const auto cached = generate(m, prompt, g);
  g.kv_cache = false;
  EXPECT_EQ(generate(m, prompt, g), cached);
  ASSERT_EQ(cached.size(), prompt.size() + 30);
}

TEST(Engine, stop_ids_stop_strings_and_the_held_back_text) {
  const Transformer m(engine_config(), 8);
  SequenceRequest r;
  r.prompt = {1, 2, 3};
  r.max_new_tokens = 20;
  r.sampling.temperature = 1.0;
  r.sampling.seed = 1;
  const SequenceResult free_run = alone(m, r);
  ASSERT_EQ(free_run.generated.size(), 20u);
  // A stop id: the first occurrence ends the sequence, without it.
  SequenceRequest with_id = r;
  with_id.stop_ids = {free_run.generated[5]};
  size_t first = 0;
  while (free_run.generated[first] != free_run.generated[5]) ++first;
  const SequenceResult stopped = alone(m, with_id);
  EXPECT_EQ(stopped.finish, FinishReason::StopId);
  EXPECT_EQ(stopped.generated, std::vector<int32_t>(free_run.generated.begin(), free_run.generated.begin() + first));
  // A stop string of three letters from the middle of the free text: the text ends before it,
  // and no streamed piece ever showed any of it.
  const std::string stop = free_run.text.substr(9, 3);
  SequenceRequest with_string = r;
  with_string.stop_strings = {"no such text", stop};
  DecodeEngine engine(m, letter);
  const int64_t id = engine.add(with_string);
  std::string streamed;
  engine.run([&](const TokenEvent& ev) { streamed += ev.text; });
  const SequenceResult& s = engine.result(id);
  const size_t at = free_run.text.find(stop);
  EXPECT_EQ(s.finish, FinishReason::StopString);
  EXPECT_EQ(s.text, free_run.text.substr(0, at));
  EXPECT_EQ(streamed, s.text);
  EXPECT_EQ(s.generated.size(), at + stop.size());  // one letter per token
}

TEST(Engine, cancel_stops_a_sequence_between_tokens_and_leaves_the_others_alone) {
  const Transformer m(engine_config(), 9);
  std::vector<SequenceRequest> requests = eight_requests();
  std::vector<SequenceResult> solo;
  for (const SequenceRequest& r : requests) solo.push_back(alone(m, r));
  DecodeEngine engine(m, letter);
  std::vector<int64_t> ids;
  for (const SequenceRequest& r : requests) ids.push_back(engine.add(r));
  std::vector<TokenEvent> closing;
  engine.run([&](const TokenEvent& ev) {
    if (ev.seq == ids[7] && ev.token >= 0 && engine.result(ids[7]).generated.size() == 4) engine.cancel(ids[7]);
    if (ev.finish != FinishReason::None) closing.push_back(ev);
  });
  EXPECT_EQ(engine.result(ids[7]).finish, FinishReason::Cancelled);
  EXPECT_EQ(engine.result(ids[7]).generated,
            std::vector<int32_t>(solo[7].generated.begin(), solo[7].generated.begin() + 4));
  for (size_t i = 0; i < 7; ++i) EXPECT_EQ(engine.result(ids[i]).generated, solo[i].generated) << i;
  EXPECT_EQ(closing.size(), requests.size());  // one closing event per sequence
}

TEST(Engine, requests_are_checked_and_memory_is_per_sequence) {
  const Transformer m(engine_config(), 1);
  DecodeEngine engine(m);
  SequenceRequest empty;
  EXPECT_THROW(engine.add(empty), Error);
  SequenceRequest outside;
  outside.prompt = {61};
  EXPECT_THROW(engine.add(outside), Error);
  SequenceRequest stop;
  stop.prompt = {1};
  stop.stop_strings = {"x"};
  EXPECT_THROW(engine.add(stop), Error);  // no token_text: stop strings cannot be matched
  // 2 (keys and values) x layers x positions x kv width x 4 bytes
  EXPECT_EQ(engine.sequence_bytes(24), size_t{2 * 2 * 24 * 36 * 4});
  ModelConfig cls = engine_config();
  cls.head = HeadType::Classifier;
  cls.n_classes = 3;
  const Transformer classifier(cls, 2);
  DecodeEngine c(classifier);
  SequenceRequest two;
  two.prompt = {1, 2};
  EXPECT_THROW(c.add(two), Error);  // generation needs an LM head
  // classification: one evaluation pass over a batch, the same logits as the model's own pass
  const std::vector<std::vector<int32_t>> batch = {{1, 2, 3, 4}, {5, 6, 7, 8}};
  const auto logits = c.classify(batch);
  BatchWorkspace ws;
  const std::vector<int32_t> flat = {1, 2, 3, 4, 5, 6, 7, 8};
  const auto direct = classifier.forward(ws, flat, 2, 4, ForwardOptions{}).to_vector();
  ASSERT_EQ(logits.size(), 2u);
  EXPECT_EQ(logits[0], std::vector<float>(direct.begin(), direct.begin() + 3));
  EXPECT_EQ(logits[1], std::vector<float>(direct.begin() + 3, direct.end()));
}

}  // namespace
}  // namespace gptrain
