"""Convert ``sample_weights/gpt2-tied`` to ``sample_weights/gpt2-tied.gguf``, as llama.cpp's converter would.

The GGUF carries the model *and* its tokenizer (``tokenizer.ggml.*``), so ``lmhead topk
gpt2-tied.gguf hidden.npy --text ...`` needs nothing else. The rules are those of
``convert_hf_to_gguf.py`` (llama.cpp ``conversion/gpt2.py`` and ``get_vocab_base``): tensor names
from gguf's map, the Conv1D matrices transposed, 1-D tensors in F32, the GPT-2 metadata keys, tokens
in id order with the special added token as CONTROL, merges as "a b", ``tokenizer.ggml.pre`` "gpt-2"
(the sample tokenizer splits with GPT-2's own pattern). Weights stay F32, so lmhead's predictions
from the GGUF equal those from the safetensors checkpoint.

Regenerate (after ``make_samples.py``)::

    python sample_weights/make_gguf_sample.py
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "gpt2-tied"
TARGET = HERE / "gpt2-tied.gguf"
CONV1D = (".c_attn.weight", ".c_proj.weight", ".c_fc.weight")


def main(target: Path = TARGET) -> None:
    config = json.loads((SOURCE / "config.json").read_text())
    tokenizer = json.loads((SOURCE / "tokenizer.json").read_text())
    weights = load_file(str(SOURCE / "model.safetensors"))
    writer = gguf.GGUFWriter(str(target), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.GPT2])
    writer.add_name("gpt2-tied")
    writer.add_block_count(config["n_layer"])
    writer.add_context_length(config["n_positions"])
    writer.add_embedding_length(config["n_embd"])
    writer.add_feed_forward_length(4 * config["n_embd"])
    writer.add_head_count(config["n_head"])
    writer.add_layer_norm_eps(config["layer_norm_epsilon"])
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    vocab = dict(tokenizer["model"]["vocab"])
    added = {t["id"]: t for t in tokenizer["added_tokens"]}
    vocab.update({t["content"]: t["id"] for t in added.values()})
    by_id = {i: t for t, i in vocab.items()}
    tokens = [by_id[i] for i in range(len(by_id))]
    types = [
        (gguf.TokenType.CONTROL if added[i]["special"] else gguf.TokenType.USER_DEFINED) if i in added else gguf.TokenType.NORMAL
        for i in range(len(tokens))
    ]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"]["merges"]])
    writer.add_bos_token_id(config["bos_token_id"])
    writer.add_eos_token_id(config["eos_token_id"])

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GPT2, config["n_layer"])
    for hf_name in sorted(weights):
        array = weights[hf_name]
        if hf_name.endswith(CONV1D):
            array = np.ascontiguousarray(array.T)
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        assert name is not None, hf_name
        writer.add_tensor(name, array.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {target} ({target.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
