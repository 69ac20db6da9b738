"""spatialvlm: metric spatial reasoning data, training and evaluation for vision-language models."""

__version__ = "0.1.0"
