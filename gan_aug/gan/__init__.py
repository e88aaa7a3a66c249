"""Class-conditional GANs: networks, losses, augmentation, EMA, checkpoints and the training loop."""
