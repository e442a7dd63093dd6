"""Whole-slide images: readers, tissue, tile grids and pyramids (TensorFlow-free)."""
