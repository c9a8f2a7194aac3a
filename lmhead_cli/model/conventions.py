"""Architecture conventions: the one table of who-is-who in each model family.

Names, norm kinds, epsilon keys and defaults, tying defaults, logit transforms
and stored buffers. Most entries are generated from transformers itself into
``families.py`` (by ``tests/fixtures/make_families.py``, each checked by a
fixture in ``tests/fixtures/families``); the entries written here by hand cover
what the generator cannot build or see (T5's decoder side, the text halves of
vision-language models, OPT-350m's projection, GGUF), checked against the
fixtures in ``tests/fixtures/reference``. Names are relative to the language
model's root, exactly as ``save_pretrained`` writes them for the class the
causal-LM auto mapping names.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from .families import FAMILIES


class NormKind(StrEnum):
    """What the final norm computes, over the last axis of h."""

    LAYERNORM = "layernorm"  # (h - mean) / sqrt(var + eps) · w + b  (w, b as stored)
    RMSNORM = "rmsnorm"  # h / sqrt(mean(h²) + eps) · w
    RMSNORM_1P = "rmsnorm-1p"  # h / sqrt(mean(h²) + eps) · (1 + w): Gemma, Qwen3-Next, VaultGemma (w sits near 0)
    LAYERNORM_1P = "layernorm-1p"  # LayerNorm with (1 + w), with bias: Nemotron's LayerNorm1P
    LAYERNORM_UNWEIGHTED = "layernorm-unweighted"  # no learned weight or bias (OLMo)
    RMSNORM_UNWEIGHTED = "rmsnorm-unweighted"  # no learned weight (nanochat)
    NONE = "none"  # the last block's output feeds the head (GPT-1, post-LN decoders)

    @property
    def weighted(self) -> bool:
        return self in (NormKind.LAYERNORM, NormKind.RMSNORM, NormKind.RMSNORM_1P, NormKind.LAYERNORM_1P)

    @property
    def centred(self) -> bool:
        return self in (NormKind.LAYERNORM, NormKind.LAYERNORM_1P, NormKind.LAYERNORM_UNWEIGHTED)

    @property
    def one_plus(self) -> bool:
        return self in (NormKind.RMSNORM_1P, NormKind.LAYERNORM_1P)


class TransformKind(StrEnum):
    """An elementwise step around the head matmul; the value comes from a config key."""

    SOFTCAP = "softcap"  # logits → c · tanh(logits / c)  (Gemma 2/3/3n, nanochat)
    MULTIPLY = "multiply"  # logits → logits · s  (Cohere logit_scale, Falcon-H1 lm_head_multiplier)
    DIVIDE = "divide"  # logits → logits / s  (Granite logits_scaling)
    PRE_MULTIPLY = "pre-multiply"  # h → h · s before the head
    PRE_DIVIDE = "pre-divide"  # h → h / s before the head
    PRE_WIDTH_RATIO = "pre-width-ratio"  # h → h · s / hidden_size before the head (MiniCPM's dim_model_base)

    @property
    def before_head(self) -> bool:
        return self.value.startswith("pre-")

    @property
    def noun(self) -> str:
        """What its value is called in messages: a softcap, a scale (multipliers), a divide (divisors)."""
        return {"multiply": "scale", "pre-multiply": "scale", "pre-width-ratio": "scale", "pre-divide": "divide"}.get(
            self.value, self.value
        )


LAYERNORM = NormKind.LAYERNORM
RMSNORM = NormKind.RMSNORM
GEMMA_RMSNORM = NormKind.RMSNORM_1P


@dataclass(frozen=True)
class Transform:
    """An elementwise step between the head matmul and the returned logits (or before the head)."""

    kind: TransformKind
    key: str  # config key holding the value
    default: float | None  # the config class's default when the key is absent; None: off


@dataclass(frozen=True)
class Convention:
    family: str
    embedding: tuple[str, ...] = ("model.embed_tokens.weight",)
    head: tuple[str, ...] = ("lm_head.weight",)
    head_bias: tuple[str, ...] = ()
    final_norm: tuple[str, ...] = ("model.norm",)  # module paths; ".weight"/".bias" appended
    norm: NormKind = NormKind.RMSNORM
    eps_keys: tuple[str, ...] = ("rms_norm_eps",)
    eps_default: float = 1e-6
    tie_default: bool = False
    transforms: tuple[Transform, ...] = ()
    rescale_when_tied: bool = False  # T5: hidden · d_model^-0.5 before a tied head
    # T5 as saved by transformers 5: this key decides the rescale, tie_word_embeddings is always
    # true, and a stored head that differs from the embedding unties them (storage decides).
    rescale_key: str | None = None
    aliases: tuple[str, ...] = ()  # tensors that are always the embedding matrix itself
    other_prefixes: tuple[str, ...] = ()  # blocks under these prefixes are not the decoder's (T5 encoder)
    projection: tuple[str, ...] = ()  # a (proj, hidden) matrix between the final norm and the head (OPT-350m)
    parameterless_norm: bool = False  # the final norm exists even with no tensors stored (OLMo)
    buffers: tuple[str, ...] = ()  # patterns of stored tensors that are buffers, not parameters
    source: str = "hand-verified"  # "generated" (families.py, checked by a fixture) or "hand-verified"


LLAMA = Convention(family="llama")

# Written by hand: what make_families.py does not build (T5 is an encoder-decoder, outside the causal-LM
# mapping; checked by tests/fixtures/reference/t5*). Generated entries (families.py) are added by
# ``convention`` when first asked for; no hand-written type is also a generated one (tests/test_families.py).
CONVENTIONS: dict[str, Convention] = {
    "t5": Convention(
        family="t5",
        embedding=("shared.weight", "decoder.embed_tokens.weight"),
        final_norm=("decoder.final_layer_norm",),
        eps_keys=("layer_norm_epsilon",),
        eps_default=1e-6,
        tie_default=True,
        rescale_when_tied=True,
        rescale_key="scale_decoder_outputs",
        aliases=("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"),
        other_prefixes=("encoder.",),
    ),
}
CONVENTIONS["mt5"] = replace(CONVENTIONS["t5"], family="mt5", tie_default=False)
# The text halves of vision-language models, as their nested configs name them.
CONVENTIONS["qwen2_vl_text"] = replace(LLAMA, family="qwen2_vl_text")
CONVENTIONS["qwen2_5_vl_text"] = replace(LLAMA, family="qwen2_5_vl_text")
CONVENTIONS["qwen3_vl_text"] = replace(LLAMA, family="qwen3_vl_text")
CONVENTIONS["qwen3_vl_moe_text"] = replace(LLAMA, family="qwen3_vl_moe_text")
CONVENTIONS["umt5"] = replace(CONVENTIONS["t5"], family="umt5")


def _generated(model_type: str, entry: dict[str, Any]) -> Convention:
    """One entry of the generated table (families.py) as a Convention; an unknown kind fails loudly."""
    norm = NormKind(entry["norm"])
    steps = tuple(Transform(TransformKind(kind), key, default) for kind, key, default in (*entry["pre_head"], *entry["transforms"]))
    final = entry["final_norm"]
    return Convention(
        family=model_type,
        embedding=(entry["embedding"],),
        head=(entry["head"],),
        head_bias=(entry["head_bias"],) if entry["head_bias"] else (),
        final_norm=(final,) if final else (),
        norm=norm,
        eps_keys=(entry["eps_key"],) if entry["eps_key"] else (),
        eps_default=entry["eps_default"] if entry["eps_default"] is not None else 1e-5,
        tie_default=entry["tie_default"],
        transforms=steps,
        parameterless_norm=norm in (NormKind.LAYERNORM_UNWEIGHTED, NormKind.RMSNORM_UNWEIGHTED),
        buffers=tuple(entry["buffers"]),
        source="generated",
    )


# What the generator cannot see, kept by hand on top of its entries.
PATCHES: dict[str, dict[str, Any]] = {
    # OPT-350m: project_out (word_embed_proj_dim != hidden_size) between the final norm and the head
    # (modeling_opt.py, OPTDecoder.forward); tests/fixtures/projected checks it.
    "opt": {"projection": ("model.decoder.project_out.weight",)},
}


# GGUF files follow llama.cpp's conventions: see gguf_conventions.py.


# Class names in config.json's "architectures" whose model_type may be missing.
ARCHITECTURE_TYPES = {
    "GPT2LMHeadModel": "gpt2",
    "GPTJForCausalLM": "gptj",
    "GPTNeoXForCausalLM": "gpt_neox",
    "OPTForCausalLM": "opt",
    "BloomForCausalLM": "bloom",
    "FalconForCausalLM": "falcon",
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "MixtralForCausalLM": "mixtral",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "GemmaForCausalLM": "gemma",
    "Gemma2ForCausalLM": "gemma2",
    "Gemma3ForCausalLM": "gemma3_text",
    "PhiForCausalLM": "phi",
    "Phi3ForCausalLM": "phi3",
    "StableLmForCausalLM": "stablelm",
    "OlmoForCausalLM": "olmo",
    "Olmo2ForCausalLM": "olmo2",
    "CohereForCausalLM": "cohere",
    "GraniteForCausalLM": "granite",
    "MambaForCausalLM": "mamba",
    "GPTBigCodeForCausalLM": "gpt_bigcode",
    "MptForCausalLM": "mpt",
    "DeepseekV2ForCausalLM": "deepseek_v2",
    "DeepseekV3ForCausalLM": "deepseek_v3",
    "T5ForConditionalGeneration": "t5",
}

for _type, _entry in FAMILIES.items():
    ARCHITECTURE_TYPES.setdefault(_entry["class"], _type)


def convention(model_type: str) -> Convention | None:
    """The table's entry for ``model_type``, or None. Generated entries become Conventions on first
    use: building all of them at import cost every command a few milliseconds of start-up."""
    found = CONVENTIONS.get(model_type)
    if found is None and model_type in FAMILIES:
        found = CONVENTIONS[model_type] = replace(_generated(model_type, FAMILIES[model_type]), **PATCHES.get(model_type, {}))
    return found


# Tensors that are buffers, not parameters: transformers does not count them.
BUFFER_PATTERNS = (
    r"\.attn\.bias$",  # GPT-2 / GPT-J causal mask
    r"\.attn\.masked_bias$",
    r"\.attention\.bias$",  # GPT-NeoX causal mask
    r"\.attention\.masked_bias$",
    r"rotary_emb\.inv_freq$",
    r"\.position_ids$",
    r"(^|\.)e_score_correction_bias$",  # DeepSeek-V3-style router bias (load balancing, not trained): a buffer
    r"(^|[._])expert_bias$",  # the same role under other names (LFM2-MoE, Kolibri, ...): registered as buffers
    r"(^|[._])router_bias$",
    r"^rope_(freqs|factors_long|factors_short)\.weight$",  # GGUF: RoPE frequencies precomputed from the config
)

# Fallback when no table entry fits: name patterns, most specific first.
EMBEDDING_PATTERNS = (
    r"(^|\.)embed_tokens\.weight$",
    r"(^|\.)wte\.weight$",
    r"(^|\.)word_embeddings\.weight$",
    r"(^|\.)embed_in\.weight$",
    r"(^|\.)tok_embeddings\.weight$",
    r"(^|\.)token_embd\.weight$",
    r"(^|\.)embeddings\.weight$",
    r"(^|\.)shared\.weight$",
)
HEAD_PATTERNS = (
    r"(^|\.)lm_head\.weight$",
    r"(^|\.)embed_out\.weight$",
    r"(^|\.)output\.weight$",
    r"(^|\.)head\.weight$",
)
NORM_PATTERNS = (r"(^|\.)(norm|ln_f|final_layer_norm|final_layernorm|norm_f|output_norm|final_norm)\.weight$",)
EPS_KEYS = ("rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon", "norm_eps", "norm_epsilon")
BLOCK_PATTERN = r"(?:^|\.)(?:layers|h|blocks|block|layer|blk)\.(\d+)\."  # blk: GGUF


# ---------------------------------------------------------------- wrapped (vision-language) models


@dataclass(frozen=True)
class Wrapper:
    """A model that nests its language model's config (transformers 5.24's behaviour, checked
    against tests/fixtures/wrapped/tie_matrix.json)."""

    family: str
    tie_default: bool  # the top-level default when tie_word_embeddings is absent
    text_tie_wins: bool = False  # the config class copies a true text_config flag to the top level
    applies_text_transforms: bool = False  # the wrapper applies the text model's softcap / scaling


WRAPPERS: dict[str, Wrapper] = {
    "llava": Wrapper("llava", tie_default=False, text_tie_wins=True),
    "llava_onevision": Wrapper("llava_onevision", tie_default=False, text_tie_wins=True),
    "llava_next": Wrapper("llava_next", tie_default=False),
    "llava_next_video": Wrapper("llava_next_video", tie_default=False),
    "mistral3": Wrapper("mistral3", tie_default=True),  # true since transformers PR 43429
    "gemma3": Wrapper("gemma3", tie_default=True),  # Gemma3ForConditionalGeneration ignores the text softcap
    "paligemma": Wrapper("paligemma", tie_default=True, applies_text_transforms=True),
    "qwen2_vl": Wrapper("qwen2_vl", tie_default=False, text_tie_wins=True),
    "qwen2_5_vl": Wrapper("qwen2_5_vl", tie_default=False, text_tie_wins=True),
    "qwen3_vl": Wrapper("qwen3_vl", tie_default=False),
    "qwen3_vl_moe": Wrapper("qwen3_vl_moe", tie_default=False),
}
NESTED_CONFIG_KEYS = ("text_config", "language_config", "llm_config")

# Where a wrapper saves its language model, as a rewrite of the *ForCausalLM names.
LAYOUTS = (
    ("", ""),  # as a plain decoder (Qwen2-VL saves model.*, lm_head.weight)
    ("", "language_model."),  # language_model.model.*, language_model.lm_head.weight (Llava, Mistral3, Gemma3, PaliGemma)
    ("model.", "model.language_model."),  # model.language_model.*, lm_head.weight (Qwen3-VL, transformers 5 layout)
)

# Parts of a multimodal checkpoint that are not the language model (projectors are checked first:
# Qwen's merger lives under the vision tower's prefix).
PROJECTOR_PREFIXES = (
    "multi_modal_projector.",
    "model.multi_modal_projector.",
    "visual.merger.",
    "model.visual.merger.",
    "visual.deepstack_merger_list.",
    "model.visual.deepstack_merger_list.",
    "mm_projector.",
    "model.mm_projector.",
    "connector.",
    "model.connector.",
    "mlp1.",
)
VISION_PREFIXES = (
    "vision_tower.",
    "model.vision_tower.",
    "visual.",
    "model.visual.",
    "vision_model.",
    "model.vision_model.",
    "vision_encoder.",
    "model.vision_encoder.",
)
