"""On-disk formats: one module per format, each implementing ``base.Reader``.

``base`` defines the protocol, ``TensorInfo`` and the ``Format`` names, and
says how to add a format. Tensors come from headers, raw bytes by range;
roles, configs and architectures are unknown here. ``checkpoint/`` chooses a
reader for each file and assembles them.

Layer rule: imports only core.
"""
