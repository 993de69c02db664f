// A greedy decoder over llama.cpp's C API, for tools/check_gguf_llamacpp.sh (not part of the build:
// the script compiles it against a llama.cpp checkout outside the project). It prints the prompt's
// token ids as llama.cpp tokenizes them and the ids of N greedy tokens (the argmax of the logits,
// lowest id on a tie, no stop at end-of-generation tokens), with the K/V cache in F32 so that an F32
// model runs in F32 throughout.
//   llamacpp_greedy MODEL.gguf N PROMPT [LORA.gguf]
#include <llama.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL.gguf N PROMPT [LORA.gguf]\n", argv[0]);
    return 2;
  }
  const char* model_path = argv[1];
  const int n_new = std::atoi(argv[2]);
  const std::string prompt = argv[3];
  llama_backend_init();
  llama_model_params mp = llama_model_default_params();
  // No repacked weight buffers: a CPU that lists AMX in a VM that has not enabled its tile state
  // dies with SIGILL in ggml's AMX matmul (seen here), and the plain kernels are what is compared.
  mp.use_extra_bufts = false;
  llama_model* model = llama_model_load_from_file(model_path, mp);
  if (!model) {
    std::fprintf(stderr, "cannot load %s\n", model_path);
    return 1;
  }
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = 512;
  cp.n_batch = 512;
  cp.n_threads = cp.n_threads_batch = 2;
  cp.type_k = GGML_TYPE_F32;
  cp.type_v = GGML_TYPE_F32;
  cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
  llama_context* ctx = llama_init_from_model(model, cp);
  if (!ctx) {
    std::fprintf(stderr, "cannot create a context\n");
    return 1;
  }
  if (argc > 4) {
    llama_adapter_lora* lora = llama_adapter_lora_init(model, argv[4]);
    if (!lora) {
      std::fprintf(stderr, "cannot load the LoRA adapter %s\n", argv[4]);
      return 1;
    }
    float scale = 1.0f;
    if (llama_set_adapters_lora(ctx, &lora, 1, &scale) != 0) {
      std::fprintf(stderr, "cannot apply the LoRA adapter\n");
      return 1;
    }
  }
  const llama_vocab* vocab = llama_model_get_vocab(model);
  std::vector<llama_token> ids(prompt.size() + 16);
  // add_special: the BOS when the vocabulary asks for one; parse_special: <|...|> in the text are ids
  const int n = llama_tokenize(vocab, prompt.data(), static_cast<int>(prompt.size()), ids.data(),
                               static_cast<int>(ids.size()), true, true);
  if (n < 0) return 1;
  ids.resize(n);
  std::printf("prompt ids:");
  for (llama_token t : ids) std::printf(" %d", t);
  std::printf("\ngenerated ids:");
  const int n_vocab = llama_vocab_n_tokens(vocab);
  std::vector<llama_token> step = ids;
  for (int i = 0; i < n_new; ++i) {
    if (llama_decode(ctx, llama_batch_get_one(step.data(), static_cast<int>(step.size()))) != 0) {
      std::fprintf(stderr, "llama_decode failed\n");
      return 1;
    }
    const float* logits = llama_get_logits_ith(ctx, -1);
    llama_token best = 0;
    for (llama_token t = 1; t < n_vocab; ++t)
      if (logits[t] > logits[best]) best = t;
    std::printf(" %d", best);
    step.assign(1, best);
  }
  std::printf("\n");
  llama_free(ctx);
  llama_model_free(model);
  llama_backend_free();
  return 0;
}
