"""Importers for checkpoints written by the original research code and by torchvision."""
