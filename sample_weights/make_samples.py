"""Generate the bundled toy checkpoints in ``sample_weights/``.

Regenerate (from the repository root) with::

    python sample_weights/make_samples.py

Only numpy, safetensors, tokenizers, ml_dtypes and the standard library are
used; every random draw comes from a fixed seed, so the output is the same on
every run. The script writes, next to itself:

* ``gpt2-tied/``      GPT2LMHeadModel, float32, tied head (no ``lm_head.weight``)
* ``llama-bf16/``     LlamaForCausalLM, bfloat16, untied, vocabulary rows padded
* ``qwen2-sharded/``  Qwen2ForCausalLM, float32, untied, two shards + index

Each directory gets ``config.json``, the weights, ``tokenizer.json`` (a
byte-level BPE trained here on the small corpus below), ``text.txt`` (one
sentence of that corpus), ``hidden.npy`` (T, d): crafted final hidden states
*before* the final norm, whose predictions after final norm + head mostly
match the sentence's next tokens, and ``hidden_layers.npy`` (n_layer + 1, T, d):
a logit-lens stack (embedding output, after block 1, ..., final) whose last
entry equals ``hidden.npy``. The weights are random: only the crafted hidden
states make meaningful predictions.

At the end the files are read back from disk and checked with an
independent numpy implementation of final norm + head + softmax; the
per-sample accuracy, target probability and perplexity are printed.
"""

from __future__ import annotations

import json
import os
import shutil
import struct

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
BF16 = ml_dtypes.bfloat16

EOS = "<|endoftext|>"
TOKENIZER_VOCAB = 450  # including <|endoftext|>
D = 64
N_LAYER = 2
N_HEAD = 4
EPS = 1e-5

# Written for this project; any resemblance to a real text is chance.
PARAGRAPHS = (
    (
        "The old lighthouse stood at the end of the long stone pier. The keeper climbed the stairs to light "
        "the lamp every evening. The tower was tall, and from the top she could see the whole harbor, the "
        "fishing boats coming home, and the gulls turning over the water. When the fog rolled in from the "
        "sea, she rang the great bell so that the sailors would know where the rocks were."
    ),
    (
        "In the spring the village held a market in the square. Farmers brought eggs, cheese, and baskets of "
        "early green beans. Children ran between the stalls, and the baker sold warm bread that smelled of "
        "butter and salt. The keeper came down from the tower to buy apples and to hear the news from the "
        "town."
    ),
    (
        "One winter night a storm broke the windows of the tower and put out the lamp. The keeper worked "
        "until morning to mend the glass and light the lamp again. A small boat had been lost in the dark, "
        "but at dawn the sailors saw the light and found their way back to the harbor. The whole village came"
        " down to the pier to thank her."
    ),
    (
        "Years later a new keeper came to live in the tower. He was young and did not know the sea, so the "
        "old keeper taught him how to read the clouds, how to trim the wick, and how to listen for the wind. "
        "He wrote everything down in a small blue book that he kept in the pocket of his coat."
    ),
    (
        "On quiet days the two keepers sat on the steps of the tower and watched the boats. The old keeper "
        "told him which boats belonged to which families, and which sailors would come home late. In the "
        "evening they climbed the stairs together, and the young keeper lit the lamp while the old keeper "
        "watched the sea."
    ),
    (
        "The village was small, but it was never quiet. The fishing boats left the harbor before dawn and "
        "came home in the evening with their nets full. The children played on the pier, and the old people "
        "sat in the square and talked about the weather, the price of bread, and the storms of years past."
    ),
    (
        "Now the lamp is run by a machine, and nobody climbs the stairs at night. But the people of the "
        "village still tell the story of the storm, and on clear evenings the children walk to the end of the"
        " pier to watch the light turn over the water."
    ),
)
CORPUS = "\n\n".join(PARAGRAPHS) + "\n"

SENTENCE = "The keeper climbed the stairs to light the lamp every evening."
# Positions where the crafted state deliberately prefers a plausible
# alternative (shown here as the text of a single token) over the true next
# token, so that top-1 accuracy is realistic rather than perfect.
MISSES = {"gpt2-tied": {3: " down"}, "llama-bf16": {5: " and"}, "qwen2-sharded": {9: " at"}}


# --------------------------------------------------------------------------- tokenizer


def train_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB,
        min_frequency=2,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    paragraphs = [p for p in CORPUS.split("\n\n") if p.strip()]
    tok.train_from_iterator(paragraphs, trainer=trainer)
    return tok


# --------------------------------------------------------------------------- norms, head


def layer_norm(x, w, b, eps):
    x = np.asarray(x, np.float32)
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + np.float32(eps)) * w.astype(np.float32) + b.astype(np.float32)


def rms_norm(x, w, eps):
    x = np.asarray(x, np.float32)
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + np.float32(eps)) * w.astype(np.float32)


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def unit(v):
    return v / np.linalg.norm(v)


# --------------------------------------------------------------------------- weights


def normal(rng, shape, std, dtype=np.float32):
    return (rng.standard_normal(shape) * std).astype(np.float32).astype(dtype)


def norm_weight(rng, n, spread=0.1, dtype=np.float32):
    return (1.0 + rng.standard_normal(n) * spread).astype(np.float32).astype(dtype)


def gpt2_weights(rng, V, n_positions):
    d, inner = D, 4 * D
    t = {
        "transformer.wte.weight": normal(rng, (V, d), 0.15),
        "transformer.wpe.weight": normal(rng, (n_positions, d), 0.02),
    }
    for i in range(N_LAYER):
        p = f"transformer.h.{i}."
        t[p + "ln_1.weight"] = norm_weight(rng, d, 0.05)
        t[p + "ln_1.bias"] = normal(rng, d, 0.02)
        t[p + "attn.c_attn.weight"] = normal(rng, (d, 3 * d), 0.02)  # Conv1D: (in, out)
        t[p + "attn.c_attn.bias"] = normal(rng, 3 * d, 0.02)
        t[p + "attn.c_proj.weight"] = normal(rng, (d, d), 0.02 / np.sqrt(2 * N_LAYER))
        t[p + "attn.c_proj.bias"] = normal(rng, d, 0.02)
        t[p + "ln_2.weight"] = norm_weight(rng, d, 0.05)
        t[p + "ln_2.bias"] = normal(rng, d, 0.02)
        t[p + "mlp.c_fc.weight"] = normal(rng, (d, inner), 0.02)
        t[p + "mlp.c_fc.bias"] = normal(rng, inner, 0.02)
        t[p + "mlp.c_proj.weight"] = normal(rng, (inner, d), 0.02 / np.sqrt(2 * N_LAYER))
        t[p + "mlp.c_proj.bias"] = normal(rng, d, 0.02)
    t["transformer.ln_f.weight"] = norm_weight(rng, d, 0.1)
    t["transformer.ln_f.bias"] = normal(rng, d, 0.02)
    return t


def llama_like_weights(rng, rows, V, n_kv, inner, dtype, qkv_bias, embed_std, head_std):
    """Llama / Qwen2 layout. Rows >= V: rows past V are vocabulary padding."""
    d, hd = D, D // N_HEAD
    embed = normal(rng, (rows, d), embed_std)
    head = normal(rng, (rows, d), head_std)
    if rows > V:  # padding rows: never trained, left near zero
        embed[V:] = 0.0
        head[V:] = normal(rng, (rows - V, d), 0.002)
    t = {"model.embed_tokens.weight": embed.astype(dtype)}
    for i in range(N_LAYER):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = norm_weight(rng, d, 0.1, dtype)
        t[p + "self_attn.q_proj.weight"] = normal(rng, (N_HEAD * hd, d), 0.02, dtype)  # nn.Linear: (out, in)
        t[p + "self_attn.k_proj.weight"] = normal(rng, (n_kv * hd, d), 0.02, dtype)
        t[p + "self_attn.v_proj.weight"] = normal(rng, (n_kv * hd, d), 0.02, dtype)
        if qkv_bias:
            t[p + "self_attn.q_proj.bias"] = normal(rng, N_HEAD * hd, 0.02, dtype)
            t[p + "self_attn.k_proj.bias"] = normal(rng, n_kv * hd, 0.02, dtype)
            t[p + "self_attn.v_proj.bias"] = normal(rng, n_kv * hd, 0.02, dtype)
        t[p + "self_attn.o_proj.weight"] = normal(rng, (d, N_HEAD * hd), 0.02, dtype)
        t[p + "post_attention_layernorm.weight"] = norm_weight(rng, d, 0.1, dtype)
        t[p + "mlp.gate_proj.weight"] = normal(rng, (inner, d), 0.02, dtype)
        t[p + "mlp.up_proj.weight"] = normal(rng, (inner, d), 0.02, dtype)
        t[p + "mlp.down_proj.weight"] = normal(rng, (d, inner), 0.02, dtype)
    t["model.norm.weight"] = norm_weight(rng, d, 0.1, dtype)
    t["lm_head.weight"] = head.astype(dtype)
    return t


# --------------------------------------------------------------------------- configs


def gpt2_config(V, n_positions):
    return {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": 0,
        "dtype": "float32",
        "embd_pdrop": 0.1,
        "eos_token_id": 0,
        "initializer_range": 0.02,
        "layer_norm_epsilon": EPS,
        "model_type": "gpt2",
        "n_embd": D,
        "n_head": N_HEAD,
        "n_inner": None,
        "n_layer": N_LAYER,
        "n_positions": n_positions,
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": V,
    }


def llama_config(rows, n_kv, inner):
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "dtype": "bfloat16",
        "eos_token_id": 0,
        "head_dim": D // N_HEAD,
        "hidden_act": "silu",
        "hidden_size": D,
        "initializer_range": 0.02,
        "intermediate_size": inner,
        "max_position_embeddings": 256,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": N_HEAD,
        "num_hidden_layers": N_LAYER,
        "num_key_value_heads": n_kv,
        "pretraining_tp": 1,
        "rms_norm_eps": EPS,
        "rope_scaling": None,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": rows,
    }


def qwen2_config(V, n_kv, inner):
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "dtype": "float32",
        "eos_token_id": 0,
        "hidden_act": "silu",
        "hidden_size": D,
        "initializer_range": 0.02,
        "intermediate_size": inner,
        "max_position_embeddings": 256,
        "max_window_layers": N_LAYER,
        "model_type": "qwen2",
        "num_attention_heads": N_HEAD,
        "num_hidden_layers": N_LAYER,
        "num_key_value_heads": n_kv,
        "rms_norm_eps": EPS,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": V,
    }


def write_json(path, obj):
    # transformers writes configs and shard indexes with indent=2, sort_keys=True
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------- hidden states


class Sample:
    """What the crafting and the check need to know about one checkpoint."""

    def __init__(self, name, norm_kind, norm_w, norm_b, head, embed_rows, wpe=None):
        self.name = name
        self.norm_kind = norm_kind
        self.norm_w = norm_w.astype(np.float32)  # bf16 upcast to float32
        self.norm_b = None if norm_b is None else norm_b.astype(np.float32)
        self.head = head.astype(np.float32)
        self.embed_rows = embed_rows.astype(np.float32)
        self.wpe = wpe

    def final_norm(self, h):
        if self.norm_kind == "layernorm":
            return layer_norm(h, self.norm_w, self.norm_b, EPS)
        return rms_norm(h, self.norm_w, EPS)

    def logprobs(self, h):
        return log_softmax(self.final_norm(h) @ self.head.T)

    def unnorm(self, y, gain, offset):
        """A pre-norm state whose final norm is (a scaled, shifted copy of) y."""
        if self.norm_kind == "layernorm":
            x = (y - self.norm_b) / self.norm_w
            x = (x - x.mean()) / x.std()
            return gain * x + offset
        x = y / self.norm_w
        return gain * x / np.sqrt((x * x).mean())


def _state(s: Sample, a, direction, noise, gain, offset, jitter):
    """Pre-norm state whose normed direction is a·direction + noise."""
    y = np.sqrt(D) * unit(a * direction + noise)
    return (s.unnorm(y, gain, offset) + jitter).astype(np.float32)


def craft_hidden(s: Sample, ids, next_id, misses, rng):
    T = len(ids)
    targets = list(ids[1:]) + [next_id]
    h = np.zeros((T, D), np.float32)
    for i, tgt in enumerate(targets):
        noise = rng.standard_normal(D)
        alt = misses.get(i)
        u_t = unit(s.head[tgt].astype(np.float64))
        if alt is None:
            direction, watch, want = u_t, tgt, rng.uniform(0.35, 0.85)
        else:  # a plausible alternative wins; the true token comes close behind
            u_a = unit(s.head[alt].astype(np.float64))
            direction, watch, want = unit(u_a + 0.8 * u_t), alt, 0.45
        noise -= (noise @ direction) * direction
        noise = unit(noise)
        gain = rng.uniform(2.0, 6.0)  # pre-norm residual streams are large
        offset = rng.normal(0.0, 0.5) if s.norm_kind == "layernorm" else 0.0
        jitter = rng.standard_normal(D) * 0.03 * gain

        parts = (direction, noise, gain, offset, jitter)
        lo, hi = 0.0, 20.0  # bisection on the share of the target direction
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            p = np.exp(s.logprobs(_state(s, mid, *parts)[None])[0, watch])
            lo, hi = (mid, hi) if p < want else (lo, mid)
        h[i] = _state(s, 0.5 * (lo + hi), *parts)
    return h


def craft_layers(s: Sample, ids, h_final, rng):
    """(N_LAYER + 1, T, D): embedding output, intermediate blocks, final."""
    h0 = s.embed_rows[ids].copy()
    if s.wpe is not None:
        h0 += s.wpe[: len(ids)]
    stack = [h0]
    delta = h_final - h0
    for k in range(1, N_LAYER):
        t = k / N_LAYER
        noise = rng.standard_normal(h0.shape).astype(np.float32)
        noise *= 0.6 * np.linalg.norm(delta, axis=-1, keepdims=True) / np.sqrt(D)
        stack.append(h0 + t * delta + noise)
    stack.append(h_final)
    return np.stack(stack).astype(np.float32)


# --------------------------------------------------------------------------- reading back


ST_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": BF16}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        arr = np.frombuffer(data[8 + n + a : 8 + n + b], dtype=ST_DTYPES[info["dtype"]])
        out[name] = arr.reshape(info["shape"])
    return out, header.get("__metadata__")


def read_checkpoint(d):
    index = os.path.join(d, "model.safetensors.index.json")
    if not os.path.exists(index):
        return read_safetensors(os.path.join(d, "model.safetensors"))[0]
    with open(index) as f:
        idx = json.load(f)
    tensors = {}
    for shard in sorted(set(idx["weight_map"].values())):
        part, meta = read_safetensors(os.path.join(d, shard))
        assert meta == {"format": "pt"}
        for k, v in part.items():
            assert idx["weight_map"][k] == shard
            tensors[k] = v
    assert set(tensors) == set(idx["weight_map"])
    assert idx["metadata"]["total_size"] == sum(v.nbytes for v in tensors.values())
    return tensors


def check(d, ids, next_id):
    """Independent re-computation from the files on disk."""
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    t = read_checkpoint(d)
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "text.txt"), encoding="utf-8") as f:
        text = f.read()
    assert tok.encode(text, add_special_tokens=False).ids == ids
    h = np.load(os.path.join(d, "hidden.npy"))
    stack = np.load(os.path.join(d, "hidden_layers.npy"))
    n_layer = cfg.get("n_layer", cfg.get("num_hidden_layers"))
    assert h.dtype == np.float32 and h.shape == (len(ids), D)
    assert stack.dtype == np.float32 and stack.shape == (n_layer + 1, len(ids), D)
    assert np.array_equal(stack[-1], h)
    f32 = {k: v.astype(np.float32) for k, v in t.items()}
    if cfg["model_type"] == "gpt2":
        assert "lm_head.weight" not in t and cfg["tie_word_embeddings"]
        head = f32["transformer.wte.weight"]
        eps = cfg["layer_norm_epsilon"]
        norm = lambda x: layer_norm(x, f32["transformer.ln_f.weight"], f32["transformer.ln_f.bias"], eps)  # noqa: E731
    else:
        assert not cfg["tie_word_embeddings"]
        head = f32["lm_head.weight"]
        assert not np.array_equal(head, f32["model.embed_tokens.weight"])
        eps = cfg["rms_norm_eps"]
        norm = lambda x: rms_norm(x, f32["model.norm.weight"], eps)  # noqa: E731
    assert head.shape[0] == cfg["vocab_size"] >= tok.get_vocab_size(with_added_tokens=True)
    y = np.array(ids[1:])
    T = len(ids)
    n_tok = tok.get_vocab_size(with_added_tokens=True)
    print(
        f"{os.path.basename(d)}: V={head.shape[0]} d={head.shape[1]} layers={n_layer} eps={eps} "
        f"tokenizer={n_tok} padded_rows={head.shape[0] - n_tok} T={T}"
    )
    for layer in range(stack.shape[0]):
        lp = log_softmax(norm(stack[layer]) @ head.T)
        top = lp.argmax(-1)
        tgt_lp = lp[np.arange(T - 1), y]
        acc = float((top[:-1] == y).mean())
        tag = "final" if layer == stack.shape[0] - 1 else f"lens {layer}"
        print(
            f"  {tag:7s} top-1 acc {acc:.3f} ({int((top[:-1] == y).sum())}/{T - 1})  "
            f"mean p(target) {float(np.exp(tgt_lp).mean()):.3f}  ppl {float(np.exp(-tgt_lp.mean())):.2f}"
        )
    lp = log_softmax(norm(h) @ head.T)
    top = lp.argmax(-1)
    for i in range(T):
        want = ids[i + 1] if i + 1 < T else next_id
        rank = int((lp[i] > lp[i, want]).sum()) + 1
        print(
            f"    {i:2d} {tok.id_to_token(ids[i])!r:>12} -> top {tok.id_to_token(int(top[i]))!r:>12} "
            f"p={np.exp(lp[i, top[i]]):.2f} | {'target' if i + 1 < T else 'next  '} "
            f"{tok.id_to_token(want)!r:>12} p={np.exp(lp[i, want]):.2f} rank {rank}"
        )
    return float((top[:-1] == y).mean())


# --------------------------------------------------------------------------- main


def main():
    tok = train_tokenizer()
    V = tok.get_vocab_size(with_added_tokens=True)
    eos_id = tok.token_to_id(EOS)
    assert eos_id == 0 and 400 <= V <= 512, (eos_id, V)
    ids = tok.encode(SENTENCE, add_special_tokens=False).ids
    assert 10 <= len(ids) <= 16, len(ids)
    after = CORPUS[CORPUS.index(SENTENCE) + len(SENTENCE) :].split(".")[0]
    next_id = tok.encode(after, add_special_tokens=False).ids[0]  # " The" of the next sentence

    def miss_ids(name):
        out = {}
        for pos, text in MISSES[name].items():
            enc = tok.encode(text, add_special_tokens=False).ids
            assert len(enc) == 1 and enc[0] != ids[pos + 1], (text, enc)
            out[pos] = enc[0]
        return out

    for name in ("gpt2-tied", "llama-bf16", "qwen2-sharded"):
        shutil.rmtree(os.path.join(HERE, name), ignore_errors=True)
        os.makedirs(os.path.join(HERE, name))

    # ---- gpt2-tied
    rng = np.random.default_rng(20240601)
    n_positions = 128
    d = os.path.join(HERE, "gpt2-tied")
    t = gpt2_weights(rng, V, n_positions)
    save_file(t, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    write_json(os.path.join(d, "config.json"), gpt2_config(V, n_positions))
    s = Sample(
        "gpt2-tied",
        "layernorm",
        t["transformer.ln_f.weight"],
        t["transformer.ln_f.bias"],
        t["transformer.wte.weight"],
        t["transformer.wte.weight"],
        wpe=t["transformer.wpe.weight"],
    )
    samples = [(d, s, miss_ids("gpt2-tied"), rng)]

    # ---- llama-bf16 (padded vocabulary rows)
    rng = np.random.default_rng(20240602)
    rows = (V // 64 + 1) * 64
    d = os.path.join(HERE, "llama-bf16")
    t = llama_like_weights(rng, rows, V, n_kv=2, inner=176, dtype=BF16, qkv_bias=False, embed_std=0.05, head_std=0.15)
    save_file(t, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    write_json(os.path.join(d, "config.json"), llama_config(rows, n_kv=2, inner=176))
    s = Sample("llama-bf16", "rmsnorm", t["model.norm.weight"], None, t["lm_head.weight"], t["model.embed_tokens.weight"])
    samples.append((d, s, miss_ids("llama-bf16"), rng))

    # ---- qwen2-sharded
    rng = np.random.default_rng(20240603)
    d = os.path.join(HERE, "qwen2-sharded")
    t = llama_like_weights(rng, V, V, n_kv=2, inner=128, dtype=np.float32, qkv_bias=True, embed_std=0.1, head_std=0.15)
    names = list(t)  # state-dict order: embed, layer 0, layer 1, norm, lm_head
    first = [n for n in names if n.startswith("model.embed_tokens.") or n.startswith("model.layers.0.")]
    shards = [first, [n for n in names if n not in first]]
    weight_map = {}
    for k, part in enumerate(shards, 1):
        fname = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
        save_file({n: t[n] for n in part}, os.path.join(d, fname), metadata={"format": "pt"})
        weight_map.update({n: fname for n in part})
    assert weight_map["model.embed_tokens.weight"] != weight_map["lm_head.weight"]
    index = {"metadata": {"total_size": int(sum(v.nbytes for v in t.values()))}, "weight_map": weight_map}
    write_json(os.path.join(d, "model.safetensors.index.json"), index)
    write_json(os.path.join(d, "config.json"), qwen2_config(V, n_kv=2, inner=128))
    s = Sample("qwen2-sharded", "rmsnorm", t["model.norm.weight"], None, t["lm_head.weight"], t["model.embed_tokens.weight"])
    samples.append((d, s, miss_ids("qwen2-sharded"), rng))

    # ---- shared files and crafted hidden states
    for d, s, misses, rng in samples:
        tok.save(os.path.join(d, "tokenizer.json"))
        with open(os.path.join(d, "text.txt"), "w", encoding="utf-8") as f:
            f.write(SENTENCE)  # no trailing newline: it would be a token of its own
        h = craft_hidden(s, ids, next_id, misses, rng)
        np.save(os.path.join(d, "hidden.npy"), h)
        np.save(os.path.join(d, "hidden_layers.npy"), craft_layers(s, ids, h, rng))

    # ---- independent check from disk
    print(f"sentence: {SENTENCE!r} ({len(ids)} tokens)")
    for d, *_ in samples:
        acc = check(d, ids, next_id)
        assert 0.8 <= acc < 1.0, acc
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(HERE) for f in fs)
    print(f"sample_weights/ total file bytes: {total}")
    assert total < 2_000_000


if __name__ == "__main__":
    main()
