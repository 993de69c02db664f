#!/usr/bin/env python3
"""Does the chat template gptrain writes into a model dir render in transformers as gptrain renders it?

    python3 tests/tools/check_written_chat_template.py MODEL_DIR...

MODEL_DIR is the final/ dir of `gptrain finetune-instruct --template chat` (or any dir gptrain wrote a
chat template into). Its tokenizer_config.json names the style gptrain used (`gptrain_chat_template`);
the conversations of tests/fixtures/chat_templates/chat_templates.json for that style are rendered by
transformers' apply_chat_template from the dir (the Jinja `chat_template` gptrain wrote) and compared
with the fixture's text and ids, which gptrain's own rendering equals (tests/data/chat_template_test).
A developer tool (pip transformers); exits non-zero on any difference.
"""
import json
import pathlib
import sys

from transformers import AutoTokenizer

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates" / "chat_templates.json"
STYLE_TO_FIXTURE = {"llama3": "llama3", "llama3.1": "llama3.1", "chatml": "qwen2", "qwen3": "qwen3"}


def check(model_dir: pathlib.Path) -> bool:
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    style = config["gptrain_chat_template"]["style"]
    fixtures = {t["name"]: t for t in json.loads(FIXTURE.read_text())["templates"]}
    name = STYLE_TO_FIXTURE[style]
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    ok = True
    cases = fixtures[name]["cases"]
    kwargs = fixtures[name]["kwargs"]
    for i, case in enumerate(cases):
        text = tok.apply_chat_template(case["messages"], tokenize=False,
                                       add_generation_prompt=case["add_generation_prompt"], **kwargs)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if text != case["text"] or ids != case["ids"]:
            ok = False
            print(f"{model_dir} case {i}: transformers renders\n{text!r}\nfixture (= gptrain):\n{case['text']!r}")
    print(f"{model_dir}: style {style}, {len(cases)} conversations: {'same text and ids' if ok else 'DIFFERENT'}")
    return ok


if __name__ == "__main__":
    sys.exit(0 if all([check(pathlib.Path(d)) for d in sys.argv[1:]]) else 1)
