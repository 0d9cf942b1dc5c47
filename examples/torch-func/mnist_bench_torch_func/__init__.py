"""A functional PyTorch implementation of the mnist-bench model (torch.func), as a plug-in."""
