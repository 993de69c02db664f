#!/usr/bin/env python3
"""Write the tokenizer fixtures in tests/fixtures/tokenizer/ from tiktoken (run by developers with
`pip install tiktoken`; never by CI or the build):

  tiktoken_data_files.json   every text file under the data dir: size, sha256, and for encode_ordinary
                             and encode(allowed_special="all") the token count and sha256 of the ids
  tiktoken_data_texts.json   per-text encodings of the SMS messages and of every string in the JSON
                             data sets (instruction data etc.): counts and hashes, per 256-text block
  adversarial.jsonl          a generated adversarial corpus with tiktoken's ids (small; committed)
  tiktoken_unicode_classes.txt  (--probe-classes, ~4 minutes) tiktoken's own class of every code
                             point, probed through its regex: "first_code_point class" per range

Hashes: sha256 over the ids as little-endian uint32; for a list of texts, over (uint32 count, ids...)
per text. tiktoken is built offline from the local r50k_base.tiktoken (its download URL is not
reachable here); this is OpenAI's "gpt2" encoding exactly.

    python3 tests/tools/gen_tokenizer_fixtures.py [--data-dir ../shared/data] [--probe-classes]
"""
import argparse
import hashlib
import json
import pathlib
import random
import struct
import sys

import tiktoken
import tiktoken.load

PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "tokenizer"
EOT = "<|endoftext|>"


def gpt2_encoding(data_dir):
    ranks = tiktoken.load.load_tiktoken_bpe(str(data_dir / "gpt2_tokenizer" / "r50k_base.tiktoken"))
    return tiktoken.Encoding(name="gpt2", pat_str=PAT, mergeable_ranks=ranks, special_tokens={EOT: 50256})


def ids_bytes(ids):
    return struct.pack(f"<{len(ids)}I", *ids)


def sha256_ids(ids):
    return hashlib.sha256(ids_bytes(ids)).hexdigest()


def encode_bytes_ours(enc, data):
    """Our rule for bytes that are not UTF-8: each valid run plus the invalid run after it is encoded
    as tiktoken's _encode_bytes encodes text ending in invalid bytes; splitting restarts after."""
    ids, pos = [], 0
    while pos < len(data):
        try:
            data[pos:].decode("utf-8")
            ids += enc.encode_ordinary(data[pos:].decode("utf-8"))
            break
        except UnicodeDecodeError as e:
            bad = pos + e.start
        end = bad
        while end < len(data):  # the maximal run of bytes that start no valid character
            if any(_valid_at(data, end, k) for k in (1, 2, 3, 4)):
                break
            end += 1
        ids += enc._encode_bytes(data[pos:end])
        pos = end
    return ids


def _valid_at(data, i, k):
    try:
        data[i:i + k].decode("utf-8")
        return i + k <= len(data)
    except UnicodeDecodeError:
        return False


# ----------------------------------------------------------------------------------------------
# Data files and texts

def data_files(enc, data_dir):
    rows = []
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue  # binary (safetensors)
        ordinary = enc.encode_ordinary(text)
        special = enc.encode(text, allowed_special="all")
        rows.append({"path": path.relative_to(data_dir).as_posix(), "size": len(raw),
                     "sha256": hashlib.sha256(raw).hexdigest(),
                     "ordinary": {"count": len(ordinary), "ids_sha256": sha256_ids(ordinary)},
                     "special": {"count": len(special), "ids_sha256": sha256_ids(special)}})
        print(f"  {rows[-1]['path']}: {len(ordinary)} tokens", file=sys.stderr)
    return rows


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


def text_collection(enc, name, source, texts, raw):
    stream, blocks, block, total = hashlib.sha256(), [], hashlib.sha256(), 0
    for i, text in enumerate(texts):
        ids = enc.encode_ordinary(text)
        record = struct.pack("<I", len(ids)) + ids_bytes(ids)
        stream.update(record)
        block.update(record)
        total += len(ids)
        if (i + 1) % 256 == 0 or i + 1 == len(texts):
            blocks.append(block.hexdigest()[:16])
            block = hashlib.sha256()
    print(f"  {name}: {len(texts)} texts, {total} tokens", file=sys.stderr)
    return {"name": name, "source": source, "source_sha256": hashlib.sha256(raw).hexdigest(),
            "texts": len(texts), "tokens": total, "ids_sha256": stream.hexdigest(), "block_sha256_16": blocks}


def data_texts(enc, data_dir):
    collections = []
    sms = data_dir / "sms_spam" / "SMSSpamCollection"
    if sms.exists():
        raw = sms.read_bytes()
        # One message per line: label TAB text (the text taken verbatim, without the newline).
        texts = [line.split("\t", 1)[1] for line in raw.decode("utf-8").split("\n") if line]
        collections.append(text_collection(enc, "sms_spam", "sms_spam/SMSSpamCollection", texts, raw))
    for path in sorted(data_dir.rglob("*.json")):
        raw = path.read_bytes()
        texts = json_strings(json.loads(raw), [])
        if texts:
            rel = path.relative_to(data_dir).as_posix()
            collections.append(text_collection(enc, rel, rel, texts, raw))
    return collections


# ----------------------------------------------------------------------------------------------
# Adversarial corpus

LATIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
ACCENTED = "éèêëàâäôöûüçñßøåæœÉÈÀÇÑÅØÆŒıİşğżźćńłőűčřšžďťňůĳ"
SCRIPTS = [
    "Ελληνικά κείμενα με τόνους", "Русский текст, ёжик", "עברית עם ניקוד: שָׁלוֹם", "العربية: مرحبا بالعالم",
    "हिन्दी पाठ: नमस्ते दुनिया", "ภาษาไทยไม่มีช่องว่าง", "中文没有空格的句子。", "日本語のテキスト、カタカナとひらがな",
    "한국어 문장입니다", "ქართული ანბანი", "Հայերեն", "ᏣᎳᎩ", "ትግርኛ", "ꦗꦮ", "𐌰𐌱𐌲 Gothic", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙",
    "Tiếng Việt có dấu", "Ǆǅǆ ǈ titlecase", "ʰʲʷ modifier letters", "〆々〇 ideographic",
]
DIGITS = ["0123456789", "٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹", "०१२३४५६७८९", "０１２３４５６７８９", "ⅠⅡⅢⅣⅫ", "²³¹⁴",
          "½¼¾⅓", "①②③", "𝟎𝟏𝟐", "௰௱", "〡〢〣"]
EMOJI = ["😀", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "🇯🇵", "1️⃣", "#️⃣", "❤️", "✋🏿", "🧑🏻‍🤝‍🧑🏿",
         "👁‍🗨", "🫠", "🦀", "☺︎", "🏴󠁧󠁢󠁳󠁣󠁴󠁿"]
COMBINING = ["e\u0301", "a\u0308\u0304", "n\u0303", "Z\u0336\u0327\u0351\u0300\u0352", "\u0301", "o\u20dd",
             "ก\u0e31\u0e49", "क\u094d\u0937", "\u200d", "\u200c", "\ufe0f"]
SPACES = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u000b", "\u000c", "\u00a0", "\u2003", "\u3000", "\u0085",
          "\u2028", "\u2029", "\u1680", "\u202f", "\u205f", "\u2009"]
NOT_SPACES = ["\u200b", "\ufeff", "\u180e", "\u001c", "\u001f", "\u0000", "\u007f"]
PUNCT = list("!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~") + ["’", "‘", "“", "”", "—", "…", "«", "»", "¿", "¡", "€", "£", "©"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
RARE = ["\U0001e4d0", "\U00011f04", "\U00031350", "\U00010d40", "\U00010d4a", "\u1c89", "\ua7cb",
        "\U000e0041", "\U000f0000", "\U0010fffd", "\ufffe", "\uffff", "\U0002ebf0", "\u0378", "\U0001fbf0"]


def contraction_forms():
    out = []
    for c in CONTRACTIONS:
        # dict.fromkeys: unique and in a fixed order (a set's order changes with PYTHONHASHSEED)
        for variant in dict.fromkeys([c, c.upper(), c.capitalize(), c[0] + c[1:].capitalize(), c[:2].upper() + c[2:]]):
            out.append(variant)
    return out


def word(rng):
    return "".join(rng.choice(LATIN) for _ in range(rng.randint(1, 9)))


def atom(rng, forms):
    kind = rng.random()
    if kind < 0.25:
        return word(rng)
    if kind < 0.32:
        return rng.choice(ACCENTED) + word(rng)
    if kind < 0.40:
        return rng.choice(SCRIPTS)
    if kind < 0.47:
        return "".join(rng.choice(rng.choice(DIGITS)) for _ in range(rng.randint(1, 12)))
    if kind < 0.54:
        return rng.choice(EMOJI)
    if kind < 0.60:
        return rng.choice(COMBINING)
    if kind < 0.72:
        return rng.choice(SPACES) * rng.randint(1, 5)
    if kind < 0.75:
        return rng.choice(NOT_SPACES)
    if kind < 0.84:
        return rng.choice(PUNCT) * rng.randint(1, 3)
    if kind < 0.93:
        return rng.choice(forms)
    if kind < 0.96:
        return rng.choice(RARE)
    return rng.choice([EOT, "<|endoftext|", "|>", "<|", "endoftext"])


def soup(rng, forms, atoms):
    return "".join(atom(rng, forms) for _ in range(atoms))


def handmade():
    cases = ["", " ", "  ", "\n", "\n\n", " \n ", "a", "'", "''", "'s", "''s", "x's", "X'S", "'S'S",
             "don't", "DON'T", "we'll've", "she'd'nt", "I'M", "you'Re", "'ll'll", "'''", "'r", "'l", "' s",
             "a  b", "a   b", "a \t b", "a\t\tb", "a\n\n\nb", "a \n\nb", "a\u00a0b", "a\u00a0\u00a0b", "\u3000\u3000x",
             "a  ", "a \t", "  a", "\t a", "hello world", "hello  world", "1 2  3   4", "12345678901234567890",
             "abc123def", "3.14159", "1,000,000", "$100", " !!", " !!a", "a!!", "?!?!", "...",
             "<|endoftext|>", "a<|endoftext|>b", " <|endoftext|> ", "<|endoftext|><|endoftext|>",
             "<|endoftext|", "<|endoftext|>\n", "Hello, do you like tea? <|endoftext|> In the sunlit terracesof someunknownPlace.",
             " " * 1000, " " * 1000 + "x", "\n" * 300, "\t" * 200 + "x", "0" * 500, "9" * 257 + " " + "8" * 101,
             "a" * 300, "é" * 120, "😀" * 50, "\u200d" * 30, "\u0301" * 40, "x" + "\u0301" * 20 + "y",
             "e\u0301te\u0301", "Ωmega ωmega", "İstanbul", "ﬁnance ﬂow", "Ⅻ o'clock", "²³ squared",
             "tab\there", "cr\rlf\r\n", "\u2028line\u2029para", "nbsp\u00a0nbsp", "\u0085nel", "\x0b\x0c",
             "\u001c\u001d\u001e\u001f", "null\u0000byte", "bom\ufeffbom", "zw\u200bsp", "mongolian\u180evowel"]
    return cases


def adversarial(enc, rng):
    forms = contraction_forms()
    texts = handmade()
    for form in forms:  # every contraction in every case, after letters, spaces, punctuation and at the end
        texts += [f"word{form} next", f" {form}", f"x{form}", f"!{form}", f"{form}", f"{form}{form}s",
                  f"’{form[1:]}"]
    for atoms, count in ((4, 40), (12, 30), (40, 12)):
        texts += [soup(rng, forms, atoms) for _ in range(count)]
    for s in SPACES + NOT_SPACES:
        texts += [f"a{s}b", f"a{s * 3}b", f"{s * 2}x", f"x{s * 4}", f"{s} y", f"y {s}"]
    cases = []
    for text in texts:
        for allowed in (False, True) if EOT in text else (False,):
            ids = enc.encode(text, allowed_special="all") if allowed else enc.encode_ordinary(text)
            cases.append({"text": text, "allowed_special": allowed, "ids": ids})
    # The bytes path: invalid UTF-8 (truncated characters, stray continuation bytes, overlongs,
    # UTF-8-encoded surrogates like CESU-8/WTF-8, bytes above F4) in and around text.
    invalid = [b"\x80", b"\xbf", b"\xc0\xaf", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xed\xa0\x80",
               b"\xed\xbf\xbf", b"\xed\xa0\xbd\xed\xb8\x80", b"\xf4\x90\x80\x80", b"\xf5", b"\xfe", b"\xff",
               b"\xe2\x82", b"\xf0\x9f\x98", b"\xf0\x9f", b"\xe4\xb8", b"\xc3", b"\xe2\x80", b"\xff\xfe"]
    byte_cases = []
    for text in rng.sample(texts, 250):
        raw = text.encode()
        if not raw or len(raw) > 120:
            continue
        r = rng.random()
        if r < 0.3:  # cut inside the last character: the common case of a truncated buffer
            cut = len(raw) - rng.randint(1, 3)
            data = raw[:max(cut, 0)] + rng.choice(invalid)
        elif r < 0.8:
            at = rng.randint(0, len(raw))
            data = raw[:at] + rng.choice(invalid) + raw[at:]
        else:
            data = b"".join(rng.choice(invalid) + raw[i:i + 7] for i in range(0, len(raw), 7))
        try:
            data.decode("utf-8")
            continue
        except UnicodeDecodeError:
            pass
        byte_cases.append(data)
    for data in [b"\xff", b"\xff\xff\xff", b"\xffhello world", b"hi \xff", b"abc\xe2\x80 hello world x",
                 b"hello\n\n\xff", b"  \xf0\x9f\x98", b"a \xed\xa0\x80 b", b"\xe2\x80\x99s", b"it\xe2\x80s"]:
        byte_cases.append(data)
    same_as_tiktoken_whole = 0
    for data in byte_cases:
        ids = encode_bytes_ours(enc, data)
        whole = enc._encode_bytes(data)
        same_as_tiktoken_whole += ids == whole
        cases.append({"hex": data.hex(), "allowed_special": False, "ids": ids, "tiktoken_encode_bytes_equal": ids == whole})
    print(f"  adversarial: {len(cases)} cases; bytes path {len(byte_cases)} cases, "
          f"{same_as_tiktoken_whole} equal to tiktoken._encode_bytes of the whole input", file=sys.stderr)
    return cases


# ----------------------------------------------------------------------------------------------
# Unicode classes, probed from tiktoken's regex

def probe_classes():
    """A custom Encoding whose vocabulary holds every 2-character string "p" + chr(c) for four
    probes p; tiktoken looks a whole piece up before merging, so encoding p + chr(c) gives one token
    exactly when the regex keeps the two characters in one piece:
      "a"+c  letter  (\\p{L}+)     "1"+c  number  (\\p{N}+)
      "!"+c  other   ([^\\s\\p{L}\\p{N}]+)   "\\t"+c  space  (\\s+ at the end of the text)"""
    probes = {"a": 1, "1": 2, "!": 0, "\t": 3}
    classes = [None] * 0x110000
    for lo in range(0, 0x110000, 0x8000):
        cps = [c for c in range(lo, lo + 0x8000) if not 0xD800 <= c <= 0xDFFF]
        ranks = {bytes([b]): b for b in range(256)}
        for p in probes:
            for c in cps:
                ranks[(p + chr(c)).encode()] = len(ranks)
        enc = tiktoken.Encoding(name="probe", pat_str=PAT, mergeable_ranks=ranks, special_tokens={})
        for p, cls in probes.items():
            for c, ids in zip(cps, enc.encode_ordinary_batch([p + chr(c) for c in cps], num_threads=2)):
                if len(ids) == 1:
                    if classes[c] is not None:
                        sys.exit(f"U+{c:04X} is in two classes")
                    classes[c] = cls
        print(f"  probed up to U+{lo + 0x7FFF:06X}", file=sys.stderr)
    lines, previous = [], None
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue  # surrogates are not characters; UTF-8 cannot hold them
        if classes[c] is None:
            sys.exit(f"U+{c:04X} is in no class")
        if classes[c] != previous:
            lines.append(f"{c:X} {classes[c]}")
            previous = classes[c]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--probe-classes", action="store_true", help="also probe tiktoken's Unicode classes (~4 min)")
    parser.add_argument("--seed", type=int, default=20240611)
    args = parser.parse_args()
    data_dir = pathlib.Path(args.data_dir).resolve()
    enc = gpt2_encoding(data_dir)
    verdict = len(enc.encode_ordinary((data_dir / "the-verdict.txt").read_text()))
    assert verdict == 5145, f"the-verdict.txt gave {verdict} tokens, expected 5145: not the gpt2 encoding"
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {"generator": "tests/tools/gen_tokenizer_fixtures.py", "tiktoken": tiktoken.__version__,
            "hash": "sha256 of little-endian uint32 ids; per text (uint32 count, ids...) for collections"}
    print("data files:", file=sys.stderr)
    (OUT / "tiktoken_data_files.json").write_text(json.dumps({**meta, "files": data_files(enc, data_dir)}, indent=1) + "\n")
    print("data texts:", file=sys.stderr)
    (OUT / "tiktoken_data_texts.json").write_text(json.dumps({**meta, "collections": data_texts(enc, data_dir)}, indent=1) + "\n")
    print("adversarial corpus:", file=sys.stderr)
    with open(OUT / "adversarial.jsonl", "w", encoding="utf-8") as f:
        for case in adversarial(enc, random.Random(args.seed)):
            f.write(json.dumps(case, ensure_ascii=False) + "\n")
    if args.probe_classes:
        print("unicode classes:", file=sys.stderr)
        header = [f"# tiktoken {tiktoken.__version__} regex classes of every code point (surrogates skipped), probed by",
                  "# tests/tools/gen_tokenizer_fixtures.py --probe-classes. Each line: first code point (hex) of a",
                  "# range and its class until the next line: 0 other, 1 letter, 2 number, 3 space."]
        (OUT / "tiktoken_unicode_classes.txt").write_text("\n".join(header + probe_classes()) + "\n")
    print("wrote", OUT, file=sys.stderr)


if __name__ == "__main__":
    main()
