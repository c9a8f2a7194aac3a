"""Architecture knowledge and how it applies to one checkpoint.

``conventions`` (over the generated ``families`` table) and
``gguf_conventions`` say, per architecture, where the embedding, head and
final norm are and which logit transforms follow; ``anatomy.locate_head``
applies them (or name patterns, or the user's overrides) to a checkpoint and
returns a ``HeadAnatomy`` whose every field says where it came from.

Layer rule: imports only core, formats, quant, checkpoint.
"""
