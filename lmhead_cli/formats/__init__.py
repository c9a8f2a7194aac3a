"""On-disk formats: one module per format, each implementing ``base.Reader``.

``base`` defines the protocol, ``TensorInfo`` and the ``Format`` names, and
says how to add a format. Modules here import nothing from the rest of the
package but ``errors``; ``checkpoint.py`` chooses a reader and assembles them.
"""
