"""An encoder with a projection head for contrastive training and a linear probe."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from explainaug.models.adapt import last_linear, replace_module


class ContrastiveModel(nn.Module):
    """Encoder -> L2-normalised projection (for SupCon/ExCon) plus a linear classifier.

    ``forward(x)`` returns class logits through encoder and classifier with gradients flowing
    into the encoder, so explainers and evaluators see one ordinary classifier.
    ``classify(h)`` applies the classifier to *detached* features: the online linear probe
    trains without changing the encoder.

    ``encoder`` maps images ``[B, C, H, W]`` to features ``[B, feat_dim]``; ``proj_dim`` is 128
    in SupCon/ExCon. Its CAM layer is its encoder's default (``explain.layers.cam_layer``); the encoder's own layer
    names work on the wrapper (``"block3"`` for ``"encoder.block3"``).

    Example:
        >>> from explainaug.models import resnet18
        >>> model = ContrastiveModel(resnet18(None, width=8), 64, num_classes=10)
        >>> model.project(model.features(torch.zeros(2, 3, 32, 32))).shape
        torch.Size([2, 128])
    """

    def __init__(
        self,
        encoder: nn.Module,
        feat_dim: int,
        proj_dim: int = 128,
        num_classes: int = 100,
    ) -> None:
        super().__init__()
        # what the encoder outputs: timm's head_hidden_size where a head layer follows pooling
        known = getattr(encoder, "head_hidden_size", None) or getattr(encoder, "num_features", None)
        if isinstance(known, int) and known != feat_dim:
            raise ValueError(
                f"feat_dim={feat_dim} but the encoder {type(encoder).__name__} gives {known} features"
            )
        self.encoder = encoder
        self.head = nn.Sequential(
            nn.Linear(feat_dim, feat_dim), nn.ReLU(), nn.Linear(feat_dim, proj_dim)
        )
        self.classifier = nn.Linear(feat_dim, num_classes)

    @classmethod
    def from_classifier(cls, model: nn.Module, proj_dim: int = 128) -> ContrastiveModel:
        """Wrap a plain classifier: its classification head (timm's ``get_classifier()``, else
        its last ``nn.Linear``) becomes the linear probe and is replaced by ``nn.Identity`` in
        ``model`` (in place), which becomes the encoder; a projection head is added. A
        ``model_spec`` (``build_model``'s) carries over as the spec of the contrastive build, so
        ``rebuild_model`` rebuilds the wrapped model.

        Example:
            >>> import torchvision
            >>> wrapped = ContrastiveModel.from_classifier(torchvision.models.resnet18(num_classes=3))
            >>> wrapped.features(torch.rand(2, 3, 32, 32)).shape, wrapped.classifier.out_features
            (torch.Size([2, 512]), 3)
        """
        head = replace_module(model, last_linear(model), nn.Identity())
        wrapped = cls(model, head.in_features, proj_dim, num_classes=head.out_features)
        wrapped.classifier = head
        spec = getattr(model, "model_spec", None)
        if spec is not None:  # built by build_model: the wrapped model is its contrastive build
            wrapped.model_spec = {**spec, "contrastive": True, "proj_dim": proj_dim}
        return wrapped

    def features(self, x: Tensor) -> Tensor:
        """Encoder features ``[B, feat_dim]``."""
        return self.encoder(x)

    def project(self, features: Tensor) -> Tensor:
        """Unit-norm projections ``[B, proj_dim]`` of encoder features."""
        return F.normalize(self.head(features), dim=1)

    def classify(self, features: Tensor) -> Tensor:
        """Logits of the linear probe on detached features (no gradient reaches the encoder)."""
        return self.classifier(features.detach())

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.encoder(x))
