#!/usr/bin/env python3
"""Writes Hugging Face GPT-2 model dirs with reference logits, for tests/model/hf_gpt2_test.cpp.

Developers run this with pip-installed torch, transformers and safetensors (never CI):

  python tests/tools/gen_hf_fixtures.py                       # tiny: tests/fixtures/hf (committed)
  python tests/tools/gen_hf_fixtures.py --shape gpt2-small --out /tmp/hf_small
  GPTRAIN_HF_PARITY_DIR=/tmp/hf_small build/tests/model/hf_gpt2_test --gtest_filter='*Parity*'

Each sub-directory is one model dir plus reference.safetensors with `tokens` (I64 [B,T]),
`logits` (transformers in float32, [B,T,V]) and `logits_f64` (the same model in float64, rounded
to float32, the "exact" result of the error model in hf_error_model.py):
  prefixed/        GPT2LMHeadModel.save_pretrained: `transformer.`-prefixed, tied, no lm_head
  hub/             the Hub's spelling of the same weights: bare `wte.weight`, `h.0...`, plus the
                   old `h.i.attn.bias` / `h.i.attn.masked_bias` buffers a loader must skip
  untied_sharded/  tie_word_embeddings=false (lm_head.weight stored), saved as shards with
                   model.safetensors.index.json
With --shared-data (default: $GPTRAIN_TEST_DATA_DIR or ../shared/data when present), also
shared_tiny_models.safetensors: the same three arrays for the transformers-written models in
<data>/tiny_models (see SOURCES.md), suffixed _vocab21 and _vocab50257; the latter keeps only
every 97th vocabulary column to stay small (metadata column_stride).
Weights are random and offline: the models are built from GPT2Config, never downloaded. Layer
norm parameters and biases are perturbed away from 1/0 so that a mix-up of any of them shows.
"""
import argparse
import copy
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_error_model import UNIT_ROUNDOFF, error_k  # noqa: E402

SHAPES = {
    # Small enough to commit (about 250 KB in all), with several heads, layers and positions.
    "tiny": dict(vocab_size=53, n_positions=16, n_embd=24, n_layer=2, n_head=3, initializer_range=0.1,
                 batch=2, seq=16, shard="24KB"),
    "gpt2-small": dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                       initializer_range=0.02, batch=2, seq=128, shard="200MB"),
}


def make_model(shape: dict, tied: bool, seed: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=shape["vocab_size"], n_positions=shape["n_positions"],
                        n_embd=shape["n_embd"], n_layer=shape["n_layer"], n_head=shape["n_head"],
                        initializer_range=shape["initializer_range"], tie_word_embeddings=tied,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=min(50256, shape["vocab_size"] - 1),
                        eos_token_id=min(50256, shape["vocab_size"] - 1))
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                p.add_(0.1 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model


def reference(model: GPT2LMHeadModel, tokens: torch.Tensor) -> dict:
    with torch.no_grad():
        logits = model(tokens).logits.float()
        model64 = copy.deepcopy(model).double()
        logits64 = model64(tokens).logits
    err = (logits.double() - logits64).norm().item()
    bound = error_k(model.config.n_embd, model.config.n_head, model.config.n_layer, tokens.shape[1]) \
        * UNIT_ROUNDOFF * logits64.norm().item()
    print(f"  transformers float32 vs float64: ||diff|| = {err:.3e}, bound k*u*||ref|| = {bound:.3e}, "
          f"max abs = {(logits.double() - logits64).abs().max().item():.3e}")
    if err > bound:
        sys.exit("the error model does not hold for transformers itself on this fixture; see hf_error_model.py")
    return {"tokens": tokens.to(torch.int64).contiguous(), "logits": logits.contiguous(),
            "logits_f64": logits64.float().contiguous()}


def hub_state(model: GPT2LMHeadModel) -> dict:
    """The base model's tensors under bare names, with the mask buffers old checkpoints carry."""
    state = {k: v.detach().clone().contiguous() for k, v in model.transformer.state_dict().items()}
    state = {k: v for k, v in state.items() if not k.endswith(".attn.bias") and not k.endswith("masked_bias")}
    n = model.config.n_positions
    for i in range(model.config.n_layer):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(n, n)).view(1, 1, n, n).contiguous()
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)  # rank 0, as in the original files
    return state


def shared_models_reference(data_dir: str, out: str, seed: int) -> None:
    """Reference logits of the transformers-written tiny models in the shared data dir."""
    stride = 97
    arrays = {}
    for name, suffix in [("tiny_gpt2_vocab21", "_vocab21"), ("fake_gpt2_vocab50257", "_vocab50257")]:
        model, info = GPT2LMHeadModel.from_pretrained(os.path.join(data_dir, "tiny_models", name),
                                                      output_loading_info=True)
        model.eval()
        if info["missing_keys"] or info["mismatched_keys"]:
            sys.exit(f"{name}: transformers did not load every weight: {info}")
        gen = torch.Generator().manual_seed(seed)
        tokens = torch.randint(0, model.config.vocab_size, (1, 8), generator=gen)
        print(f"{name}")
        ref = reference(model, tokens)
        if suffix == "_vocab50257":
            ref["logits"] = ref["logits"][..., ::stride].contiguous()
            ref["logits_f64"] = ref["logits_f64"][..., ::stride].contiguous()
        arrays.update({k + suffix: v for k, v in ref.items()})
    save_file(arrays, os.path.join(out, "shared_tiny_models.safetensors"), metadata={"column_stride": str(stride)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=SHAPES, default="tiny")
    parser.add_argument("--out", default=None, help="default: tests/fixtures/hf for tiny")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--shared-data", default=None, help="the shared data dir holding tiny_models/")
    args = parser.parse_args()
    shape = SHAPES[args.shape]
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "hf")
    if args.shape != "tiny" and args.out is None:
        sys.exit("--out is required for full-size shapes (they are not committed)")
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    gen = torch.Generator().manual_seed(args.seed + 1)
    tokens = torch.randint(0, shape["vocab_size"], (shape["batch"], shape["seq"]), generator=gen)

    tied = make_model(shape, tied=True, seed=args.seed)
    print(f"{args.shape} tied model")
    ref = reference(tied, tokens)
    d = os.path.join(out, "prefixed")
    tied.save_pretrained(d)
    save_file(ref, os.path.join(d, "reference.safetensors"))

    d = os.path.join(out, "hub")
    os.makedirs(d, exist_ok=True)
    save_file(hub_state(tied), os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    tied.config.architectures = ["GPT2LMHeadModel"]
    tied.config.save_pretrained(d)
    save_file(ref, os.path.join(d, "reference.safetensors"))

    untied = make_model(shape, tied=False, seed=args.seed + 2)
    print(f"{args.shape} untied model")
    ref = reference(untied, tokens)
    d = os.path.join(out, "untied_sharded")
    untied.save_pretrained(d, max_shard_size=shape["shard"])
    save_file(ref, os.path.join(d, "reference.safetensors"))
    data_dir = args.shared_data or os.environ.get("GPTRAIN_TEST_DATA_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data")
    if args.shape == "tiny" and os.path.isdir(os.path.join(data_dir, "tiny_models")):
        shared_models_reference(data_dir, out, args.seed + 3)
    for root, _, files in sorted(os.walk(out)):
        for f in sorted(files):
            print(f"  {os.path.join(root, f)}  {os.path.getsize(os.path.join(root, f))} bytes")


if __name__ == "__main__":
    main()
