"""Nuclei as objects: instancing, measuring, writing and scoring them (TensorFlow-free)."""
