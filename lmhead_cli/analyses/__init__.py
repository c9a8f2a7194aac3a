"""What lmhead concludes about a checkpoint: parameter census, tying verdict, vocabulary audit, doctor's report.

Each analysis returns a frozen dataclass of numbers, enums and ``Problem``s;
``render/`` turns it into text. A new analysis goes here, as one module.

Layer rule: imports only core, formats, quant, checkpoint, model, inputs, logits.
"""
