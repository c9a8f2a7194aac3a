"""The head's math: final norm, streamed projection, transforms, running top-k and log-sum-exp, predictions.

Layer rule: imports only core, formats, quant, checkpoint, model, inputs.
"""
