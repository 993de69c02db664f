#!/usr/bin/env python3
"""Fixtures for `gptrain export-gguf` (tests/convert), written with transformers, tokenizers and PEFT.

A developer tool (never run by CI; the fixtures are committed). Run from the repository root:

    python3 tests/tools/gen_gguf_fixtures.py                 # tests/fixtures/gguf
    python3 tests/tools/gen_gguf_fixtures.py --parity DIR    # also the larger models of
                                                             # tools/check_gguf_llamacpp.sh into DIR

tests/fixtures/gguf/ holds:
  gpt2/    GPT2LMHeadModel (2 blocks, width 16, tied head, bf16) with a GPT-2-style vocab.json +
           merges.txt of 256 bytes + merges + <|endoftext|>
  llama/   LlamaForCausalLM (2 query heads over 1 key/value head, llama3 rope scaling, untied head)
           with a tokenizer.json in Llama 3's form (its pre-tokenizer, a BOS post-processor,
           ignore_merges) and tokenizer_config.json
  qwen3/   Qwen3ForCausalLM (4 heads of 8 over width 16, tied head, embedding padded past the tokenizer) with a tokenizer.json in Qwen3's
           form (Qwen2 pre-tokenizer, NFC, special and non-special added tokens), tokenizer_config.json
           with a chat template
  gpt2_lora/   PEFT adapter on gpt2/: c_attn (rank_pattern 6), attn.c_proj (alpha_pattern), c_fc,
               mlp.c_proj (an alpha_pattern key that is a full module path); random lora_A and lora_B
  llama_lora/  PEFT adapter on llama/ with use_rslora: q/k/v/o, gate/up/down, lm_head
  <name>/expected.safetensors  what the GGUF must hold, computed here independently of gptrain:
      model dirs: blk.N.attn_q/attn_k.weight with the rotary permutation done as torch reshapes
      (llama only), rope_freqs.weight from transformers' llama3 inverse frequencies;
      adapters: <tensor>.lora_b = lora_B * scaling * r / lora_alpha (lora_a is lora_A as stored) with
      PEFT's own per-module scaling and r read off the loaded PeftModel (permuted for Llama q/k).
"""
import argparse
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM
from peft import LoraConfig, PeftModel, get_peft_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "gguf")
DATA = os.path.join(ROOT, "..", "shared", "data")
TEXT = os.path.join(DATA, "the-verdict.txt")


def corpus():
    with open(TEXT, encoding="utf-8") as f:
        return [line for line in f.read().splitlines() if line.strip()]


def byte_level_bpe(vocab_size, specials, pre_tokenizer_json=None):
    """A small byte-level BPE trained on the-verdict.txt; with pre_tokenizer_json, that family's."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = __import__("tokenizers").decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    spec = json.loads(tok.to_str())
    if pre_tokenizer_json is not None:
        spec["pre_tokenizer"] = pre_tokenizer_json
    return spec


def family_spec(real_path, vocab_size, specials):
    """tokenizer.json in the form of a real family file (pre-tokenizer, normalizer, post-processor,
    decoder) with a small trained vocabulary; specials [(text, special)] appended as added tokens."""
    with open(real_path, encoding="utf-8") as f:
        real = json.load(f)
    spec = byte_level_bpe(vocab_size - len(specials), [], real["pre_tokenizer"])
    spec["normalizer"] = real["normalizer"]
    spec["decoder"] = real["decoder"]
    spec["model"]["ignore_merges"] = bool(real["model"].get("ignore_merges", False))
    next_id = max(spec["model"]["vocab"].values()) + 1
    spec["added_tokens"] = []
    for text, special in specials:
        spec["added_tokens"].append({"id": next_id, "content": text, "single_word": False, "lstrip": False,
                                     "rstrip": False, "normalized": False, "special": special})
        next_id += 1
    return spec, real


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")


def random_model(cls, config, seed):
    torch.manual_seed(seed)
    model = cls(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "ln_" in name:
                p.add_(0.2 * torch.randn_like(p))  # norms away from 1 so a misplaced one shows
    return model


def llama_permute(w, heads):
    """llama.cpp's row order for rotary q/k: each head's two halves interleaved (torch reshapes)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def rope_freq_factors(config):
    """llama.cpp's rope_freqs (divisor per frequency) from transformers' own llama3 frequencies."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](config, "cpu")
    dim = config.head_dim
    base = config.rope_parameters["rope_theta"]
    plain = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    return (plain / scaled).float()


# ------------------------------------------------------------------------------------------------
# Model dirs


def write_gpt2(out, vocab_size_goal=280, width=16, layers=2, heads=2, positions=32, seed=11, dtype=torch.bfloat16):
    os.makedirs(out, exist_ok=True)
    spec = byte_level_bpe(vocab_size_goal, ["<|endoftext|>"])
    vocab = spec["model"]["vocab"]
    merges = spec["model"]["merges"]
    write_json(os.path.join(out, "vocab.json"), vocab)
    with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for m in merges:
            f.write((m if isinstance(m, str) else " ".join(m)) + "\n")
    eot = vocab["<|endoftext|>"]
    config = GPT2Config(vocab_size=len(vocab), n_positions=positions, n_embd=width, n_layer=layers, n_head=heads,
                        bos_token_id=eot, eos_token_id=eot, initializer_range=0.2)
    model = random_model(GPT2LMHeadModel, config, seed)
    model.to(dtype).save_pretrained(out, safe_serialization=True)
    return model


def write_llama(out, seed=12, dtype=torch.bfloat16, real_tokenizer=None, width=16, layers=2, vocab_goal=280,
                heads=(2, 1), head_dim=8, scaled=True):
    os.makedirs(out, exist_ok=True)
    real_path = os.path.join(DATA, "tokenizers", "llama3", "llama-3.2-90b-vision", "tokenizer.json")
    if real_tokenizer is None:
        specials = [("<|begin_of_text|>", True), ("<|end_of_text|>", True), ("<|eot_id|>", True)]
        spec, real = family_spec(real_path, vocab_goal, specials)
        bos = spec["added_tokens"][0]["id"]
        post = real["post_processor"]
        post_text = json.dumps(post).replace("128000", str(bos))
        spec["post_processor"] = json.loads(post_text)
        write_json(os.path.join(out, "tokenizer.json"), spec)
        write_json(os.path.join(out, "tokenizer_config.json"),
                   {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "model_max_length": 64})
        vocab_size, eos = bos + len(specials), bos + 1
    else:
        for name in ("tokenizer.json", "tokenizer_config.json"):
            if os.path.exists(os.path.join(real_tokenizer, name)):
                shutil.copy(os.path.join(real_tokenizer, name), out)
        vocab_size, bos, eos = 128256, 128000, 128001
    rope = ({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
             "original_max_position_embeddings": 16} if scaled else None)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=width, intermediate_size=48, num_hidden_layers=layers,
                         num_attention_heads=heads[0], num_key_value_heads=heads[1], head_dim=head_dim,
                         max_position_embeddings=64, rms_norm_eps=1e-5,
                         rope_theta=500000.0, rope_scaling=rope, tie_word_embeddings=False, bos_token_id=bos,
                         eos_token_id=eos, initializer_range=0.2)
    model = random_model(LlamaForCausalLM, config, seed)
    model.to(dtype).save_pretrained(out, safe_serialization=True)
    return model


def write_qwen3(out, seed=13, dtype=torch.bfloat16, real_tokenizer=None, width=16, layers=2, vocab_goal=280):
    os.makedirs(out, exist_ok=True)
    if real_tokenizer is None:
        specials = [("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True), ("<think>", False),
                    ("</think>", False)]
        spec, real = family_spec(os.path.join(DATA, "tokenizers", "qwen", "tokenizer.json"), vocab_goal, specials)
        spec["post_processor"] = real["post_processor"]
        write_json(os.path.join(out, "tokenizer.json"), spec)
        write_json(os.path.join(out, "tokenizer_config.json"),
                   {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                    "chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
                                     "{% endfor %}"})
        n = spec["added_tokens"][-1]["id"] + 1
        vocab_size = n + 7  # an embedding padded past the tokenizer, as Qwen3's 151936 > 151669
        eos = spec["added_tokens"][2]["id"]
    else:
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(real_tokenizer, name), out)
        vocab_size, eos = 151936, 151645
    config = Qwen3Config(vocab_size=vocab_size, hidden_size=width, intermediate_size=48, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
                         rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True, eos_token_id=eos,
                         initializer_range=0.2)
    model = random_model(Qwen3ForCausalLM, config, seed)
    model.to(dtype).save_pretrained(out, safe_serialization=True)
    return model


def stored(model_dir):
    from safetensors import safe_open
    with safe_open(os.path.join(model_dir, "model.safetensors"), "pt") as f:
        return {k: f.get_tensor(k).float() for k in f.keys()}


def llama_expected(model_dir, config):
    """The llama dir's permuted q/k and rope_freqs, as the GGUF must hold them."""
    w = stored(model_dir)
    out = {}
    for l in range(config.num_hidden_layers):
        p = f"model.layers.{l}.self_attn."
        out[f"blk.{l}.attn_q.weight"] = llama_permute(w[p + "q_proj.weight"], config.num_attention_heads)
        out[f"blk.{l}.attn_k.weight"] = llama_permute(w[p + "k_proj.weight"], config.num_key_value_heads)
    if config.rope_parameters.get("rope_type") == "llama3":
        out["rope_freqs.weight"] = rope_freq_factors(config)
    return {k: v.contiguous() for k, v in out.items()}


# ------------------------------------------------------------------------------------------------
# PEFT adapters

GPT2_TARGETS = {"attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "mlp.c_fc": "ffn_up",
                "mlp.c_proj": "ffn_down"}
LLAMA_TARGETS = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down"}


def gguf_name(module, arch):
    if module == "lm_head":
        return "output.weight"
    parts = module.split(".")
    layer = int(parts[parts.index("h" if arch == "gpt2" else "layers") + 1])
    kind = ".".join(parts[-2:])
    return f"blk.{layer}.{(GPT2_TARGETS if arch == 'gpt2' else LLAMA_TARGETS)[kind]}.weight"


def write_adapter(base_dir, cls, out, lora_config, seed, arch, heads=None):
    """A PEFT adapter with random A and B over the model in base_dir, and what its GGUF must hold."""
    base = cls.from_pretrained(base_dir, dtype=torch.float32)
    peft_model = get_peft_model(base, lora_config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    peft_model.save_pretrained(out, safe_serialization=True)
    # Read scaling and rank back from a fresh load: what PEFT itself applies to this file.
    loaded = PeftModel.from_pretrained(cls.from_pretrained(base_dir, dtype=torch.float32), out)
    alpha_file = lora_config.lora_alpha
    expected = {}
    for name, module in loaded.named_modules():
        if not hasattr(module, "lora_A") or "default" not in getattr(module, "lora_A", {}):
            continue
        short = name.removeprefix("base_model.model.")
        target = gguf_name(short, arch)
        b = module.lora_B["default"].weight.detach().double()
        factor = module.scaling["default"] * module.r["default"] / alpha_file
        b = (b * factor).float()
        if arch == "llama" and short.endswith("q_proj"):
            b = llama_permute(b, heads[0])
        if arch == "llama" and short.endswith("k_proj"):
            b = llama_permute(b, heads[1])
        expected[target + ".lora_b"] = b.contiguous()  # lora_a is lora_A as stored
    save_file(expected, os.path.join(out, "expected.safetensors"))
    config_path = os.path.join(out, "adapter_config.json")
    with open(config_path, encoding="utf-8") as f:
        saved = json.load(f)
    saved["base_model_name_or_path"] = os.path.relpath(base_dir, out)  # no absolute path of this machine
    if isinstance(saved.get("target_modules"), list):
        saved["target_modules"] = sorted(saved["target_modules"])  # PEFT keeps a set: its order varies per run
    write_json(config_path, saved)
    for extra in ("README.md",):
        if os.path.exists(os.path.join(out, extra)):
            os.remove(os.path.join(out, extra))
    return loaded


def write_fixtures():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    write_gpt2(os.path.join(OUT, "gpt2"))
    llama = write_llama(os.path.join(OUT, "llama"))
    save_file(llama_expected(os.path.join(OUT, "llama"), llama.config), os.path.join(OUT, "llama", "expected.safetensors"))
    write_qwen3(os.path.join(OUT, "qwen3"))
    write_adapter(os.path.join(OUT, "gpt2"), GPT2LMHeadModel, os.path.join(OUT, "gpt2_lora"),
                  LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj", "c_fc"],
                             rank_pattern={"c_attn": 6}, alpha_pattern={"h.1.mlp.c_proj": 2, "c_proj": 12},
                             fan_in_fan_out=True, task_type="CAUSAL_LM"),
                  seed=21, arch="gpt2")
    write_adapter(os.path.join(OUT, "llama"), LlamaForCausalLM, os.path.join(OUT, "llama_lora"),
                  LoraConfig(r=4, lora_alpha=16, use_rslora=True,
                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                             "down_proj", "lm_head"],
                             rank_pattern={"k_proj": 2}, alpha_pattern={"o_proj": 4}, task_type="CAUSAL_LM"),
                  seed=22, arch="llama", heads=(2, 1))
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT}: {total / 1024:.0f} KB")


# ------------------------------------------------------------------------------------------------
# Larger random models for tools/check_gguf_llamacpp.sh (not committed)


def write_parity(out):
    os.makedirs(out, exist_ok=True)
    llama = write_llama(os.path.join(out, "llama"), seed=31, dtype=torch.float32,
                        real_tokenizer=os.path.join(DATA, "tokenizers", "llama3"), width=64, layers=2,
                        heads=(4, 2), head_dim=16, scaled=True)
    qwen = write_qwen3(os.path.join(out, "qwen3"), seed=32, dtype=torch.float32,
                       real_tokenizer=os.path.join(DATA, "tokenizers", "qwen"), width=64, layers=2)
    gpt2_dir = os.path.join(out, "gpt2")
    os.makedirs(gpt2_dir, exist_ok=True)
    torch.manual_seed(33)
    config = GPT2Config(vocab_size=50257, n_positions=128, n_embd=64, n_layer=2, n_head=4, initializer_range=0.2)
    gpt2 = random_model(GPT2LMHeadModel, config, 33)
    gpt2.save_pretrained(gpt2_dir, safe_serialization=True)
    write_adapter(gpt2_dir, GPT2LMHeadModel, os.path.join(out, "gpt2_lora"),
                  LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj", "c_fc"],
                             rank_pattern={"c_attn": 6}, alpha_pattern={"c_proj": 12}, task_type="CAUSAL_LM"),
                  seed=41, arch="gpt2")
    write_adapter(os.path.join(out, "llama"), LlamaForCausalLM, os.path.join(out, "llama_lora"),
                  LoraConfig(r=4, lora_alpha=16, use_rslora=True,
                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                             "down_proj"],
                             alpha_pattern={"o_proj": 4}, task_type="CAUSAL_LM"),
                  seed=42, arch="llama", heads=(4, 2))
    write_adapter(os.path.join(out, "qwen3"), Qwen3ForCausalLM, os.path.join(out, "qwen3_lora"),
                  LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                             task_type="CAUSAL_LM"),
                  seed=43, arch="qwen3")
    print(f"wrote {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parity", help="also write the llama.cpp parity models into this directory")
    ap.add_argument("--parity-only", action="store_true", help="only the parity models")
    args = ap.parse_args()
    if not args.parity_only:
        write_fixtures()
    if args.parity:
        write_parity(args.parity)


if __name__ == "__main__":
    main()
