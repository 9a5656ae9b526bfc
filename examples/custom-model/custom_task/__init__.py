"""An example of your own model, data and loss for ``ssddl simulate`` (see README.md)."""
