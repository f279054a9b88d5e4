"""torchlint: a linter for PyTorch code (nn.Module pitfalls, training loops, devices)."""

__version__ = "0.1.0"
