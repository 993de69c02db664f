#!/usr/bin/env python3
"""Writes the PyTorch fixture for DPO (Direct Preference Optimization): the book's preference collate,
the per-pair log-probabilities of a policy and a reference model, the DPO loss, its rewards and the
policy's gradients (tests/fixtures/dpo/dpo_book.safetensors).

Run by developers with pip-installed torch, tiktoken and safetensors, never by CI:
    python3 tests/tools/gen_dpo_fixtures.py [--data-dir ../shared/data]
The tokenizer is tiktoken's "gpt2" encoding, built offline from the data dir's r50k_base.tiktoken.
The code follows the book's DPO bonus (rasbt/LLMs-from-scratch,
ch07/04_preference-tuning-with-dpo/dpo-from-scratch.ipynb): four real entries of
instruction-data-with-preference.json go through its PreferenceDataset (prompt = format_input(entry),
chosen/rejected = f"{prompt}\\n\\n### Response:\\n{response}", each tokenized on its own) and its
custom_collate_fn (pad 50256, mask_prompt_tokens=True: the mask is False over the prompt's tokens plus
2, and over the padding). Two variants of the batch:
  full   allowed_max_length None
  cut    allowed_max_length = common padded length - 6, truncating the longest responses
         (every row keeps response tokens; the script asserts it)
The loss is the book's compute_dpo_loss_batch with beta 0.1, under two reductions of the per-token
log-probabilities of each response:
  mean   the book's compute_logprobs: sum(logp * mask) / sum(mask), with mask = selection_mask[:, 1:]
  sum    sum(logp * mask) (the DPO paper's and TRL's sequence log-probability)
The models are the book's GPTModel (tests/tools/gen_gpt2_parity.py) with a tiny config: the policy
initialised with torch.manual_seed(123), the reference with torch.manual_seed(321) (different weights,
so the DPO logits are not zero). To keep the fixture small the vocabulary is only the ids that occur in
the batch plus 50256: real GPT-2 ids are mapped to their rank among them (vocab_map holds the real id
of each compact id), which changes nothing in the loss or its gradients but the size of the tables.
The reference model runs under torch.no_grad(); the gradients are the policy's.

Tensors (all float32; ids and masks are exact small integers):
  vocab_map [U]                                   real GPT-2 id of each compact id
  entry.<i>.prompt/.chosen/.rejected              tiktoken ids of entry i's prompt and full texts
  param.<name>, refparam.<name>                   policy and reference initial weights, gptrain's names
  <variant>.chosen/.rejected [P, L]               collated batch, real GPT-2 ids
  <variant>.chosen_mask/.rejected_mask [P, L]     the collate's selection masks (0/1)
  <variant>.<reduction>.<prefix>.loss [1]         prefix "ref": float64 (from the float32 initial
  <variant>.<reduction>.<prefix>.chosen_rewards [1]      weights), rounded to float32;
  <variant>.<reduction>.<prefix>.rejected_rewards [1]    prefix "torch32": PyTorch float32
  <variant>.<reduction>.<prefix>.policy_chosen/.policy_rejected [P]        per-pair log-probabilities
  <variant>.<reduction>.<prefix>.reference_chosen/.reference_rejected [P]
  <variant>.<reduction>.<prefix>.grad.<name>      gradient of the loss for every policy parameter
The rewards are the book's: batch means of (policy - reference) log-probabilities, not scaled by beta.
Metadata: config, entries (the four entries' fields), entry_indices, prompt_lengths, beta, variants
({name: {allowed_max_length}}), reductions, generator, torch, tiktoken.
"""
import argparse
import json
import math
import os
import sys

import tiktoken
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from gen_gpt2_parity import GPTModel, grad_of, our_names  # noqa: E402  the book's model
from gen_instruct_fixtures import format_input, gpt2_encoding  # noqa: E402  the book's format_input

ENTRY_INDICES = [50, 999, 0, 1]  # the book's two printed examples (with and without input) and data[:2]
BETA = 0.1
POLICY_SEED, REFERENCE_SEED = 123, 321
CUT = 6  # the "cut" variant keeps the common padded length minus CUT tokens


def preference_dataset(data, tokenizer):
    """The book's PreferenceDataset: its encoded_texts, one dict of token id lists per entry."""
    encoded_texts = []
    for entry in data:
        prompt = format_input(entry)
        rejected_response = entry["rejected"]
        chosen_response = entry["chosen"]
        prompt_tokens = tokenizer.encode(prompt)
        chosen_full_text = f"{prompt}\n\n### Response:\n{chosen_response}"
        rejected_full_text = f"{prompt}\n\n### Response:\n{rejected_response}"
        chosen_full_tokens = tokenizer.encode(chosen_full_text)
        rejected_full_tokens = tokenizer.encode(rejected_full_text)
        encoded_texts.append({"prompt": prompt_tokens, "chosen": chosen_full_tokens, "rejected": rejected_full_tokens})
    return encoded_texts


def custom_collate_fn(batch, pad_token_id=50256, allowed_max_length=None, mask_prompt_tokens=True, device="cpu"):
    """The book's DPO custom_collate_fn, verbatim but for comments."""
    batch_data = {"prompt": [], "chosen": [], "rejected": [], "rejected_mask": [], "chosen_mask": []}
    # the longest sequence (plus one) sets the common padding length
    max_length_common = 0
    if batch:
        for key in ["chosen", "rejected"]:
            current_max = max(len(item[key]) + 1 for item in batch)
            max_length_common = max(max_length_common, current_max)
    for item in batch:
        prompt = torch.tensor(item["prompt"])
        batch_data["prompt"].append(prompt)
        for key in ["chosen", "rejected"]:
            sequence = item[key]
            padded = sequence + [pad_token_id] * (max_length_common - len(sequence))
            mask = torch.ones(len(padded)).bool()
            mask[len(sequence):] = False  # padding
            if mask_prompt_tokens:
                mask[:prompt.shape[0] + 2] = False  # the prompt and the 2 tokens after it (the book: "\n\n")
            batch_data[key].append(torch.tensor(padded))
            batch_data[f"{key}_mask"].append(mask)
    for key in ["chosen", "rejected", "chosen_mask", "rejected_mask"]:
        tensor_stack = torch.stack(batch_data[key])
        if allowed_max_length is not None:
            tensor_stack = tensor_stack[:, :allowed_max_length]
        batch_data[key] = tensor_stack.to(device)
    return batch_data


def compute_dpo_loss(model_chosen_logprobs, model_rejected_logprobs, reference_chosen_logprobs,
                     reference_rejected_logprobs, beta=0.1):
    """The book's compute_dpo_loss, verbatim but for comments."""
    model_logratios = model_chosen_logprobs - model_rejected_logprobs
    reference_logratios = reference_chosen_logprobs - reference_rejected_logprobs
    logits = model_logratios - reference_logratios
    losses = -F.logsigmoid(beta * logits)  # DPO, Eq. 7 of https://arxiv.org/pdf/2305.18290.pdf
    chosen_rewards = (model_chosen_logprobs - reference_chosen_logprobs).detach()
    rejected_rewards = (model_rejected_logprobs - reference_rejected_logprobs).detach()
    return losses.mean(), chosen_rewards.mean(), rejected_rewards.mean()


def compute_logprobs(logits, labels, selection_mask=None, reduction="mean"):
    """The book's compute_logprobs ("mean"); "sum" returns the masked sum instead of the masked mean."""
    labels = labels[:, 1:].clone()  # labels are the inputs shifted by one
    logits = logits[:, :-1, :]
    log_probs = F.log_softmax(logits, dim=-1)
    selected_log_probs = torch.gather(input=log_probs, dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)
    if selection_mask is not None:
        mask = selection_mask[:, 1:].clone()
        selected_log_probs = selected_log_probs * mask
        if reduction == "sum":
            return selected_log_probs.sum(-1)
        return selected_log_probs.sum(-1) / mask.sum(-1)
    return selected_log_probs.sum(-1) if reduction == "sum" else selected_log_probs.mean(-1)


def compute_dpo_loss_batch(batch, policy_model, reference_model, beta, reduction="mean"):
    """The book's compute_dpo_loss_batch; also returns the four per-pair log-probabilities."""
    policy_chosen_log_probas = compute_logprobs(logits=policy_model(batch["chosen"]), labels=batch["chosen"],
                                                selection_mask=batch["chosen_mask"], reduction=reduction)
    policy_rejected_log_probas = compute_logprobs(logits=policy_model(batch["rejected"]), labels=batch["rejected"],
                                                  selection_mask=batch["rejected_mask"], reduction=reduction)
    with torch.no_grad():
        ref_chosen_log_probas = compute_logprobs(logits=reference_model(batch["chosen"]), labels=batch["chosen"],
                                                 selection_mask=batch["chosen_mask"], reduction=reduction)
        ref_rejected_log_probas = compute_logprobs(logits=reference_model(batch["rejected"]),
                                                   labels=batch["rejected"], selection_mask=batch["rejected_mask"],
                                                   reduction=reduction)
    loss, chosen_rewards, rejected_rewards = compute_dpo_loss(
        model_chosen_logprobs=policy_chosen_log_probas, model_rejected_logprobs=policy_rejected_log_probas,
        reference_chosen_logprobs=ref_chosen_log_probas, reference_rejected_logprobs=ref_rejected_log_probas,
        beta=beta)
    logprobs = {"policy_chosen": policy_chosen_log_probas, "policy_rejected": policy_rejected_log_probas,
                "reference_chosen": ref_chosen_log_probas, "reference_rejected": ref_rejected_log_probas}
    return loss, chosen_rewards, rejected_rewards, logprobs


def build(cfg, dtype, seed):
    torch.manual_seed(seed)
    model = GPTModel(cfg).to(dtype)  # float32 init, the book's distributions, then the run's dtype
    model.train()  # drop_rate 0: train mode equals eval mode
    return model


def dpo_and_grads(cfg, dtype, batch, reduction, reference_seed=REFERENCE_SEED):
    policy = build(cfg, dtype, POLICY_SEED)
    reference = build(cfg, dtype, reference_seed)
    loss, chosen_rewards, rejected_rewards, logprobs = compute_dpo_loss_batch(batch, policy, reference, BETA,
                                                                              reduction)
    initial = {n: f().detach().clone() for n, f in our_names(policy, cfg)}
    ref_initial = {n: f().detach().clone() for n, f in our_names(reference, cfg)}
    loss.backward()
    assert all(p.grad is None for p in reference.parameters()), "the reference model got gradients"
    out = {"loss": loss.detach().reshape(1), "chosen_rewards": chosen_rewards.reshape(1),
           "rejected_rewards": rejected_rewards.reshape(1)}
    out.update({k: v.detach() for k, v in logprobs.items()})
    grads = {n: grad_of(policy, n, cfg) for n, _ in our_names(policy, cfg)}
    return out, grads, initial, ref_initial


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    enc = gpt2_encoding(a.data_dir)
    data = json.load(open(os.path.join(a.data_dir, "instruction-data-with-preference.json"), encoding="utf-8"))
    entries = [data[i] for i in ENTRY_INDICES]
    encoded = preference_dataset(entries, enc)
    prompt_lengths = [len(e["prompt"]) for e in encoded]
    for i, e in enumerate(encoded):
        for key in ["chosen", "rejected"]:
            assert e[key][:len(e["prompt"])] == e["prompt"], f"entry {i} {key}: prompt not on a token boundary"

    longest = max(len(e[k]) for e in encoded for k in ["chosen", "rejected"])
    padded_length = longest + 1  # the collate's max_length_common
    variants = {"full": {"allowed_max_length": None}, "cut": {"allowed_max_length": padded_length - CUT}}
    reductions = ["mean", "sum"]
    batches = {name: custom_collate_fn(encoded, allowed_max_length=v["allowed_max_length"])
               for name, v in variants.items()}
    for name, b in batches.items():
        for key in ["chosen_mask", "rejected_mask"]:
            kept = b[key][:, 1:].sum(-1)
            assert bool((kept > 0).all()), f"{name}.{key}: a row with no response token"

    used = sorted({t for e in encoded for k in ["chosen", "rejected"] for t in e[k]} | {50256})
    compact = {t: i for i, t in enumerate(used)}
    cfg = {"vocab_size": len(used), "context_length": longest + 2, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
           "drop_rate": 0.0, "qkv_bias": True, "tie_weights": False}

    tensors = {"vocab_map": torch.tensor(used, dtype=torch.float32)}
    for i, e in enumerate(encoded):
        for key in ["prompt", "chosen", "rejected"]:
            tensors[f"entry.{i}.{key}"] = torch.tensor(e[key], dtype=torch.float32)
    params = {}
    for name, b in batches.items():
        for key in ["chosen", "rejected", "chosen_mask", "rejected_mask"]:
            tensors[f"{name}.{key}"] = b[key].float().contiguous()
        cb = {k: b[k] for k in ["chosen_mask", "rejected_mask"]}
        for key in ["chosen", "rejected"]:
            cb[key] = b[key].clone().apply_(lambda t: compact[t])
        P, L = b["chosen"].shape
        kept = {k: b[f"{k}_mask"][:, 1:].sum(-1).tolist() for k in ["chosen", "rejected"]}
        print(f"{name}: P {P}, L {L}, graded tokens chosen {kept['chosen']} rejected {kept['rejected']}")
        for reduction in reductions:
            # sanity check: with the reference weights equal to the policy's, the loss is ln 2
            same, _, _, _ = dpo_and_grads(cfg, torch.float64, cb, reduction, reference_seed=POLICY_SEED)
            assert same["loss"].item() == -F.logsigmoid(torch.zeros((), dtype=torch.float64)).item()
            assert abs(same["loss"].item() - math.log(2)) < 1e-15, same["loss"].item()
            results = {}
            for prefix, dtype in [("ref", torch.float64), ("torch32", torch.float32)]:
                out, grads, initial, ref_initial = dpo_and_grads(cfg, dtype, cb, reduction)
                results[prefix] = out
                for n in initial:
                    init32 = (initial[n].float(), ref_initial[n].float())
                    if n in params:  # every run starts from the same float32 weights
                        assert torch.equal(params[n][0], init32[0]) and torch.equal(params[n][1], init32[1]), n
                    else:
                        params[n] = init32
                base = f"{name}.{reduction}.{prefix}."
                for k, v in out.items():
                    tensors[base + k] = v.float().contiguous()
                for n, g in grads.items():
                    tensors[base + "grad." + n] = g.float().contiguous()
            r, t = results["ref"], results["torch32"]
            margin = r["chosen_rewards"].item() - r["rejected_rewards"].item()
            print(f"  {reduction}: loss ref {r['loss'].item():.10f} torch32 {t['loss'].item():.10f}, "
                  f"rewards chosen {r['chosen_rewards'].item():.6f} rejected {r['rejected_rewards'].item():.6f} "
                  f"margin {margin:.6f}")
            print(f"    policy chosen {[round(x, 5) for x in r['policy_chosen'].tolist()]} "
                  f"rejected {[round(x, 5) for x in r['policy_rejected'].tolist()]}")
            print(f"    reference chosen {[round(x, 5) for x in r['reference_chosen'].tolist()]} "
                  f"rejected {[round(x, 5) for x in r['reference_rejected'].tolist()]}")
    for n, (p, rp) in params.items():
        tensors["param." + n] = p.contiguous()
        tensors["refparam." + n] = rp.contiguous()

    meta = {"config": json.dumps(cfg), "entries": json.dumps(entries), "entry_indices": json.dumps(ENTRY_INDICES),
            "prompt_lengths": json.dumps(prompt_lengths), "beta": json.dumps(BETA), "variants": json.dumps(variants),
            "reductions": json.dumps(reductions), "generator": "tests/tools/gen_dpo_fixtures.py",
            "torch": torch.__version__, "tiktoken": tiktoken.__version__}
    out_dir = os.path.join(os.path.dirname(__file__), "..", "fixtures", "dpo")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "dpo_book.safetensors")
    save_file(tensors, path, metadata=meta)
    print(f"prompt lengths {prompt_lengths}, vocab {len(used)}, context {cfg['context_length']}")
    print(f"{path}: {len(tensors)} tensors, {os.path.getsize(path) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
