"""The module layer: ``Module`` with ``params``/``grads`` dicts and thin wrappers that call ops."""
