#!/usr/bin/env python3
"""Write the Hugging Face tokenizer fixtures in tests/fixtures/hf_tokenizer/ from `tokenizers`
(run by developers with `pip install tokenizers`; never by CI or the build), for three files of the
data dir: tokenizers/llama3/tokenizer.json ("llama3", ignore_merges true), its Llama 3.2 Vision
sibling tokenizers/llama3/llama-3.2-90b-vision/tokenizer.json ("llama3_vision", ignore_merges
false) and tokenizers/qwen/tokenizer.json ("qwen3", NFC, non-special added tokens). Every encoding
is tokenizers' `encode(text, add_special_tokens=False)` in two modes: "special" (the default:
special tokens in the text become their ids; gptrain's allow_special) and "ordinary"
(`encode_special_tokens = True`: they are plain text).

  data_files.json     every text file under the data dir: size, sha256, and per tokenizer and mode
                      the token count and sha256 of the ids
  data_texts.json     per-text encodings of the SMS messages and of every string in the JSON data
                      sets (the collections of tests/fixtures/tokenizer/tiktoken_data_texts.json)
  adversarial.jsonl   the adversarial corpus of tests/fixtures/tokenizer/adversarial.jsonl plus
                      cases for the Llama 3 / Qwen2 pre-tokenizer, added tokens and NFC; per case
                      the ids of each tokenizer ("ordinary" only where it differs, llama3_vision
                      only where it differs from llama3) and the Split pieces (byte lengths) of
                      the Llama 3 pattern (and Qwen2's where they differ); over 48 ids are written
                      as "count:sha256_16". Bytes that are not
                      UTF-8 ("hex") are encoded as bytes.decode("utf-8", errors="replace"), gptrain's
                      rule for a tokenizer.json
  nfc_blocks.json     tokenizers' NFC of every code point in five contexts, hashed per block
  llamacpp_vision.json  llama3_vision's ids for llama.cpp's llama-bpe vectors (it differs there)
  tiny_tokenizer.json, tiny_gpt2_tokenizer.json, tiny_cases.jsonl
                      two small made-up tokenizer.json files (NFC + Qwen2 split with lstrip,
                      rstrip and normalized added tokens, merges as pairs; GPT-2's ByteLevel with a
                      BOS template, merges as strings) and tokenizers' ids on a list of texts

Hashes: sha256 over the ids as little-endian uint32; for a list of texts, over (uint32 count,
ids...) per text, as tests/tools/gen_tokenizer_fixtures.py does for tiktoken.

    python3 tests/tools/gen_hf_tokenizer_fixtures.py [--data-dir ../shared/data] [--jobs 2]
"""
import argparse
import hashlib
import json
import multiprocessing
import os
import pathlib
import random
import struct
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import tokenizers  # noqa: E402
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "hf_tokenizer"
OLD = ROOT / "tests" / "fixtures" / "tokenizer"
TOKENIZERS = {
    "llama3": "tokenizers/llama3/tokenizer.json",
    "llama3_vision": "tokenizers/llama3/llama-3.2-90b-vision/tokenizer.json",
    "qwen3": "tokenizers/qwen/tokenizer.json",
}
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = LLAMA3_PATTERN.replace(r"\p{N}{1,3}", r"\p{N}")
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
NFC_TEMPLATES = ["{c}", "a{c}", "{c}\u0301", "a\u0316{c}", "a{c}\u0316"]  # tests/tokenizer/hf_tokenizer_test.cpp
NFC_BLOCK = 4096

_loaded = {}


def load(data_dir, name):
    if name not in _loaded:
        _loaded[name] = Tokenizer.from_file(str(data_dir / TOKENIZERS[name]))
    return _loaded[name]


def encode(tok, text, special):
    tok.encode_special_tokens = not special
    return tok.encode(text, add_special_tokens=False).ids


def ids_bytes(ids):
    return struct.pack(f"<{len(ids)}I", *ids)


def sha256_ids(ids):
    return hashlib.sha256(ids_bytes(ids)).hexdigest()


# ----------------------------------------------------------------------------------------------
# Data files and texts

def text_files(data_dir):
    out = []
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            continue  # binary (safetensors)
        out.append(path)
    return out


def encode_file(job):
    data_dir, name, path = job
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    tok = load(data_dir, name)
    result = {}
    for mode, special in (("special", True), ("ordinary", False)):
        ids = encode(tok, text, special)
        result[mode] = {"count": len(ids), "ids_sha256": sha256_ids(ids)}
    print(f"  {name} {path.relative_to(data_dir).as_posix()}: {result['special']['count']} tokens", file=sys.stderr)
    return name, path, result


def data_files(data_dir, jobs):
    files = text_files(data_dir)
    rows = {p: {"path": p.relative_to(data_dir).as_posix(), "size": p.stat().st_size,
                "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in files}
    work = [(data_dir, name, p) for name in TOKENIZERS for p in files]
    work.sort(key=lambda job: -job[2].stat().st_size)  # big files first: the pool ends together
    with multiprocessing.Pool(jobs) as pool:
        for name, path, result in pool.imap_unordered(encode_file, work):
            rows[path][name] = result
    return [rows[p] for p in files]


def json_strings(value, out):
    """Every string in a JSON document, in document order (object values in file order)."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for v in value:
            json_strings(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            json_strings(v, out)
    return out


def text_collection(data_dir, name, source, texts, raw):
    row = {"name": name, "source": source, "source_sha256": hashlib.sha256(raw).hexdigest(), "texts": len(texts)}
    for tok_name in TOKENIZERS:
        tok = load(data_dir, tok_name)
        for mode, special in (("special", True), ("ordinary", False)):
            stream, blocks, block, total = hashlib.sha256(), [], hashlib.sha256(), 0
            for i, text in enumerate(texts):
                ids = encode(tok, text, special)
                record = struct.pack("<I", len(ids)) + ids_bytes(ids)
                stream.update(record)
                block.update(record)
                total += len(ids)
                if (i + 1) % 256 == 0 or i + 1 == len(texts):
                    blocks.append(block.hexdigest()[:16])
                    block = hashlib.sha256()
            row.setdefault(tok_name, {})[mode] = {"tokens": total, "ids_sha256": stream.hexdigest(),
                                                  "block_sha256_16": blocks}
    print(f"  {name}: {len(texts)} texts", file=sys.stderr)
    return row


def data_texts(data_dir):
    collections = []
    sms = data_dir / "sms_spam" / "SMSSpamCollection"
    if sms.exists():
        raw = sms.read_bytes()
        texts = [line.split("\t", 1)[1] for line in raw.decode("utf-8").split("\n") if line]
        collections.append(text_collection(data_dir, "sms_spam", "sms_spam/SMSSpamCollection", texts, raw))
    for path in sorted(data_dir.rglob("*.json")):
        if path.stat().st_size > 1 << 20:
            continue  # the tokenizer.json files themselves: data_files.json has them whole
        raw = path.read_bytes()
        texts = json_strings(json.loads(raw), [])
        if texts:
            rel = path.relative_to(data_dir).as_posix()
            collections.append(text_collection(data_dir, rel, rel, texts, raw))
    return collections


# ----------------------------------------------------------------------------------------------
# Adversarial corpus

LLAMA_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                  "<|reserved_special_token_0|>", "<|reserved_special_token_250|>", "<|image|>", "<|python_tag|>"]
QWEN_ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_pad|>", "<think>", "</think>", "<tool_call>",
              "</tool_call>", "<|fim_prefix|>", "<|file_sep|>", "<tool_response>"]
NEAR_MISSES = ["<|", "|>", "<|begin_of_text", "<|eot_id", "<think", "think>", "<|im_start", "<<|eot_id|>>",
               "<|im_start|<|im_end|>", "<thi<think>nk>", "<|reserved_special_token_251|>"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
WORDS = ["hello", "World", "don", "DON", "I", "it", "Über", "naïve", "straße", "ĳssel", "Ελλάδα", "Москва", "日本語",
         "한국어", "ภาษาไทย", "हिन्दी", "x", "ſ", "ǅ"]
PUNCT = ["!", "?!", "...", "—", "«", "»", "(", ")", "[", "]", "{", "}", "#", "$", "%", "&", "*", "+", "-", "/", ":",
         ";", "<", ">", "=", "@", "\\", "^", "_", "`", "|", "~", "\"", "'", "’"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", " \n", "\n ", " \r\n ", "\u00a0", "\u3000", "\u0085",
          "\u2028", "\u000b", "\u000c", "\u001c", "\u180e", "\u200b"]
DIGITS = ["1", "12", "123", "1234", "12345", "123456789", "٣", "٣٣٣٣", "۱۲", "०१२३", "１２３４", "Ⅻ", "½", "²³", "①②③④"]
NFC_CASES = ["e\u0301", "Cafe\u0301", "a\u0308\u0304", "\u1e9b\u0323", "\u0041\u030a", "\u212b", "\u2126", "\uac00",
             "\u1100\u1161\u11a8", "a\u0316\u0301", "a\u0301\u0316", "a\u0316\u0d3b", "a\u0d3b\u0316", "\u0d3b",
             "x\u0898\u0316", "\U00011442\u0316", "\u0344", "\u0958", "\ufb2c", "ﬁ", "\u00c5\u0301", "e\u0301\u0301"]


def handmade():
    cases = ["", " ", "a", "'", "'s", "'S", "'LL", "'Ll", "'lL", "'Re", "'VE", "'M", "'D", "'T", "'ſ", "'ſx", "'ﬆ",
             "'ß", "x'S", "X'S y", "I'M", "DON'T", "don'tcha", "'sup", "'hello", "''s", "'s'S'LL", "' s", "'\n",
             "3", "33", "333", "3333", "33333", "333333333", "1,000,000", "3.14159", "x123y", "abc123def456",
             "٣٣٣٣٣", "１２３４５", "Ⅻ½²", "①②③④⑤", "hello world", "hello  world", "hello   world",
             "hello\tworld", "hello \tworld", "trailing ", "trailing  ", "trailing\t", " leading", "  leading",
             "\tleading", "\nleading", "\n\nleading", " \n\nx", "a\n\n\nb", "a \n b", "a\r\nb", "a\r\n\r\nb",
             "a\n \n b", "a \n\n  b", "!!!", " !!!", " !!!\n", "!!!\n\n", "!!!\r\n x", "?!\n\nHello", " ?x",
             " !abc", "!abc", "(abc)", "«abc»", "—abc", "#include <stdio.h>", "x = y + z;", "a.b.c", "e-mail",
             "\u00a0word", "\u3000word", "\u0085word", "\u2028word", "\u000bword", "\u001cword", "\u180eword",
             "\u200bword", "word\u00a0", "word\u0085", "x\u0085\u0085y", "x\u001c\u001cy", " \u0085 ", "\u0085\n",
             "\r\r\r", "\n\r\n\r", " \r \n ", "   \n   ", "\t\t\n\t\t", "\u3000\n", "x\n\u3000y", "😀😀", " 😀",
             "👨‍👩‍👧‍👦 family", "a\u0301b", "\u0301a", " \u0301", "Cửa Việt", "Việt", " Việt", "ĳ", "ǅǆ", "ﬁ ﬂ"]
    cases += [" " * 300, " " * 300 + "x", "\n" * 200, " \n" * 100, "\t" * 150 + "x", "9" * 200, "a" * 300,
              "é" * 100, "!" * 200 + "\n" * 3, "ab" * 120, "😀" * 40]
    for c in CONTRACTIONS:
        for form in dict.fromkeys([c, c.upper(), c.capitalize(), c[0] + c[1:].capitalize()]):
            cases += [f"word{form} next", f" {form}", f"{form}", f"x{form}y", f"!{form}", f"{form}{form}"]
    cases += LLAMA_SPECIALS + QWEN_ADDED + NEAR_MISSES
    cases += ["a" + t + "b" for t in LLAMA_SPECIALS[:5] + QWEN_ADDED]
    cases += [" " + t + " " for t in LLAMA_SPECIALS[:3] + QWEN_ADDED[:6]]
    cases += ["".join(LLAMA_SPECIALS), "".join(QWEN_ADDED), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
              "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
              "<think>\n\n</think>\n\n", "text<think>reason</think>answer", "<tool_call>{\"a\": 1}</tool_call>"]
    cases += NFC_CASES + [w + " " + n for w, n in zip(WORDS, NFC_CASES)]
    return cases


def soup(rng, atoms):
    pools = [WORDS, PUNCT, SPACES, DIGITS, CONTRACTIONS, LLAMA_SPECIALS, QWEN_ADDED, NEAR_MISSES, NFC_CASES]
    weights = [30, 15, 20, 10, 8, 3, 4, 3, 7]
    return "".join(rng.choice(rng.choices(pools, weights)[0]) for _ in range(atoms))


INVALID = [b"\x80", b"\xbf", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf5", b"\xff",
           b"\xe2\x82", b"\xf0\x9f\x98", b"\xc3", b"\xff\xfe"]


def adversarial_cases(rng):
    cases = []
    for line in (OLD / "adversarial.jsonl").read_text(encoding="utf-8").split("\n"):
        if not line:
            continue
        c = json.loads(line)
        if "hex" in c:
            cases.append({"hex": c["hex"]})
        elif not cases or cases[-1].get("text") != c["text"]:  # tiktoken's file lists some texts twice
            cases.append({"text": c["text"]})
    cases += [{"text": t} for t in handmade()]
    for atoms, count in ((4, 60), (12, 40), (40, 15)):
        cases += [{"text": soup(rng, atoms)} for _ in range(count)]
    for _ in range(40):  # invalid UTF-8 inside the new cases too
        raw = soup(rng, 6).encode()
        at = rng.randint(0, len(raw))
        data = raw[:at] + rng.choice(INVALID) + raw[at:]
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            cases.append({"hex": data.hex()})
    seen, unique = set(), []
    for c in cases:
        key = c.get("text", "") + "\0" + c.get("hex", "")
        if key not in seen:
            seen.add(key)
            unique.append(c)
    return unique


def short(ids):
    """Up to 48 ids as they are, more as "count:first 16 hex digits of sha256_ids"."""
    return ids if len(ids) <= 48 else f"{len(ids)}:{sha256_ids(ids)[:16]}"


def adversarial(data_dir, rng):
    llama_split = pre_tokenizers.Split(Regex(LLAMA3_PATTERN), "isolated")
    qwen_split = pre_tokenizers.Split(Regex(QWEN2_PATTERN), "isolated")
    out = []
    for case in adversarial_cases(rng):
        text = bytes.fromhex(case["hex"]).decode("utf-8", errors="replace") if "hex" in case else case["text"]
        row = dict(case)
        # To keep the file small, what equals something already written is left out: "ordinary"
        # when it equals "special", llama3_vision when it equals llama3, qwen2's pieces when they
        # equal llama3's. Pieces are byte lengths, comma-separated.
        for name in TOKENIZERS:
            tok = load(data_dir, name)
            special, ordinary = encode(tok, text, True), encode(tok, text, False)
            ids = {"special": short(special)} if special == ordinary else {"special": short(special),
                                                                          "ordinary": short(ordinary)}
            if name != "llama3_vision" or ids != row["llama3"]:
                row[name] = ids
        llama = ",".join(str(len(p.encode())) for p, _ in llama_split.pre_tokenize_str(text))
        qwen = ",".join(str(len(p.encode())) for p, _ in qwen_split.pre_tokenize_str(text))
        row["pieces_llama3"] = llama
        if qwen != llama:
            row["pieces_qwen2"] = qwen
        out.append(row)
    print(f"  adversarial: {len(out)} cases, {sum('hex' in c for c in out)} of them invalid UTF-8", file=sys.stderr)
    return out


# ----------------------------------------------------------------------------------------------
# NFC of every code point

def nfc_blocks():
    nfc = normalizers.NFC()
    code_points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    blocks = []
    for start in range(0, len(code_points), NFC_BLOCK):
        chunk = code_points[start:start + NFC_BLOCK]
        # One string per block, the contexts separated by '\n' (a starter that never combines, so
        # it splits NFC into independent parts: each context is normalized on its own).
        text = "\n".join(t.format(c=chr(c)) for c in chunk for t in NFC_TEMPLATES)
        blocks.append({"first": f"{chunk[0]:X}", "last": f"{chunk[-1]:X}",
                       "sha256_16": hashlib.sha256(nfc.normalize_str(text).encode()).hexdigest()[:16]})
    print(f"  nfc: {len(blocks)} blocks", file=sys.stderr)
    return {"templates": NFC_TEMPLATES, "block": NFC_BLOCK, "joined_by": "\n", "blocks": blocks}


# ----------------------------------------------------------------------------------------------
# llama.cpp's vectors through the Llama 3.2 Vision file

def llamacpp_vision(data_dir):
    vectors = data_dir / "tokenizers" / "llamacpp-vectors"
    texts = (vectors / "ggml-vocab-llama-bpe.gguf.inp").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
    texts = texts[:-1]
    tok = load(data_dir, "llama3_vision")
    return {"source": "tokenizers/llamacpp-vectors/ggml-vocab-llama-bpe.gguf.inp",
            "source_sha256": hashlib.sha256((vectors / "ggml-vocab-llama-bpe.gguf.inp").read_bytes()).hexdigest(),
            "ids": [encode(tok, t, True) for t in texts]}


# ----------------------------------------------------------------------------------------------
# Two made-up tokenizers for what the real files do not use

def byte_alphabet():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def spelled(text):
    alphabet = byte_alphabet()
    return "".join(alphabet[b] for b in text.encode())


def tiny_tokenizer(gpt2):
    alphabet = byte_alphabet()
    vocab = {alphabet[b]: b for b in range(256)}
    merges = []
    for left, right in [("h", "e"), ("l", "l"), ("he", "ll"), (" ", "t"), (" t", "he"), ("C", "a"), ("Ca", "f"),
                        ("a", "b"), ("ab", "ab")]:
        a, b = spelled(left), spelled(right)
        for part in (a, b):
            if part not in vocab:
                vocab[part] = len(vocab)
        vocab.setdefault(a + b, len(vocab))
        merges.append(f"{a} {b}" if gpt2 else [a, b])
    # é is two bytes: its merge makes the token that NFC turns "e\u0301" into
    a, b = spelled("\u00e9")[0], spelled("\u00e9")[1]
    vocab.setdefault(a + b, len(vocab))
    merges.append(f"{a} {b}" if gpt2 else [a, b])
    n = len(vocab)

    def added(i, content, special, lstrip=False, rstrip=False, normalized=False):
        return {"id": n + i, "content": content, "single_word": False, "lstrip": lstrip, "rstrip": rstrip,
                "normalized": normalized, "special": special}

    if gpt2:
        added_tokens = [added(0, "<|endoftext|>", True), added(1, "<s>", True), added(2, "<mask>", True, lstrip=True),
                        added(3, "[R]", True, rstrip=True), added(4, "<extra>", False)]
        pre = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
        normalizer = None
        post = {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                                         {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [n + 1], "tokens": ["<s>"]}}}
    else:
        added_tokens = [added(0, "<|endoftext|>", True), added(1, "<mask>", True, lstrip=True),
                        added(2, "[R]", True, rstrip=True), added(3, "<L R>", False, lstrip=True, rstrip=True),
                        added(4, "<think>", False), added(5, "Caf\u00e9", False, normalized=True),
                        added(6, "e\u0301!", True, normalized=True), added(7, "<sp>", True, normalized=True)]
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
        normalizer = {"type": "NFC"}
        post = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added_tokens,
            "normalizer": normalizer, "pre_tokenizer": pre, "post_processor": post,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "" if not gpt2 else None,
                      "end_of_word_suffix": "" if not gpt2 else None, "fuse_unk": False, "byte_fallback": False,
                      "ignore_merges": False, "vocab": vocab, "merges": merges}}


TINY_TEXTS = ["", "hello", "hello the", " the hello", "Cafe\u0301", "Caf\u00e9", "Cafe\u0301 Caf\u00e9!", "e\u0301!",
              "e\u0301 !", "x <mask>y", "x   <mask> y", "<mask>", "   <mask>", "a[R]   b", "[R]\n\nz", "[R]",
              "q <L R>  r", "<L R>", "  <L R>  ", "<think>x</think>", "ab<|endoftext|>ab", "abab abab",
              "<s>hello</s>", "<sp> <sp>", "<extra>x<extra>", "x<mask>[R]y", " [R] <mask> ", "\u00a0<mask>\u3000",
              "é\u0301", "<mask><mask>", "[R][R]  x", "<|endoftext|>[R] <mask>"]


def tiny(out_dir):
    rows = []
    for name, gpt2 in (("tiny_tokenizer.json", False), ("tiny_gpt2_tokenizer.json", True)):
        path = out_dir / name
        path.write_text(json.dumps(tiny_tokenizer(gpt2), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        tok = Tokenizer.from_file(str(path))
        for text in TINY_TEXTS:
            row = {"file": name, "text": text, "special": encode(tok, text, True), "ordinary": encode(tok, text, False)}
            if gpt2:
                tok.encode_special_tokens = False
                row["with_bos"] = tok.encode(text, add_special_tokens=True).ids
            rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--jobs", type=int, default=2, help="processes for the data files")
    parser.add_argument("--seed", type=int, default=20250514)
    parser.add_argument("--skip-data-files", action="store_true", help="keep data_files.json (the slow part)")
    args = parser.parse_args()
    data_dir = pathlib.Path(args.data_dir).resolve()
    for name, rel in TOKENIZERS.items():
        if not (data_dir / rel).exists():
            sys.exit(f"{data_dir / rel} not found: {name} is one of the three tokenizers the fixtures are for")
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {"generator": "tests/tools/gen_hf_tokenizer_fixtures.py", "tokenizers_version": tokenizers.__version__,
            "tokenizers": TOKENIZERS,
            "encode": "encode(text, add_special_tokens=False); special: encode_special_tokens=False, ordinary: True",
            "hash": "sha256 of little-endian uint32 ids; per text (uint32 count, ids...) for collections"}
    print("tiny tokenizers:", file=sys.stderr)
    with open(OUT / "tiny_cases.jsonl", "w", encoding="utf-8") as f:
        for row in tiny(OUT):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print("llama.cpp vectors:", file=sys.stderr)
    (OUT / "llamacpp_vision.json").write_text(json.dumps({**meta, **llamacpp_vision(data_dir)}) + "\n")
    print("adversarial corpus:", file=sys.stderr)
    with open(OUT / "adversarial.jsonl", "w", encoding="utf-8") as f:
        for row in adversarial(data_dir, random.Random(args.seed)):
            f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    print("nfc:", file=sys.stderr)
    (OUT / "nfc_blocks.json").write_text(json.dumps({**meta, **nfc_blocks()}, indent=1) + "\n")
    print("data texts:", file=sys.stderr)
    (OUT / "data_texts.json").write_text(json.dumps({**meta, "collections": data_texts(data_dir)}, indent=1) + "\n")
    if not args.skip_data_files:
        print("data files:", file=sys.stderr)
        (OUT / "data_files.json").write_text(json.dumps({**meta, "files": data_files(data_dir, args.jobs)}, indent=1) + "\n")
    print("wrote", OUT, file=sys.stderr)


if __name__ == "__main__":
    main()
