"""What a path is (file, folder, index, cache id, hf:// repo) and the ``Checkpoint`` it opens to.

A ``Checkpoint`` holds one reader per weight file, the logical tensors
(quantized modules grouped into one weight), the config and tokenizer files,
and reads any tensor's rows as float32. It never asks which format a file is:
that was settled when it was opened. Value comparison of two tensors lives
here too (``compare``), since it reads nothing but stored bytes.

Layer rule: imports only core, formats, quant.
"""
