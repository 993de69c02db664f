#!/usr/bin/env python3
"""Writes tests/fixtures/peft/pattern_cases.json: for pattern keys and module names, whether PEFT's
get_pattern_key (peft.utils.other: re.match(rf"(.*\\.)?({key})$", name)) picks the key, so that
tests/model/peft_pattern_test.cpp can check gptrain's matcher (src/model/peft_pattern.h) against it.

Run by developers with pip-installed peft, never by CI:
    python3 tests/tools/gen_peft_pattern_fixtures.py

Cases: keys as PEFT writes and documents them over GPT-2, Llama and Qwen module names, and random
keys from the syntax the matcher takes (seeded), each against every module name. A key Python's re
refuses is recorded with "python_error": gptrain must refuse it too.
"""
import json
import os
import random
import re

from peft.utils.other import get_pattern_key

MODULES = [
    "transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn", "transformer.h.1.attn.c_proj",
    "transformer.h.10.mlp.c_fc", "transformer.h.11.mlp.c_proj", "transformer.h.0.attn.xc_proj",
    "model.layers.0.self_attn.q_proj", "model.layers.3.self_attn.k_proj", "model.layers.12.mlp.gate_proj",
    "model.layers.7.mlp.down_proj", "model.layers.1.mlp.up_proj", "lm_head", "score", "c_attn", "a", "",
    "model.layers.0.self_attn.o_proj\n", "\nr0.attn.c_attn", "h.0\n.attn.c_attn",
]

KEYS = [
    "c_attn", "c_proj", "h.1.mlp.c_proj", "h\\.[01]\\.attn\\.c_attn", "^transformer.h.0.attn.c_attn$",
    "^h.0.attn.c_attn", "layers\\.\\d+\\.self_attn\\.[qk]_proj", "layers.[0-9]{1,2}.mlp.(gate|up)_proj",
    "(?:q|k|v)_proj", "(?P<which>gate|down)_proj", "mlp\\..*", ".*", "[^.]+_proj", "\\w+\\.c_fc",
    "layers\\.(1[0-9]|[2-9])\\.mlp\\.gate_proj", "proj$", "o_proj$", "o_proj\\Z", "\\bmlp\\b.*",
    "a{0}", "a{,1}", "a{2,}", "c_at+n", "c_at*?n", "(a|aa)*", "(c_at***tn)", "c_at**tn", "(x+x+)+y",
    "(a|)*b", "()*c_attn", "[]a]", "[a-]", "[\\d.]+", "lm_head|score", "q_proj|", "|lm_head",
    "[z-a]", "a{2,1}", "(unclosed", "closed)", "*a", "\\q", "\\1", "(?=c)c_attn", "(?<=h\\.)0.attn.c_attn",
    "(?i)C_ATTN", "a*+", "\\x63_attn", "c\\_attn", "[\\w]+\\.c_proj", "h.1.mlp.c_proj(",
]

ATOMS = ["a", "b", ".", "\\.", "c_", "[ab]", "[^a]", "\\d", "\\w", "(a|b)", "(?:ab|b)", "h", "1", "_", "0"]
QUANTS = ["", "", "", "*", "+", "?", "{1,2}", "{2}", "*?", "{,3}"]


def random_key(rng):
    return "".join(rng.choice(ATOMS) + rng.choice(QUANTS) for _ in range(rng.randint(1, 5)))


def random_name(rng):
    return "".join(rng.choice("ab._0h1c") for _ in range(rng.randint(0, 10)))


def case(key, name):
    try:
        re.compile(rf"(.*\.)?({key})$")
    except re.error:
        return {"key": key, "module": name, "python_error": True}
    return {"key": key, "module": name, "match": get_pattern_key([key], name) == key}


def main():
    rng = random.Random(20261203)
    cases = [case(k, m) for k in KEYS for m in MODULES]
    for _ in range(3000):
        cases.append(case(random_key(rng), random_name(rng)))
    # first match wins, in the given order
    order = [{"keys": ["c_proj", "h.1.mlp.c_proj"], "module": "transformer.h.1.mlp.c_proj"},
             {"keys": ["h.1.mlp.c_proj", "c_proj"], "module": "transformer.h.1.mlp.c_proj"},
             {"keys": ["layers\\.[0-3]\\..*", "q_proj"], "module": "model.layers.2.self_attn.q_proj"},
             {"keys": ["k_proj", "v_proj"], "module": "model.layers.2.self_attn.q_proj"}]
    for o in order:
        picked = get_pattern_key(o["keys"], o["module"])
        o["picked"] = picked if picked in o["keys"] else ""
    out = os.path.join(os.path.dirname(__file__), "..", "fixtures", "peft", "pattern_cases.json")
    with open(out, "w") as f:
        json.dump({"cases": cases, "first_match": order}, f, indent=0)
        f.write("\n")
    print(f"{out}: {len(cases)} cases, {sum(c.get('match', False) for c in cases)} matches, "
          f"{sum(c.get('python_error', False) for c in cases)} refused by Python")


if __name__ == "__main__":
    main()
