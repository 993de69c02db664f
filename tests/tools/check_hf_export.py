#!/usr/bin/env python3
"""Loads the model dirs gptrain wrote in transformers and compares the logits with gptrain's.

  GPTRAIN_HF_EXPORT_DIR=/tmp/export [GPTRAIN_HF_EXPORT_SHAPE=gpt2-small] [GPTRAIN_HF_EXPORT_TRAINED=run/final] \
      build/tests/model/hf_gpt2_test --gtest_filter='HfGpt2Export.*'
  python tests/tools/check_hf_export.py /tmp/export

Each sub-directory is a model dir plus reference.safetensors (`tokens` [B,T] as float32 ids,
`logits` [B,T,V] from gptrain; absent for a classifier, whose body alone must load). transformers must load every tensor (no missing, unexpected or
mismatched keys; the LM head tied exactly when config.json says so), and the logits must agree
within the error model of hf_error_model.py: transformers float32 and gptrain each within
k*u*||exact|| of transformers in float64. Exits non-zero on any failure.
"""
import copy
import os
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_error_model import UNIT_ROUNDOFF, error_k_config  # noqa: E402


def check_classifier(model_dir: str) -> bool:
    """A classifier dir: transformers loads its body (GPT2Model, LlamaModel, Qwen3Model); only
    score.* is left over."""
    model, info = AutoModel.from_pretrained(model_dir, output_loading_info=True)
    leftover = sorted(info["unexpected_keys"])
    ok = not info["missing_keys"] and not info["mismatched_keys"] and leftover == ["score.bias", "score.weight"]
    print(f"{os.path.basename(model_dir)}: {type(model).__name__} body loaded, left over {leftover}, "
          f"class names {model.config.gptrain.get('class_names')}" + ("" if ok else f"  FAILED: {info}"))
    return ok


def check(model_dir: str) -> bool:
    if "logits" not in load_file(os.path.join(model_dir, "reference.safetensors")):
        return check_classifier(model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    config._attn_implementation = "eager"
    model, info = AutoModelForCausalLM.from_pretrained(model_dir, config=config, output_loading_info=True)
    model.eval()
    problems = {k: v for k, v in info.items() if v}
    if problems:
        print(f"{model_dir}: transformers did not load cleanly: {problems}")
        return False
    tied = model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    if tied != model.config.tie_word_embeddings:
        print(f"{model_dir}: lm_head tied = {tied} but tie_word_embeddings = {model.config.tie_word_embeddings}")
        return False
    ref = load_file(os.path.join(model_dir, "reference.safetensors"))
    tokens = ref["tokens"].to(torch.int64)
    ours = ref["logits"].double()
    with torch.no_grad():
        torch32 = model(tokens).logits.double()
        exact = copy.deepcopy(model).double()(tokens).logits
    c = model.config
    k = error_k_config(c, tokens.shape[1])
    norm = exact.norm().item()
    bound = k * UNIT_ROUNDOFF * norm
    ours_err, torch_err = (ours - exact).norm().item(), (torch32 - exact).norm().item()
    cross = (ours - torch32).norm().item()
    max_abs = (ours - torch32).abs().max().item()
    print(f"{os.path.basename(model_dir)}: {c.model_type} V={c.vocab_size} L={c.num_hidden_layers} tied={tied}  "
          f"||gptrain-torch||/||ref|| {cross / norm:.3e}, max abs {max_abs:.3e} "
          f"(max |logit| {torch32.abs().max().item():.3e}); ||gptrain-f64||/||ref|| {ours_err / norm:.3e}, "
          f"||torch-f64||/||ref|| {torch_err / norm:.3e}; bound k*u = {k * UNIT_ROUNDOFF:.3e}")
    return ours_err <= bound and torch_err <= bound and cross <= 2 * bound


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    dirs = sorted(d for d in os.listdir(root) if os.path.exists(os.path.join(root, d, "reference.safetensors")))
    if not dirs:
        sys.exit(f"{root}: no model dirs with reference.safetensors")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    ok = all([check(os.path.join(root, d)) for d in dirs])
    print("all within the error model" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
