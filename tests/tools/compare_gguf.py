#!/usr/bin/env python3
"""Compares two GGUF files key by key and tensor by tensor: gptrain's export-gguf against
llama.cpp's convert_hf_to_gguf.py of the same model dir. A developer tool, never run by CI.

    PYTHONPATH=LLAMA_CPP_DIR/gguf-py python3 tests/tools/compare_gguf.py OURS.gguf THEIRS.gguf

Prints every key present in one file only or with different values, and every tensor whose
name, shape, type or bytes differ (with the largest difference of the values when both are
dequantizable); exits 1 when a tensor differs.
"""
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def fields(reader):
    out = {}
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        parts = [field.parts[i] for i in field.data]
        if field.types and field.types[0].name == "STRING":
            value = bytes(parts[0]).decode("utf-8", "replace")
        elif field.types and field.types[0].name == "ARRAY":
            if len(field.types) > 1 and field.types[1].name == "STRING":
                value = [bytes(p).decode("utf-8", "replace") for p in parts]
            else:
                value = [p.tolist()[0] if hasattr(p, "tolist") else p for p in parts]
        else:
            value = parts[0].tolist()[0] if len(parts) else None
        out[name] = (field.types[0].name if field.types else "?", value)
    return out


def short(value):
    text = repr(value)
    return text if len(text) < 120 else text[:117] + "..."


def main():
    ours, theirs = GGUFReader(sys.argv[1]), GGUFReader(sys.argv[2])
    a, b = fields(ours), fields(theirs)
    for key in sorted(set(a) | set(b)):
        if key not in b:
            print(f"key only in ours:   {key} = {short(a[key][1])}")
        elif key not in a:
            print(f"key only in theirs: {key} = {short(b[key][1])}")
        elif a[key] != b[key]:
            print(f"key differs: {key}: ours {a[key][0]} {short(a[key][1])}, theirs {b[key][0]} {short(b[key][1])}")
    ta = {t.name: t for t in ours.tensors}
    tb = {t.name: t for t in theirs.tensors}
    bad = 0
    for name in sorted(set(ta) | set(tb)):
        if name not in tb or name not in ta:
            print(f"tensor only in {'ours' if name in ta else 'theirs'}: {name}")
            bad += 1
            continue
        x, y = ta[name], tb[name]
        if list(x.shape) != list(y.shape) or x.tensor_type != y.tensor_type:
            print(f"tensor {name}: ours {x.tensor_type.name} {list(x.shape)}, theirs {y.tensor_type.name} {list(y.shape)}")
            bad += 1
            continue
        if not np.array_equal(np.asarray(x.data).view(np.uint8), np.asarray(y.data).view(np.uint8)):
            dx = dequantize(np.asarray(x.data), x.tensor_type).astype(np.float64)
            dy = dequantize(np.asarray(y.data), y.tensor_type).astype(np.float64)
            print(f"tensor {name} ({x.tensor_type.name}): bytes differ, max |difference| {np.max(np.abs(dx - dy)):.3g}")
            bad += 1
    print(f"{len(ta)} tensors in ours, {len(tb)} in theirs: {len(set(ta) & set(tb)) - bad if bad <= len(set(ta) & set(tb)) else 0} "
          f"byte-identical, {bad} differ")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
