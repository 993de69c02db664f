"""Helpers shared by the Python benchmark drivers in bench/ (standard library only)."""
import platform
import subprocess


def corpus(data_dir):
    """The tokenizer benchmarks' text: every corpus/*.txt of the data dir (sorted) and the-verdict.txt,
    concatenated, as bench/tokenizer_bench reads it."""
    files = sorted((data_dir / "corpus").glob("*.txt")) + [data_dir / "the-verdict.txt"]
    return b"".join(f.read_bytes() for f in files)


def cpu_model():
    """lscpu's model name, for the results' header."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except Exception:
        return platform.processor()
