"""Architecture conventions: the one table of who-is-who in each model family.

Names, norm kinds, epsilon keys and defaults, tying defaults and logit
transforms, as transformers' modeling and configuration code defines them
(checked against the reference fixtures in ``tests/fixtures/reference``).
Names are relative to the language model's root, exactly as
``save_pretrained`` writes them for the ``*ForCausalLM`` class.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

LAYERNORM = "layernorm"  # (x - mean) / sqrt(var + eps) · w + b  (w, b optional)
RMSNORM = "rmsnorm"  # x / sqrt(mean(x²) + eps) · w
GEMMA_RMSNORM = "gemma_rmsnorm"  # x / sqrt(mean(x²) + eps) · (1 + w)


@dataclass(frozen=True)
class Transform:
    """An elementwise step between the head matmul and the returned logits."""

    kind: str  # "softcap": c·tanh(x/c); "scale": x·s; "divide": x/s
    key: str  # config key holding the value
    default: float | None  # the config class's default when the key is absent; None: off


@dataclass(frozen=True)
class Convention:
    family: str
    embedding: tuple[str, ...] = ("model.embed_tokens.weight",)
    head: tuple[str, ...] = ("lm_head.weight",)
    head_bias: tuple[str, ...] = ()
    final_norm: tuple[str, ...] = ("model.norm",)  # module paths; ".weight"/".bias" appended
    norm: str = RMSNORM
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


LLAMA = Convention(family="llama")
GPT2 = Convention(
    family="gpt2",
    embedding=("transformer.wte.weight",),
    final_norm=("transformer.ln_f",),
    norm=LAYERNORM,
    eps_keys=("layer_norm_epsilon",),
    eps_default=1e-5,
    tie_default=True,
)

BLOOM = Convention(
    family="bloom",
    embedding=("transformer.word_embeddings.weight",),
    final_norm=("transformer.ln_f",),
    norm=LAYERNORM,
    eps_keys=("layer_norm_epsilon",),
    eps_default=1e-5,
    tie_default=True,
)

CONVENTIONS: dict[str, Convention] = {
    "gpt2": GPT2,
    "gpt_bigcode": replace(GPT2, family="gpt_bigcode"),
    "gptj": replace(GPT2, family="gptj", head_bias=("lm_head.bias",), tie_default=False),
    "gpt_neox": Convention(
        family="gpt_neox",
        embedding=("gpt_neox.embed_in.weight",),
        head=("embed_out.weight",),
        final_norm=("gpt_neox.final_layer_norm",),
        norm=LAYERNORM,
        eps_keys=("layer_norm_eps",),
        eps_default=1e-5,
    ),
    "opt": Convention(
        family="opt",
        embedding=("model.decoder.embed_tokens.weight",),
        final_norm=("model.decoder.final_layer_norm",),  # absent when do_layer_norm_before=False (OPT-350m)
        projection=("model.decoder.project_out.weight",),  # when word_embed_proj_dim != hidden_size
        norm=LAYERNORM,
        eps_keys=(),  # nn.LayerNorm's default, not configurable
        eps_default=1e-5,
        tie_default=True,
    ),
    "bloom": BLOOM,
    "falcon": replace(BLOOM, family="falcon"),
    "mpt": replace(GPT2, family="mpt", final_norm=("transformer.norm_f",)),  # LayerNorm without bias
    "llama": LLAMA,
    "mistral": replace(LLAMA, family="mistral"),
    "mixtral": replace(LLAMA, family="mixtral", eps_default=1e-5),
    "qwen2": replace(LLAMA, family="qwen2"),
    "qwen2_moe": replace(LLAMA, family="qwen2_moe"),
    "qwen3": replace(LLAMA, family="qwen3"),
    "qwen3_moe": replace(LLAMA, family="qwen3_moe"),
    "phi3": replace(LLAMA, family="phi3", eps_default=1e-5),
    "olmo2": replace(LLAMA, family="olmo2", eps_default=1e-5),
    "olmo3": replace(LLAMA, family="olmo3", eps_default=1e-5),
    "deepseek_v2": replace(LLAMA, family="deepseek_v2"),
    "deepseek_v3": replace(LLAMA, family="deepseek_v3"),
    "starcoder2": replace(LLAMA, family="starcoder2", norm=LAYERNORM, eps_keys=("norm_epsilon",), eps_default=1e-5, tie_default=True),
    "granite": replace(LLAMA, family="granite", transforms=(Transform("divide", "logits_scaling", 1.0),)),
    "granitemoe": replace(LLAMA, family="granitemoe", transforms=(Transform("divide", "logits_scaling", 1.0),)),
    "gemma": replace(LLAMA, family="gemma", norm=GEMMA_RMSNORM, tie_default=True),
    "gemma2": replace(
        LLAMA,
        family="gemma2",
        norm=GEMMA_RMSNORM,
        tie_default=True,
        transforms=(Transform("softcap", "final_logit_softcapping", 30.0),),
    ),
    "gemma3_text": replace(
        LLAMA,
        family="gemma3_text",
        norm=GEMMA_RMSNORM,
        tie_default=True,
        transforms=(Transform("softcap", "final_logit_softcapping", None),),
    ),
    "phi": Convention(
        family="phi",
        head_bias=("lm_head.bias",),
        final_norm=("model.final_layernorm",),
        norm=LAYERNORM,
        eps_keys=("layer_norm_eps",),
        eps_default=1e-5,
    ),
    "stablelm": replace(LLAMA, family="stablelm", norm=LAYERNORM, eps_keys=("layer_norm_eps",), eps_default=1e-5),
    # OLMo's final LayerNorm has no weight and no bias; its eps is fixed in code.
    "olmo": replace(LLAMA, family="olmo", norm=LAYERNORM, eps_keys=(), eps_default=1e-5, parameterless_norm=True),
    "cohere": replace(
        LLAMA,
        family="cohere",
        norm=LAYERNORM,
        eps_keys=("layer_norm_eps",),
        eps_default=1e-5,
        tie_default=True,
        transforms=(Transform("scale", "logit_scale", 0.0625),),
    ),
    "cohere2": replace(
        LLAMA,
        family="cohere2",
        norm=LAYERNORM,
        eps_keys=("layer_norm_eps",),
        eps_default=1e-5,
        tie_default=True,
        transforms=(Transform("scale", "logit_scale", 0.0625),),
    ),
    "mamba": Convention(
        family="mamba",
        embedding=("backbone.embeddings.weight",),
        final_norm=("backbone.norm_f",),
        eps_keys=("layer_norm_epsilon",),
        eps_default=1e-5,
        tie_default=True,
    ),
    "mamba2": Convention(
        family="mamba2",
        embedding=("backbone.embeddings.weight",),
        final_norm=("backbone.norm_f",),
        eps_keys=("layer_norm_epsilon",),
        eps_default=1e-5,
        tie_default=True,
    ),
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

# Tensors that are buffers, not parameters: transformers does not count them.
BUFFER_PATTERNS = (
    r"\.attn\.bias$",  # GPT-2 / GPT-J causal mask
    r"\.attn\.masked_bias$",
    r"\.attention\.bias$",  # GPT-NeoX causal mask
    r"\.attention\.masked_bias$",
    r"rotary_emb\.inv_freq$",
    r"\.position_ids$",
    r"\.e_score_correction_bias$",  # DeepSeek-V3 router bias
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
