"""The registry of GAN architectures: name -> generator and discriminator classes and their sizes."""

import dataclasses

from gan_aug.gan import dcgan, stylegan_lite


@dataclasses.dataclass(frozen=True)
class Architecture:
    generator: type
    discriminator: type
    sizes: tuple  # supported image sides


NETWORKS = {}


def register(name, architecture):
    assert name not in NETWORKS, f"network {name} registered twice"
    NETWORKS[name] = architecture


def model_args(arch, img_size, n_classes, z_dim, g_channels, d_channels, mbstd_group=0):
    """The primitives a checkpoint stores to rebuild its networks."""
    args = {"arch": arch, "img_size": img_size, "n_classes": n_classes, "z_dim": z_dim,
            "g_channels": g_channels, "d_channels": d_channels}
    if mbstd_group:  # only when on: runs from before the option still resume (resume compares model_args)
        args["mbstd_group"] = mbstd_group
    return args


def build_networks(args):
    """(G, D) from model_args."""
    spec = NETWORKS[args["arch"]]
    assert args["img_size"] in spec.sizes, args
    G = spec.generator(img_size=args["img_size"], n_classes=args["n_classes"], z_dim=args["z_dim"],
                       channels=args["g_channels"])
    D = spec.discriminator(img_size=args["img_size"], n_classes=args["n_classes"], channels=args["d_channels"],
                           mbstd_group=args.get("mbstd_group", 0))
    return G, D


register("dcgan", Architecture(dcgan.Generator, dcgan.Discriminator, (16, 32, 64, 128, 256)))
register("stylegan_lite", Architecture(stylegan_lite.Generator, stylegan_lite.Discriminator, (16, 32, 64, 128, 256)))
