#!/usr/bin/env python3
"""Writes LoRA adapters in Hugging Face PEFT's format, with their base models and reference logits.

Developers run this with pip-installed torch, transformers, peft and safetensors (never CI):

  python tests/tools/gen_peft_fixtures.py          # tests/fixtures/peft (committed)

Each tests/fixtures/peft/<name>/ holds
  base/                       the base model as save_pretrained writes it (config.json,
                              model.safetensors float32, generation_config.json): tiny and random
  adapter_config.json, adapter_model.safetensors
                              what peft.get_peft_model(...).save_pretrained writes (its README.md
                              model card deleted, target_modules sorted: PEFT writes a set)
  reference.safetensors       tokens [B,T] (ids as float32); logits [B,T,V]: PEFT base + adapter in
                              float32; logits_f64: the same in float64 (model.double()), rounded to
                              float32, the "exact" side of the error model; merged_logits: the
                              float32 model merge_and_unload() returns
with metadata B, T, error_k (hf_error_model.error_k_config plus gen_lora_parity.lora_error_terms),
lora_layers (JSON {module name without base_model.model.: {in, out, r, alpha, scaling}}, as PEFT
resolved the patterns), fan_in_fan_out, and the versions.
Fixtures:
  gpt2    GPT2LMHeadModel, target_modules c_attn, c_proj, c_fc (every Linear of the blocks; c_proj
          hits attn.c_proj and mlp.c_proj). HF GPT-2's layers are Conv1D (weight [in, out]), so
          PEFT uses fan_in_fan_out=True; lora_A/lora_B are stored [r, in] / [out, r] all the same.
  qwen3   Qwen3ForCausalLM (2 query heads of size 12 over 1 key/value head, width 32, tied head),
          every projection of the blocks, with rank_pattern {"layers.1.self_attn.o_proj": 6} and
          alpha_pattern {"layers.1.self_attn.o_proj": 3, "layers.0.mlp.down_proj": 16}: scalings
          2, 0.5 (o_proj of layer 1) and 4 (down_proj of layer 0). PEFT matches a pattern key K
          to a module name N (without base_model.model.) by re.match(rf"(.*\.)?({K})$", N).
  llama   LlamaForCausalLM (4 query heads over 2 key/value heads, tied head), target_modules left
          to PEFT's default for llama (q_proj, v_proj), r 8, alpha 16
Vocabulary 48, width 32, 2 layers; the Llama and Qwen3 MLP width is 24, unlike the width, so a
transposed down/gate/up adapter cannot fit by accident.
lora_B is not zero (init_lora_weights=False leaves nn.Linear's kaiming-uniform init on A and B),
so the adapter changes the logits by about as much as the base.

The script then runs check_peft_adapter.check on every fixture with PEFT's own float32 logits as
gptrain's (must pass) and on corrupted copies in a temporary dir (must fail): alpha doubled, one
lora_B negated, a key dropped, the base_model.model. prefix dropped, the reference replaced by the
base model's logits, and per model the q|k halves of c_attn's lora_B swapped / fan_in_fan_out
false (gpt2), the rank_pattern dropped (qwen3).
"""
import copy
import json
import os
import shutil
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

import peft
import transformers
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from check_peft_adapter import check, error_bound_k, load_base, lora_layers  # noqa: E402
from gen_hf_fixtures import make_model as make_gpt2  # noqa: E402
from gen_llama_qwen_fixtures import make as make_llama_qwen  # noqa: E402
from hf_error_model import UNIT_ROUNDOFF  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "peft")
B, T = 2, 8
VOCAB = 48


def gpt2_base():
    return make_gpt2(dict(vocab_size=VOCAB, n_positions=16, n_embd=32, n_layer=2, n_head=2, initializer_range=0.1),
                     tied=True, seed=31)


def qwen3_base():
    config = Qwen3Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=24, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=12, max_position_embeddings=32,
                         rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True, attention_bias=False,
                         bos_token_id=1, eos_token_id=2, initializer_range=0.1)
    return make_llama_qwen(Qwen3ForCausalLM, config, 32)


def llama_base():
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=24, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                         rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True, attention_bias=False,
                         mlp_bias=False, bos_token_id=1, eos_token_id=2, initializer_range=0.1)
    return make_llama_qwen(LlamaForCausalLM, config, 33)


FIXTURES = {
    "gpt2": (gpt2_base, dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True)),
    "qwen3": (qwen3_base, dict(r=4, lora_alpha=8,
                               target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                               "down_proj"],
                               rank_pattern={"layers.1.self_attn.o_proj": 6},
                               alpha_pattern={"layers.1.self_attn.o_proj": 3, "layers.0.mlp.down_proj": 16})),
    "llama": (llama_base, dict(r=8, lora_alpha=16)),  # target_modules: PEFT's default for llama
}


def write(name, make_base, lora_kwargs, seed):
    out = os.path.join(OUT, name)
    shutil.rmtree(out, ignore_errors=True)
    base_dir = os.path.join(out, "base")
    make_base().save_pretrained(base_dir, safe_serialization=True)
    # The adapter goes on the base as loaded from disk, as a user's would.
    base = transformers.AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, attn_implementation="eager")
    torch.manual_seed(seed)
    config = LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False, **lora_kwargs)
    model = get_peft_model(base, config).eval()
    model.peft_config["default"].base_model_name_or_path = f"tests/fixtures/peft/{name}/base"
    model.save_pretrained(out)
    os.remove(os.path.join(out, "README.md"))
    # PEFT keeps target_modules as a set and writes it in hash order; sorted, reruns write the same
    # file. Otherwise written as PEFT does (json.dumps(indent=2, sort_keys=True), no final newline).
    path = os.path.join(out, "adapter_config.json")
    with open(path) as f:
        written = json.load(f)
    written["target_modules"] = sorted(written["target_modules"])
    with open(path, "w") as f:
        f.write(json.dumps(written, indent=2, sort_keys=True))

    g = torch.Generator().manual_seed(seed + 1)
    tokens = torch.randint(0, VOCAB, (B, T), generator=g)
    with torch.no_grad():
        logits32 = model(tokens).logits
        logits64 = copy.deepcopy(model).double()(tokens).logits
        merged32 = copy.deepcopy(model).merge_and_unload()(tokens).logits
        merged64 = copy.deepcopy(model).double().merge_and_unload()(tokens).logits
    k = error_bound_k(model, T)
    norm = logits64.norm().item()
    errs = {"peft f32": (logits32.double() - logits64).norm().item() / norm,
            "merged f32": (merged32.double() - logits64).norm().item() / norm}
    merge64 = (merged64 - logits64).norm().item() / norm
    print(f"{name}: " + ", ".join(f"||{n} - f64||/||f64|| {e:.2e}" for n, e in errs.items())
          + f", merged f64 {merge64:.1e}; bound k*u {k * UNIT_ROUNDOFF:.2e}")
    assert all(e <= k * UNIT_ROUNDOFF for e in errs.values()), "the error model does not hold for PEFT here"
    assert merge64 <= k * 2.0 ** -53, merge64

    modules = {mname.removeprefix("base_model.model."): {
        "in": mod.in_features, "out": mod.out_features, "r": mod.r["default"], "alpha": mod.lora_alpha["default"],
        "scaling": mod.scaling["default"]} for mname, mod in model.named_modules() if isinstance(mod, LoraLayer)}
    assert len(modules) == len(lora_layers(model))
    meta = {"B": str(B), "T": str(T), "error_k": repr(k), "lora_layers": json.dumps(modules),
            "fan_in_fan_out": json.dumps(model.peft_config["default"].fan_in_fan_out),
            "generator": "tests/tools/gen_peft_fixtures.py", "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__}
    save_file({"tokens": tokens.float().contiguous(), "logits": logits32.float().contiguous(),
               "logits_f64": logits64.float().contiguous(), "merged_logits": merged32.float().contiguous()},
              os.path.join(out, "reference.safetensors"), metadata=meta)


# ----------------------------------------------------------------------------------------------
# Self-test of check_peft_adapter.py

def adapter_config(d):
    with open(os.path.join(d, "adapter_config.json")) as f:
        return json.load(f)


def edit_config(d, **changes):
    c = dict(adapter_config(d), **changes)
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(c, f, indent=2)


def edit_tensors(d, fn):
    path = os.path.join(d, "adapter_model.safetensors")
    t = load_file(path)
    save_file(fn(t), path, metadata={"format": "pt"})


def first_key(t, part):
    return sorted(k for k in t if part in k)[0]


def negate_one_b(t):
    k = first_key(t, "lora_B")
    return dict(t, **{k: -t[k]})


def drop_one_key(t):
    k = first_key(t, "lora_A")
    return {n: v for n, v in t.items() if n != k}


def drop_prefix(t):
    return {n.removeprefix("base_model.model."): v for n, v in t.items()}


def swap_qk(t):
    k = first_key(t, "c_attn.lora_B")
    c = t[k].shape[0] // 3
    return dict(t, **{k: torch.cat([t[k][c:2 * c], t[k][:c], t[k][2 * c:]]).contiguous()})


def corruptions(name):
    out = [("alpha doubled", lambda d: edit_config(d, lora_alpha=2 * adapter_config(d)["lora_alpha"]), None),
           ("one lora_B negated", lambda d: edit_tensors(d, negate_one_b), None),
           ("a lora_A key dropped", lambda d: edit_tensors(d, drop_one_key), None),
           ("no base_model.model. prefix", lambda d: edit_tensors(d, drop_prefix), None),
           ("reference = base logits", None, "base")]
    if name == "gpt2":
        out += [("c_attn lora_B q|k swapped", lambda d: edit_tensors(d, swap_qk), None),
                ("fan_in_fan_out false", lambda d: edit_config(d, fan_in_fan_out=False), None)]
    if name == "qwen3":
        out += [("rank_pattern dropped", lambda d: edit_config(d, rank_pattern={}), None)]
    return out


def self_test(name):
    d = os.path.join(OUT, name)
    base_dir, ref = os.path.join(d, "base"), os.path.join(d, "reference.safetensors")
    assert check(base_dir, d, ref), f"{name}: PEFT's own adapter and logits must pass"
    for what, edit, reference in corruptions(name):
        with tempfile.TemporaryDirectory() as tmp:
            bad = os.path.join(tmp, name + " (" + what + ")")
            shutil.copytree(d, bad, ignore=shutil.ignore_patterns("base"))
            if edit:
                edit(bad)
            bad_ref = ref
            if reference == "base":
                base, _ = load_base(base_dir)
                r = load_file(ref)
                with torch.no_grad():
                    r["logits"] = base(r["tokens"].to(torch.int64)).logits.float().contiguous()
                bad_ref = os.path.join(tmp, "reference.safetensors")
                save_file(r, bad_ref)
            assert not check(base_dir, bad, bad_ref), f"{name}: the check must fail on: {what}"


def main():
    torch.set_num_threads(1)
    transformers.utils.logging.disable_progress_bar()
    for i, (name, (make_base, lora_kwargs)) in enumerate(FIXTURES.items()):
        write(name, make_base, lora_kwargs, seed=40 + i)
    total = 0
    for root, _, files in sorted(os.walk(OUT)):
        for f in sorted(files):
            os.chmod(os.path.join(root, f), 0o644)  # safetensors writes 0600
            size = os.path.getsize(os.path.join(root, f))
            total += size
            print(f"  {os.path.relpath(os.path.join(root, f), OUT)}  {size} bytes")
    print(f"  total {total} bytes")
    print("self-test of check_peft_adapter.py (PEFT's own logits must pass, every corruption must fail):")
    for name in FIXTURES:
        self_test(name)
    print("self-test passed")


if __name__ == "__main__":
    main()
