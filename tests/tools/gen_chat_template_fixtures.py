#!/usr/bin/env python3
"""Writes tests/fixtures/chat_templates/chat_templates.json: transformers' apply_chat_template text
and ids for conversations under the chat templates gptrain renders natively, so that
tests/data/chat_template_test.cpp can check ours against it.

Run by developers with pip-installed transformers (and jinja2), never by CI:
    python3 tests/tools/gen_chat_template_fixtures.py [--data-dir ../shared/data]

Templates (each with the real tokenizer.json of its family from the data dir's tokenizers/):
  qwen3     Qwen3-0.6B's tokenizer_config.json chat_template, as shipped
  qwen2     Qwen2-Instruct's template (ChatML with the default system message "You are a helpful
            assistant."), quoted below
  llama3    Meta-Llama-3-8B-Instruct's template, quoted below
  llama3.1  Llama 3.1/3.2 Instruct's template (the dated system block; tools unused), quoted below,
            rendered with date_string="26 Jul 2024" (its fallback)
For each conversation: the text with add_generation_prompt when it ends with a user message, or
without when it ends with an assistant message (a training example), and the ids of that text
(tokenizers' encode with add_special_tokens=False, which is what apply_chat_template(tokenize=True)
does). Qwen3 also with enable_thinking=False.
"""
import argparse
import json
import os

from transformers import AutoTokenizer, PreTrainedTokenizerFast

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 "
    "%}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

QWEN2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\n"
    "You are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' "
    "}}{% endif %}"
)

LLAMA31 = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\\n\\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"}],
    [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another one?"},
    ],
    [
        {"role": "user", "content": "  spaced out \n"},
        {"role": "assistant", "content": " answer\n\n"},
        {"role": "user", "content": "\nnext\t"},
    ],
    [{"role": "user", "content": "Grüße 👋 — 日本語 and ١٢٣ digits 12345"}],
    [
        {"role": "user", "content": "Rewrite the sentence in passive voice.\n\nThe cat chased the mouse."},
        {"role": "assistant", "content": "The mouse was chased by the cat."},
    ],
    [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Opposite of hot?"},
        {"role": "assistant", "content": "Cold"},
    ],
    [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "<think>\nreasoning one\n</think>\n\nfinal one"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "<think>\nreasoning two\n</think>\n\nfinal two"},
    ],
    [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "<think>\nhidden\n</think>\n\nshown"},
        {"role": "user", "content": "q2"},
    ],
]


def llama_tokenizer(data_dir, template):
    return PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(data_dir, "tokenizers", "llama3", "tokenizer.json"),
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        chat_template=template,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fixtures", "chat_templates",
                                                  "chat_templates.json"))
    args = ap.parse_args()
    qwen_dir = os.path.join(args.data_dir, "tokenizers", "qwen")
    qwen3 = AutoTokenizer.from_pretrained(qwen_dir)
    qwen2 = AutoTokenizer.from_pretrained(qwen_dir)
    qwen2.chat_template = QWEN2
    templates = [
        ("qwen3", "qwen", qwen3, {}),
        ("qwen3-no-thinking", "qwen", qwen3, {"enable_thinking": False}),
        ("qwen2", "qwen", qwen2, {}),
        ("llama3", "llama3", llama_tokenizer(args.data_dir, LLAMA3), {}),
        ("llama3.1", "llama3", llama_tokenizer(args.data_dir, LLAMA31), {"date_string": "26 Jul 2024"}),
    ]
    out = {"templates": []}
    for name, tokenizer_dir, tok, kwargs in templates:
        cases = []
        for conv in CONVERSATIONS:
            gen = conv[-1]["role"] == "user"
            text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen, **kwargs)
            ids = tok(text, add_special_tokens=False)["input_ids"]
            cases.append({"messages": conv, "add_generation_prompt": gen, "text": text, "ids": ids})
        out["templates"].append({
            "name": name,
            "tokenizer": tokenizer_dir,
            "jinja": tok.chat_template,
            "kwargs": kwargs,
            "cases": cases,
        })
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {args.out}: {len(templates)} templates x {len(CONVERSATIONS)} conversations")


if __name__ == "__main__":
    main()
