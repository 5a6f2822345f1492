"""The image path: one module per stage (Luigi task + its TensorFlow work())."""
