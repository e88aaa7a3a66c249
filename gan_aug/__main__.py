"""`python -m gan_aug` (and `torchrun ... -m gan_aug`): the gan-aug command line."""

from gan_aug.cli import main

main()
