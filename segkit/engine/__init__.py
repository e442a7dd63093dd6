"""The parts of segkit that run TensorFlow: training, evaluation, inference. Imported lazily."""
