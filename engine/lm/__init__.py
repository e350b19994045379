"""Language-model runtime: where models come from, how they are loaded and sampled."""
