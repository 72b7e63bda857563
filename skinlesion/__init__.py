"""skinlesion: dermoscopic skin-lesion classification by transfer learning, as a DVC pipeline."""

__version__ = "0.1.0"
