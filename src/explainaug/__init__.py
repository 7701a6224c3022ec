"""explainaug: explanation-aware training of image classifiers in PyTorch.

Example:
    >>> import explainaug as xa
    >>> model = xa.models.SmallCNN(num_classes=4, width=8).eval()
    >>> xa.explain.GradCAM(model, layer="block3")(torch.rand(2, 3, 32, 32)).shape
    torch.Size([2, 1, 32, 32])
"""

from explainaug import augment, data, evaluate, explain, losses, models, train

__version__ = "0.1.0"
__all__ = ["augment", "data", "evaluate", "explain", "losses", "models", "train", "__version__"]
