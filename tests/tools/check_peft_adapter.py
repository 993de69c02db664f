#!/usr/bin/env python3
"""Loads a LoRA adapter gptrain wrote in PEFT's format on its base model and compares the logits.

Developers run this with pip-installed torch, transformers, peft and safetensors (never CI):

  python tests/tools/check_peft_adapter.py BASE_DIR ADAPTER_DIR REFERENCE.safetensors

BASE_DIR is a transformers model dir (config.json, model.safetensors), ADAPTER_DIR what gptrain
wrote (adapter_config.json, adapter_model.safetensors), REFERENCE.safetensors holds `tokens`
[B,T] (ids, any dtype) and `logits` [B,T,V], gptrain's float32 logits of base + adapter.

1. transformers loads BASE_DIR (AutoModelForCausalLM, float32, eager attention) with no missing,
   unexpected or mismatched keys.
2. peft.PeftModel.from_pretrained loads ADAPTER_DIR with no warning from PEFT (missing adapter
   keys, unknown config keys, a fan_in_fan_out it had to correct, a rank/alpha pattern that matched
   nothing, ...), and the adapter state PEFT holds afterwards (get_peft_model_state_dict) has
   exactly the keys of adapter_model.safetensors with exactly its values: no missing and no
   unexpected key, which from_pretrained itself does not report.
3. The logits agree within the error model of hf_error_model.py, extended for the adapters by
   gen_lora_parity.lora_error_terms: PEFT float32 and gptrain each within k*u*||exact|| of PEFT
   in float64 (the exact side), so within 2*k*u*||exact|| of each other.
Exits non-zero on any failure. gen_peft_fixtures.py runs the same check on its PEFT-written
fixtures (which must pass) and on corrupted copies of them (which must fail).
"""
import copy
import os
import sys
import warnings

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM

import peft
import transformers
from peft import PeftModel, get_peft_model_state_dict
from peft.tuners.lora import LoraLayer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gen_lora_parity import lora_error_terms  # noqa: E402
from hf_error_model import UNIT_ROUNDOFF, error_k_config  # noqa: E402

PEFT_DIR = os.path.dirname(os.path.abspath(peft.__file__))


def load_base(base_dir):
    config = AutoConfig.from_pretrained(base_dir)
    config._attn_implementation = "eager"
    model, info = AutoModelForCausalLM.from_pretrained(base_dir, config=config, dtype=torch.float32,
                                                       output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    return model.eval(), problems


def load_adapter(base, adapter_dir):
    """PeftModel.from_pretrained, and what went wrong: PEFT's warnings and the key/value
    differences between the file and the adapter PEFT holds."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = PeftModel.from_pretrained(base, adapter_dir)
    problems = [f"PEFT warned: {w.message}" for w in caught
                if os.path.abspath(w.filename).startswith(PEFT_DIR + os.sep)]
    others = [f"{os.path.basename(w.filename)}: {w.category.__name__}" for w in caught if
              not os.path.abspath(w.filename).startswith(PEFT_DIR + os.sep)]
    stored = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    held = get_peft_model_state_dict(model)
    missing, unexpected = sorted(set(held) - set(stored)), sorted(set(stored) - set(held))
    if missing:
        problems.append(f"adapter keys PEFT expects but the file lacks: {missing}")
    if unexpected:
        problems.append(f"keys in the file PEFT did not load: {unexpected}")
    differ = sorted(k for k in set(held) & set(stored)
                    if held[k].shape != stored[k].shape or not torch.equal(held[k].float(), stored[k].float()))
    if differ:
        problems.append(f"tensors PEFT holds differently from the file: {differ}")
    return model.eval(), problems, others


def lora_layers(model):
    """(module name, in features, rank, scaling) of every LoRA layer, as PEFT resolved them."""
    out = []
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer) and "default" in module.r:
            out.append((name.removeprefix("base_model.model."), module.in_features, module.r["default"],
                        module.scaling["default"]))
    return out


def error_bound_k(model, seq_len):
    base_k = error_k_config(model.get_base_model().config, seq_len)
    return base_k + lora_error_terms([(i, r) for _, i, r, _ in lora_layers(model)])


def check(base_dir, adapter_dir, reference_path):
    """True when gptrain's adapter and logits pass; prints why not."""
    label = os.path.basename(os.path.normpath(adapter_dir))
    try:
        base, problems = load_base(base_dir)
        if problems:
            print(f"{label}: transformers did not load the base cleanly: {problems}")
            return False
        model, problems, others = load_adapter(base, adapter_dir)
    except Exception as e:  # noqa: BLE001 - a load that raises is a failure to report, not a crash
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        print(f"{label}: loading failed: {type(e).__name__}: " + " / ".join(lines[:2])[:400])
        return False
    if problems:
        print(f"{label}: PEFT did not load the adapter cleanly:\n  " + "\n  ".join(problems))
        return False
    layers = lora_layers(model)
    scalings = sorted({(r, s) for _, _, r, s in layers})
    print(f"{label}: {len(layers)} LoRA layers, (rank, scaling) {scalings}"
        + (f"; other warnings while loading: {sorted(set(others))}" if others else ""))

    ref = load_file(reference_path)
    tokens = ref["tokens"].to(torch.int64)
    ours = ref["logits"].double()
    with torch.no_grad():
        torch32 = model(tokens).logits.double()
        exact = copy.deepcopy(model).double()(tokens).logits
        with model.disable_adapter():
            base_logits = model(tokens).logits.double()
    if ours.shape != exact.shape:
        print(f"{label}: logits shape {tuple(ours.shape)}, PEFT gives {tuple(exact.shape)}")
        return False
    k = error_bound_k(model, tokens.shape[1])
    norm = exact.norm().item()
    bound = k * UNIT_ROUNDOFF * norm
    ours_err, torch_err = (ours - exact).norm().item(), (torch32 - exact).norm().item()
    cross = (ours - torch32).norm().item()
    ok = ours_err <= bound and torch_err <= bound and cross <= 2 * bound
    print(f"{label}: ||gptrain-peft32||/||ref|| {cross / norm:.3e}, ||gptrain-f64||/||ref|| {ours_err / norm:.3e}, "
          f"||peft32-f64||/||ref|| {torch_err / norm:.3e}; bound k*u = {k * UNIT_ROUNDOFF:.3e} "
          f"(adapter effect ||base-ref||/||ref|| {(base_logits - exact).norm().item() / norm:.3f})"
          + ("" if ok else "  FAILED"))
    return ok


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    transformers.utils.logging.disable_progress_bar()
    ok = check(*sys.argv[1:])
    print("adapter loads and agrees within the error model" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
