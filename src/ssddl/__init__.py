"""ssddl: privacy-preserving distributed deep learning based on secret sharing."""

__version__ = "0.1.0"
