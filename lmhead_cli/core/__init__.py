"""The leaves every layer uses: errors, problems, dtypes, escaping, safe file access, lazy exports.

Layer rule: imports nothing of lmhead.
"""
