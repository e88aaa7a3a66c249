"""gan-aug: GAN data augmentation and synthesis for dermoscopic skin-lesion images."""

__version__ = "0.1.0"
