"""Student models: presets, construction and loading, training."""
