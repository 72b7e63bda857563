"""Backbone registry: name → keras.applications constructor, preprocessing, sizes, Grad-CAM layer.

Adding another ``keras.applications`` backbone is one entry in :data:`BACKBONES` plus a params section.
Keras is imported lazily so that the data stages, which only validate names, start fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Per-channel constants of keras.applications' preprocess_input modes (RGB order).
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Backbone:
    """How to build and feed one ImageNet backbone.

    Attributes:
        name: Registry key, also the params.yaml section name.
        application: Constructor name in ``keras.applications``.
        module: Sub-module of ``keras.applications`` holding its ``preprocess_input``.
        preprocess: ``preprocess_input`` mode: ``tf`` ([-1, 1]), ``caffe`` (BGR, mean-subtracted),
            ``torch`` (ImageNet mean/std) or ``none`` (the backbone rescales itself).
        default_size: Native ImageNet input size in pixels.
        min_size: Smallest input size the architecture accepts.
        last_conv_layer: Output layer of the last convolutional block, used by Grad-CAM.
        he_init: Re-draw kernels from He-normal when training without pretrained weights. Needed where
            BatchNorm (at identity statistics in inference mode) cannot stop Keras' Glorot init from
            vanishing the signal; plain VGG keeps usable Glorot features and heavy-tailed He ones.

    """

    name: str
    application: str
    module: str
    preprocess: str
    default_size: int
    min_size: int
    last_conv_layer: str
    he_init: bool = True

    def constructor(self) -> Any:
        """Return the ``keras.applications`` constructor."""
        import keras

        return getattr(keras.applications, self.application)

    def preprocess_input(self) -> Any:
        """Return Keras' own ``preprocess_input`` for this backbone (the reference for our layers)."""
        import keras

        return getattr(keras.applications, self.module).preprocess_input


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone("mobilenet", "MobileNet", "mobilenet", "tf", 224, 32, "conv_pw_13_relu"),
        Backbone("vgg19", "VGG19", "vgg19", "caffe", 224, 32, "block5_conv4", he_init=False),
        Backbone("inceptionv3", "InceptionV3", "inception_v3", "tf", 299, 75, "mixed10"),
        Backbone("resnet50", "ResNet50", "resnet50", "caffe", 224, 32, "conv5_block3_out"),
        Backbone("densenet121", "DenseNet121", "densenet", "torch", 224, 32, "relu"),
        Backbone("efficientnetb0", "EfficientNetB0", "efficientnet", "none", 224, 32, "top_activation"),
    )
}


def get_backbone(name: str) -> Backbone:
    """Look a backbone up by name.

    Args:
        name: Registry key such as ``mobilenet``.

    Returns:
        The registry entry.

    Raises:
        KeyError: If the name is not registered (config validation reports this to users first).

    """
    return BACKBONES[name]


def preprocessing_layers(spec: Backbone) -> list[Any]:
    """Build ``spec``'s ``preprocess_input`` from built-in Keras layers only.

    Built-in layers (no Lambda, no custom class) keep saved models loadable in safe mode in a process
    that imports nothing but Keras.

    Args:
        spec: The backbone.

    Returns:
        Layers to apply in order to float RGB pixels in [0, 255].

    """
    import keras
    import numpy as np

    layers = keras.layers
    if spec.preprocess == "tf":
        return [layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess_tf")]
    if spec.preprocess == "caffe":
        # A fixed Dense on the channel axis: reverse RGB→BGR with a permutation matrix and subtract the
        # ImageNet BGR means as its bias — exactly keras.applications' caffe mode.
        swap = np.eye(3, dtype="float32")[::-1]
        dense = layers.Dense(3, name="preprocess_caffe", trainable=False)
        dense.build((None, 3))
        dense.set_weights([swap, -np.asarray(_CAFFE_BGR_MEAN, dtype="float32")])
        return [dense]
    if spec.preprocess == "torch":
        return [
            layers.Rescaling(1.0 / 255.0, name="preprocess_scale"),
            layers.Normalization(mean=list(_TORCH_MEAN), variance=[s * s for s in _TORCH_STD], name="preprocess_torch"),
        ]
    if spec.preprocess == "none":
        return []
    raise ValueError(f"unknown preprocess mode {spec.preprocess!r} in registry entry {spec.name}")
