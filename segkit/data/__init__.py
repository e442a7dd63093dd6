"""Image IO, pairing by stem, and (in ``pipeline``) the tf.data input pipeline."""
