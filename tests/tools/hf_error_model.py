"""The float32 error model shared by the HF parity scripts and tests/model/hf_gpt2_test.cpp.

A float32 reduction of length K (inner product, mean, variance, softmax sum) has a norm-wise
relative error of about sqrt(K) * u, u = 2^-24, when the rounding errors behave like independent
random variables (Higham & Mary, "A new approach to probabilistic rounding error analysis",
SIAM J. Sci. Comput. 2019); elementwise ops add a few u each. To first order the relative errors
of the ops on the path from the embeddings to the logits add up, as long as no op amplifies an
input error by more than it scales the signal (true for a pre-LN GPT-2 whose residual branches
do not dominate the stream, as at initialisation). Summing the terms linearly, instead of as a
root sum of squares, is the safety margin. Per block: LayerNorm 1 and 2 (sqrt(C) each), qkv
(sqrt(C)), scores (sqrt(HS)), softmax sum and att@v (sqrt(T) each), attention projection
(sqrt(C)), MLP fc (sqrt(C)) and proj (sqrt(4C)), plus 8 u for GELU (tanh within 2e-7),
exp (2 ulp) and the two residual adds; then ln_f and the head (sqrt(C) each), the embedding add,
and rounding a float64 reference to float32 (1 u each).

Every check has two parts: each float32 implementation is within k*u*||exact|| of the float64
result, so two float32 implementations are within 2*k*u*||exact|| of each other. The first part,
applied to PyTorch itself, tests the model's assumptions on the fixture at hand.
"""
import math

UNIT_ROUNDOFF = 2.0 ** -24


def error_k(n_embd: int, n_head: int, n_layer: int, seq_len: int) -> float:
    c, hs, t = float(n_embd), float(n_embd // n_head), float(seq_len)
    per_block = (2 * math.sqrt(c) + math.sqrt(c) + math.sqrt(hs) + 2 * math.sqrt(t) + math.sqrt(c)
                 + math.sqrt(c) + math.sqrt(4 * c) + 8)
    return n_layer * per_block + 2 * math.sqrt(c) + 2


def error_k_config(config, seq_len: int) -> float:
    """error_k for any of the families: GPT-2 as above; Llama and Qwen3 with their widths (two
    RMSNorms, qkv, scores over the head size, softmax and att@v, o_proj over the query width,
    gate/up over C and down over the MLP width; Qwen3 adds its query/key norms over the head size),
    8 u per block for exp, the rotation and the residual adds."""
    if config.model_type == "gpt2":
        return error_k(config.n_embd, config.n_head, config.n_layer, seq_len)
    c, t = float(config.hidden_size), float(seq_len)
    hs = float(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
    q, m = hs * config.num_attention_heads, float(config.intermediate_size)
    per_block = (2 * math.sqrt(c) + math.sqrt(c) + math.sqrt(hs) + 2 * math.sqrt(t) + math.sqrt(q)
                 + math.sqrt(c) + math.sqrt(m) + 8)
    if config.model_type == "qwen3":
        per_block += 2 * math.sqrt(hs)
    return config.num_hidden_layers * per_block + 2 * math.sqrt(c) + 2
