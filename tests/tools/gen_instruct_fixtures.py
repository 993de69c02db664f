#!/usr/bin/env python3
"""Writes the PyTorch fixture for instruction finetuning: the book's collate with prompt masking,
the masked loss and its gradients (tests/fixtures/instruct/instruct_collate.safetensors).

Run by developers with pip-installed torch, tiktoken and safetensors, never by CI:
    python3 tests/tools/gen_instruct_fixtures.py [--data-dir ../shared/data]
The tokenizer is tiktoken's "gpt2" encoding, built offline from the data dir's r50k_base.tiktoken.
Four real entries of instruction-data.json are formatted with the book's format_input plus
"\\n\\n### Response:\\n" and the output, tokenized, and collated by the book's custom_collate_fn
(ch07) extended with the exercise 7.2 masking: the targets of the prompt (here through
"### Response:\\n", as gptrain masks) are -100. Two variants of the batch:
  masked      prompt masking on, no length limit (gptrain's default)
  book_cut    no prompt masking (the book's chapter), allowed_max_length cutting the longest entries
The model is the book's GPTModel (tests/tools/gen_gpt2_parity.py) with a tiny config. To keep the
fixture small, its vocabulary is only the ids that occur in the batch: real GPT-2 ids are mapped to
their rank among them (vocab_map holds the real id of each compact id), which changes nothing in
the loss or its gradients but the size of the tables.

Tensors (all float32; ids are exact small integers):
  vocab_map [U]                 real GPT-2 id of each compact id
  entry.<i>.ids                 tiktoken ids of entry i's full text
  param.<name>                  the model's initial weights, in gptrain's names and layout
  <variant>.inputs/.targets     [B, T] collated batch, real ids (targets hold -100)
  <variant>.ref.loss, <variant>.ref.grad.<name>          float64 reference, rounded to float32
  <variant>.torch32.loss, <variant>.torch32.grad.<name>  PyTorch float32
Metadata: config, entries (the four entries' fields), prompt_lengths (len(encode(prompt))),
variants (mask_prompt, allowed_max_length), aligned_prompts (of all 1100 entries, how many have
encode(full)[:len(encode(prompt))] == encode(prompt)).
"""
import argparse
import json
import os
import sys

import tiktoken
import torch
from safetensors.torch import save_file
from tiktoken.load import load_tiktoken_bpe

sys.path.insert(0, os.path.dirname(__file__))
from gen_gpt2_parity import GPTModel, grad_of, our_names  # noqa: E402  the book's model

ENTRY_INDICES = [50, 999, 6, 17]  # with and without input, non-ASCII text


def gpt2_encoding(data_dir):
    pat = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    ranks = load_tiktoken_bpe(os.path.join(data_dir, "gpt2_tokenizer", "r50k_base.tiktoken"))
    return tiktoken.Encoding(name="gpt2", pat_str=pat, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})


def format_input(entry):  # the book's, verbatim
    instruction_text = (
        f"Below is an instruction that describes a task. "
        f"Write a response that appropriately completes the request."
        f"\n\n### Instruction:\n{entry['instruction']}"
    )
    input_text = f"\n\n### Input:\n{entry['input']}" if entry["input"] else ""
    return instruction_text + input_text


def prompt_of(entry):
    return format_input(entry) + "\n\n### Response:\n"


def custom_collate_fn(batch, pad_token_id=50256, ignore_index=-100, allowed_max_length=None, mask_prompt=False):
    """The book's ch07 collate; `batch` holds (ids, prompt_length) pairs; exercise 7.2 masking."""
    batch_max_length = max(len(item) + 1 for item, _ in batch)
    inputs_lst, targets_lst = [], []
    for item, prompt_length in batch:
        new_item = item.copy()
        new_item += [pad_token_id]
        padded = new_item + [pad_token_id] * (batch_max_length - len(new_item))
        inputs = torch.tensor(padded[:-1])
        targets = torch.tensor(padded[1:])
        mask = targets == pad_token_id
        indices = torch.nonzero(mask).squeeze()
        if indices.numel() > 1:
            targets[indices[1:]] = ignore_index
        if mask_prompt:
            targets[:prompt_length - 1] = ignore_index
        if allowed_max_length is not None:
            inputs = inputs[:allowed_max_length]
            targets = targets[:allowed_max_length]
        inputs_lst.append(inputs)
        targets_lst.append(targets)
    return torch.stack(inputs_lst), torch.stack(targets_lst)


def loss_and_grads(cfg, dtype, inputs, targets):
    torch.manual_seed(123)
    model = GPTModel(cfg).to(dtype)
    model.train()  # drop_rate 0: train mode equals eval mode
    logits = model(inputs)
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    loss.backward()
    initial = {n: f().detach().clone() for n, f in our_names(model, cfg)}
    grads = {n: grad_of(model, n, cfg) for n, _ in our_names(model, cfg)}
    return loss.detach().reshape(1), grads, initial


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    enc = gpt2_encoding(a.data_dir)
    data = json.load(open(os.path.join(a.data_dir, "instruction-data.json"), encoding="utf-8"))

    aligned = 0
    for e in data:
        p = enc.encode(prompt_of(e))
        full = enc.encode(prompt_of(e) + e["output"])
        aligned += full[:len(p)] == p
    print(f"prompt boundary on a token boundary in {aligned} of {len(data)} entries")

    entries = [data[i] for i in ENTRY_INDICES]
    ids = [enc.encode(prompt_of(e) + e["output"]) for e in entries]
    prompt_lengths = [len(enc.encode(prompt_of(e))) for e in entries]
    longest = max(len(x) for x in ids)
    variants = {"masked": {"mask_prompt": True, "allowed_max_length": None},
                "book_cut": {"mask_prompt": False, "allowed_max_length": longest - 9}}
    batches = {}
    for name, v in variants.items():
        batches[name] = custom_collate_fn(list(zip(ids, prompt_lengths)), allowed_max_length=v["allowed_max_length"],
                                          mask_prompt=v["mask_prompt"])
    used = sorted({t for x in ids for t in x} | {50256})
    compact = {t: i for i, t in enumerate(used)}
    cfg = {"vocab_size": len(used), "context_length": longest + 1, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
           "drop_rate": 0.0, "qkv_bias": False, "tie_weights": False}

    tensors = {"vocab_map": torch.tensor(used, dtype=torch.float32)}
    for i, x in enumerate(ids):
        tensors[f"entry.{i}.ids"] = torch.tensor(x, dtype=torch.float32)
    for name, (inputs, targets) in batches.items():
        tensors[f"{name}.inputs"] = inputs.float()
        tensors[f"{name}.targets"] = targets.float()
        cin = inputs.clone().apply_(lambda t: compact[t])
        ctg = targets.clone().apply_(lambda t: compact[t] if t >= 0 else t)
        ref_loss, ref_grads, initial = loss_and_grads(cfg, torch.float64, cin, ctg)
        t32_loss, t32_grads, initial32 = loss_and_grads(cfg, torch.float32, cin, ctg)
        for n, v in initial32.items():
            tensors["param." + n] = v.float().contiguous()
        tensors[f"{name}.ref.loss"] = ref_loss.float()
        tensors[f"{name}.torch32.loss"] = t32_loss.float()
        for n in ref_grads:
            tensors[f"{name}.ref.grad.{n}"] = ref_grads[n].float().contiguous()
            tensors[f"{name}.torch32.grad.{n}"] = t32_grads[n].float().contiguous()
        graded = int((targets != -100).sum())
        print(f"{name}: inputs {tuple(inputs.shape)}, {graded} graded targets, loss ref {ref_loss.item():.10f} "
              f"torch32 {t32_loss.item():.10f}")
    meta = {"config": json.dumps(cfg), "entries": json.dumps(entries), "entry_indices": json.dumps(ENTRY_INDICES),
            "prompt_lengths": json.dumps(prompt_lengths), "variants": json.dumps(variants),
            "aligned_prompts": json.dumps([aligned, len(data)]), "generator": "tests/tools/gen_instruct_fixtures.py",
            "torch": torch.__version__, "tiktoken": tiktoken.__version__}
    out_dir = os.path.join(os.path.dirname(__file__), "..", "fixtures", "instruct")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "instruct_collate.safetensors")
    save_file(tensors, path, metadata=meta)
    print(f"{path}: {os.path.getsize(path) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
