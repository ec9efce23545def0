"""Signature matching: the built-in bundle, normalisation and the linear-time engine."""
