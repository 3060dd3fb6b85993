"""Operator tooling: the `appointments` command (tools.cli), the `appointments run` supervisor
(tools.runner; its children in tools.children, their supervision in tools.supervision), the
demo seed (tools.demo) and the kept plaintext keys (tools.key_store).

The top layer: tools may import `services` and `shared`; neither of them imports tools.
"""
