// Parameter counts of the four presets equal the book's (inventory §2, exercise 4.2 and §10).
#include <gtest/gtest.h>

#include "model/config.h"
#include "model/gpt2.h"
#include "util/error.h"

namespace gptrain {
namespace {

TEST(Config, preset_parameter_counts_match_the_book) {
  struct Row { const char* name; int64_t total, tied, total_qkv, tied_qkv; };
  for (const Row& r : {Row{"gpt2-small", 163009536, 124412160, 163037184, 124439808},
                       Row{"gpt2-medium", 406212608, 354749440, 406286336, 354823168},
                       Row{"gpt2-large", 838220800, 773891840, 838359040, 0},
                       Row{"gpt2-xl", 1637792000, 1557380800, 1638022400, 0}}) {
    GPT2Config c;
    ASSERT_TRUE(preset_config(r.name, c));
    EXPECT_EQ(count_parameters(c).total, r.total) << r.name;
    EXPECT_EQ(count_parameters(c).without_head, r.tied) << r.name;
    c.qkv_bias = true;
    EXPECT_EQ(count_parameters(c).total, r.total_qkv) << r.name;
    if (r.tied_qkv) EXPECT_EQ(count_parameters(c).without_head, r.tied_qkv) << r.name;
    c.tie_weights = true;
    EXPECT_EQ(count_parameters(c).total, count_parameters(c).without_head);
  }
}

TEST(Config, context_256_model_and_classifier_counts) {
  GPT2Config c;
  ASSERT_TRUE(preset_config("gpt2-small", c));
  c.context_length = 256;
  EXPECT_EQ(count_parameters(c).total, 162419712);  // the ch05 pretraining model
  GPT2Config cls;
  ASSERT_TRUE(preset_config("gpt2-small", cls));
  cls.qkv_bias = true;
  cls.head = HeadType::Classifier;
  cls.n_classes = 2;
  EXPECT_EQ(count_parameters(cls).total, 124441346);  // the ch06 spam classifier
}

TEST(Config, built_model_matches_counted_parameters) {
  GPT2Config c;
  c.vocab_size = 50;
  c.context_length = 16;
  c.emb_dim = 24;
  c.n_heads = 3;
  c.n_layers = 2;
  for (bool qkv : {false, true})
    for (bool tie : {false, true}) {
      c.qkv_bias = qkv;
      c.tie_weights = tie;
      GPT2 model(c);
      int64_t n = 0;
      for (const Parameter& p : model.params().all()) n += p.value.numel();
      EXPECT_EQ(n, count_parameters(c).total);
      EXPECT_EQ(model.params().trainable_numel(), n);
    }
}

TEST(Config, invalid_values_are_rejected_with_the_key) {
  GPT2Config c;
  c.n_heads = 7;
  try {
    c.validate();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("n_heads"), std::string::npos);
  }
}

}  // namespace
}  // namespace gptrain
