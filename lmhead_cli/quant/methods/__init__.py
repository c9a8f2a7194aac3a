"""One module per quantization method, each defining ``METHOD``: its ``QuantMethod`` (see ``base``).

They are registered in ``..registry.TABLE`` and loaded only for a checkpoint that may be quantized.
"""
