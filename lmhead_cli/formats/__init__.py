"""On-disk formats. Each module lists tensors from headers and reads row ranges.

A reader has the same small interface whatever the format:

- ``tensors``: list of ``TensorInfo`` read from the header only;
- ``read_rows(info, start, stop)``: rows ``start:stop`` of a tensor's first axis
  as a float32 array (only those bytes are read from disk);
- ``read_raw_rows(info, start, stop)``: the same rows as stored, for byte
  comparison (``None`` when the format cannot give them cheaply).
"""
