"""r1-distill: turn a reasoning teacher into small local reasoning models."""

__version__ = "0.1.0"
