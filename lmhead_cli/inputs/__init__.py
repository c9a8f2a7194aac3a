"""What the user brings besides the weights: hidden-state files and the tokenizer (tokenizer.json or GGUF metadata).

Layer rule: imports only core, formats, quant, checkpoint, model.
"""
