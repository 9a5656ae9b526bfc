"""Attacks that test SSDDL's privacy claims against what the server and its colluders see.

Research code, apart from the core: the protocol never imports it (a layer test checks).
"""
