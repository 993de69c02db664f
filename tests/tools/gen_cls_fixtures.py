#!/usr/bin/env python3
"""Writes the fixtures of classification finetuning (the book's chapter 6).

Run by developers with pip-installed pandas, numpy, torch and safetensors, never by CI:
    python3 tests/tools/gen_cls_fixtures.py [--data-dir ../shared/data]

1. tests/fixtures/cls/sms_spam_book.json: the book's data steps on sms_spam/SMSSpamCollection,
   exactly as ch06's gpt_class_finetune.py runs them (pd.read_csv(sep="\\t", header=None),
   create_balanced_dataset, random_split with numpy's legacy RandomState(123) through pandas'
   sample): row and label counts, a hash of the parsed rows, the balanced rows and the three
   splits as 0-based record numbers of the parsed file, and hashes of the train.csv,
   validation.csv and test.csv bytes that `to_csv(index=None)` writes (sha256, and FNV-1a 64 for
   the C++ test, which needs no crypto library for it).
2. tests/fixtures/cls/csv_cases.json: small delimited texts with what pandas' read_csv (C engine,
   header=None, dtype=str, keep_default_na=False, default quoting) makes of them, or that it fails.
3. tests/fixtures/cls/<name>.safetensors: the book's GPTModel with its output head replaced by
   nn.Linear(emb_dim, n_classes) (with bias, under torch.manual_seed(123) as the book), frozen as
   the book (every parameter, then the trainable part thawed), the cross-entropy of the pooled
   position's logits (the last token as the book; first or mean as its exercises), the gradients
   of the trainable parameters, and the parameters after three AdamW steps. float64 reference from
   the float32 weights, plus the float32 PyTorch results. Tensors:
     param.<our name>, in.tokens [B,T], in.labels [B], ref.logits [B,n], ref.loss,
     ref.grad.<trainable name>, ref.after3.<trainable name>, torch32.logits, torch32.loss,
     torch32.grad.<trainable name>; metadata: config, optimizer, B, T, pooling, trainable (JSON list).
"""
import argparse
import hashlib
import io
import json
import os
import sys

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "cls")


def sha256(data):
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode("utf-8")).hexdigest()


def fnv1a64(data):
    """FNV-1a, 64 bits, as hex: what the C++ test recomputes without a crypto library."""
    h = 0xCBF29CE484222325
    for b in data if isinstance(data, bytes) else data.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


# ----------------------------------------------------------------------------------------------
# 1. The book's data steps (ch06/01_main-chapter-code/gpt_class_finetune.py, verbatim logic)

def create_balanced_dataset(df):
    num_spam = df[df["Label"] == "spam"].shape[0]
    ham_subset = df[df["Label"] == "ham"].sample(num_spam, random_state=123)
    return pd.concat([ham_subset, df[df["Label"] == "spam"]])


def random_split(df, train_frac, validation_frac):
    df = df.sample(frac=1, random_state=123)  # the book then calls reset_index(drop=True)
    train_end = int(len(df) * train_frac)
    validation_end = train_end + int(len(df) * validation_frac)
    return df[:train_end], df[train_end:validation_end], df[validation_end:]


def sms_fixture(data_dir):
    path = os.path.join(data_dir, "sms_spam", "SMSSpamCollection")
    raw = open(path, "rb").read()
    df = pd.read_csv(path, sep="\t", header=None, names=["Label", "Text"])
    records = "".join(f"{label}\t{text}\n" for label, text in zip(df["Label"], df["Text"]))
    balanced = create_balanced_dataset(df)
    balanced_rows = [int(i) for i in balanced.index]
    balanced = balanced.copy()
    balanced["Label"] = balanced["Label"].map({"ham": 0, "spam": 1})
    train, val, test = random_split(balanced, 0.7, 0.1)
    out = {
        "generator": "tests/tools/gen_cls_fixtures.py",
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "file": "sms_spam/SMSSpamCollection",
        "file_sha256": sha256(raw),
        "rows": len(df),
        "label_counts": {k: int(v) for k, v in df["Label"].value_counts().items()},
        # label + "\t" + text + "\n" for every parsed row, in file order
        "records_sha256": sha256(records),
        "records_fnv1a64": fnv1a64(records),
        "balanced_rows": balanced_rows,
        "splits": {},
    }
    for name, part in (("train", train), ("validation", val), ("test", test)):
        part = part.reset_index(drop=False)
        rows = [int(i) for i in part["index"]]
        book_csv = part.drop(columns="index").to_csv(index=None)
        out["splits"][name] = {"rows": rows, "count": len(rows), "csv_sha256": sha256(book_csv),
                               "csv_fnv1a64": fnv1a64(book_csv)}
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "sms_spam_book.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"sms_spam_book.json: {len(df)} rows {out['label_counts']}, balanced {len(balanced_rows)}, "
          f"splits {[out['splits'][k]['count'] for k in out['splits']]}")


# ----------------------------------------------------------------------------------------------
# 2. How pandas reads delimited text

CSV_CASES = [
    ("plain", "\t", "ham\tHello there\nspam\tWIN now\n"),
    ("no_final_newline", "\t", "a\tb\nc\td"),
    ("blank_lines_skipped", "\t", "a\tb\n\n\nc\td\n\n"),
    ("space_only_line_skipped", "\t", "a\tb\n   \nc\td\n"),
    ("delimiter_only_line_is_a_row", "\t", "a\tb\n\t\nc\td\n"),
    ("spaces_then_delimiter_is_a_row", "\t", "a\tb\n  \t\nc\td\n"),
    ("crlf", "\t", "a\tb\r\nc\td\r\n"),
    ("cr_only", "\t", "a\tb\rc\td\r"),
    ("quote_inside_unquoted_field_is_literal", "\t", 'a\tsay "hi" ok\n'),
    ("space_before_quote_is_literal", "\t", 'a\t "hi"\n'),
    ("quoted_field_stripped", "\t", 'a\t"quoted text"\n'),
    ("text_after_closing_quote_appended", "\t", 'a\t"Keep-in-touch" gdeve..\n'),
    ("doubled_quotes", "\t", 'a\t"he said ""x"""\n'),
    ("quoted_field_spans_lines", "\t", 'a\t"line 1\nline 2\r\nline 3"\nb\tc\n'),
    ("unclosed_quote_merges_lines_until_the_next_quote", "\t",
     'ham\t"Keep ur problems\nham\tYeah\nham\t"HI BABE"\nspam\tWin\n'),
    ("empty_quoted_field", "\t", 'a\t""\nb\tc\n'),
    ("quoted_delimiter", "\t", '"a\tb"\tc\n'),
    ("leading_and_trailing_spaces_kept", "\t", "a\t  b  \n"),
    ("leading_space_line", "\t", " a\tb\n"),
    ("utf8_bom_dropped", "\t", "\ufeffa\tb\n"),
    ("utf8_text", "\t", "ham\tAiya we discuss later lar... Pick \u00fc up at 4 is it?\n"),
    ("na_strings_kept_as_text", "\t", "a\tNA\nb\tnull\n"),
    ("leading_empty_field", "\t", "\ta\n"),
    ("comma_csv_minimal_quoting", ",", 'Label,Text\n0,"Hi, there"\n1,"He said ""x"""\n1,"two\nlines"\n'),
    ("comma_tab_is_whitespace", ",", "a,b\n \t \nc,d\n"),
    ("eof_inside_quotes_fails", "\t", 'a\t"unclosed\nb\tc\n'),
    ("too_many_fields_fails", "\t", "a\tb\nc\td\te\n"),
    ("too_few_fields_padded", "\t", "a\tb\nc\n"),
]


def csv_fixture():
    cases = []
    for name, sep, text in CSV_CASES:
        entry = {"name": name, "sep": sep, "text": text}
        try:
            df = pd.read_csv(io.StringIO(text), sep=sep, header=None, dtype=str, keep_default_na=False)
            entry["rows"] = df.values.tolist()
        except Exception as e:  # noqa: BLE001 - any failure is what we record
            entry["error"] = str(e).strip()
        cases.append(entry)
    with open(os.path.join(OUT, "csv_cases.json"), "w") as f:
        json.dump({"generator": "tests/tools/gen_cls_fixtures.py", "pandas": pd.__version__, "cases": cases}, f,
                  indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"csv_cases.json: {len(cases)} cases")


# ----------------------------------------------------------------------------------------------
# 3. PyTorch parity of the classifier

def parity_fixtures():
    import torch
    from safetensors.torch import save_file
    sys.path.insert(0, HERE)
    from gen_gpt2_parity import GPTModel, our_names

    def names_with_head(model, cfg):
        pairs = [p for p in our_names(model, cfg) if p[0] != "head.weight"]
        return pairs + [("head.weight", lambda: model.out_head.weight), ("head.bias", lambda: model.out_head.bias)]

    def build(cfg, n_classes, trainable, dtype):
        torch.manual_seed(123)
        model = GPTModel(cfg)
        for p in model.parameters():  # the book's freezing
            p.requires_grad = False
        torch.manual_seed(123)
        model.out_head = torch.nn.Linear(cfg["emb_dim"], n_classes)
        if trainable == "all":
            for p in model.parameters():
                p.requires_grad = True
        elif trainable.startswith("last-"):
            k = int(trainable.split("-")[1])
            for block in list(model.trf_blocks)[-k:]:
                for p in block.parameters():
                    p.requires_grad = True
            for p in model.final_norm.parameters():
                p.requires_grad = True
        elif trainable != "head":
            raise ValueError(trainable)
        return model.to(dtype)

    def pooled_logits(model, tokens, pooling):
        out = model(tokens)  # [B, T, n]
        if pooling == "last":
            return out[:, -1, :]  # the book: model(input_batch)[:, -1, :]
        if pooling == "first":
            return out[:, 0, :]
        return out.mean(dim=1)  # the exercise's average over every position

    def trainable_names(model, cfg):
        ours = dict(names_with_head(model, cfg))
        torch_params = {id(p): p.requires_grad for p in model.parameters()}
        names = []
        for name, get in ours.items():
            t = get()
            # fused qkv: trainable when its parts are
            if name.endswith("attn.qkv.weight") or name.endswith("attn.qkv.bias"):
                blk = model.trf_blocks[int(name.split(".")[1])]
                part = blk.att.W_query.weight if name.endswith("weight") else blk.att.W_query.bias
                if part.requires_grad:
                    names.append(name)
            elif torch_params.get(id(t), False):
                names.append(name)
        return names

    def run(cfg, n_classes, trainable, pooling, dtype, tokens, labels, opt):
        model = build(cfg, n_classes, trainable, dtype)
        model.train()  # drop_rate 0: train mode equals eval mode
        logits = pooled_logits(model, tokens, pooling)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        names = names_with_head(model, cfg)
        train_names = trainable_names(model, cfg)
        initial = {n: f().detach().clone() for n, f in names}

        # Gradients of our (possibly fused) names: swap .data for .grad and read through the mapping.
        grads = {}
        saved = {n: p.grad for n, p in model.named_parameters()}
        originals = {n: p.data for n, p in model.named_parameters()}
        for n, p in model.named_parameters():
            p.data = saved[n] if saved[n] is not None else torch.zeros_like(p.data)
        for n, f in names:
            if n in train_names:
                grads[n] = f().detach().clone()
        for n, p in model.named_parameters():
            p.data = originals[n]
        out = {"logits": logits.detach().clone(), "loss": loss.detach().reshape(1), "grads": grads,
               "initial": initial, "trainable": train_names}
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=opt["lr"],
                                      weight_decay=opt["weight_decay"], betas=(opt["beta1"], opt["beta2"]),
                                      eps=opt["eps"])
        optimizer.step()
        for _ in range(2):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(pooled_logits(model, tokens, pooling), labels)
            loss.backward()
            optimizer.step()
        out["after3"] = {n: f().detach().clone() for n, f in names}
        return out

    def make(name, cfg, n_classes, trainable, pooling, B, T, seed, opt):
        g = torch.Generator().manual_seed(seed)
        pad = cfg["vocab_size"] - 1  # the pad id plays 50256's part in this small vocabulary
        tokens = torch.full((B, T), pad, dtype=torch.long)
        lengths = torch.randint(1, T + 1, (B,), generator=g)
        lengths[0] = T  # one text of the full length
        for b in range(B):
            tokens[b, : lengths[b]] = torch.randint(0, pad, (int(lengths[b]),), generator=g)
        labels = torch.randint(0, n_classes, (B,), generator=g)
        ref = run(cfg, n_classes, trainable, pooling, torch.float64, tokens, labels, opt)
        t32 = run(cfg, n_classes, trainable, pooling, torch.float32, tokens, labels, opt)
        tensors = {"param." + n: v.float().contiguous() for n, v in t32["initial"].items()}
        tensors["in.tokens"] = tokens.float()
        tensors["in.labels"] = labels.float()
        tensors["ref.logits"] = ref["logits"].float()
        tensors["ref.loss"] = ref["loss"].float()
        tensors["torch32.logits"] = t32["logits"].float()
        tensors["torch32.loss"] = t32["loss"].float()
        for n in ref["grads"]:
            tensors["ref.grad." + n] = ref["grads"][n].float().contiguous()
            tensors["torch32.grad." + n] = t32["grads"][n].float().contiguous()
        for n in ref["trainable"]:  # frozen parameters must stay equal to param.<name>
            tensors["ref.after3." + n] = ref["after3"][n].float().contiguous()
        assert all(torch.equal(ref["after3"][m], ref["initial"][m]) for m in ref["after3"] if m not in ref["trainable"])
        meta = {"config": json.dumps(cfg), "optimizer": json.dumps(opt), "B": str(B), "T": str(T),
                "n_classes": str(n_classes), "pooling": pooling, "trainable_mode": trainable,
                "trainable": json.dumps(ref["trainable"]), "generator": "tests/tools/gen_cls_fixtures.py",
                "torch": torch.__version__}
        path = os.path.join(OUT, name + ".safetensors")
        save_file(tensors, path, metadata=meta)
        os.chmod(path, 0o644)
        print(f"{path}: loss ref {ref['loss'].item():.10f} torch32 {t32['loss'].item():.10f}, "
              f"{len(ref['trainable'])} trainable tensors, {os.path.getsize(path) / 1024:.0f} KiB")

    torch.set_num_threads(1)
    opt = {"lr": 1e-3, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    # The book's setting: last block + final norm + a new 2-class head, last-token loss.
    make("cls_book_last_block", {"vocab_size": 61, "context_length": 32, "emb_dim": 64, "n_heads": 4, "n_layers": 3,
                                 "drop_rate": 0.0, "qkv_bias": True},
         n_classes=2, trainable="last-1", pooling="last", B=4, T=14, seed=11, opt=opt)
    # Exercise variants: every parameter with mean pooling and 3 classes; the head alone on the first token.
    make("cls_all_mean", {"vocab_size": 37, "context_length": 16, "emb_dim": 32, "n_heads": 2, "n_layers": 2,
                          "drop_rate": 0.0, "qkv_bias": False},
         n_classes=3, trainable="all", pooling="mean", B=3, T=11, seed=12, opt=opt)
    make("cls_head_first", {"vocab_size": 37, "context_length": 16, "emb_dim": 32, "n_heads": 2, "n_layers": 2,
                            "drop_rate": 0.0, "qkv_bias": False},
         n_classes=2, trainable="head", pooling="first", B=3, T=9, seed=13, opt=opt)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default=os.path.join(HERE, "..", "..", "..", "shared", "data"))
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    sms_fixture(args.data_dir)
    csv_fixture()
    parity_fixtures()
