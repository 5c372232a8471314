"""The conformance suite: decides whether an implementation's gradients conform to torch.autograd."""

__version__ = "0.1.0"
