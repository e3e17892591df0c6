"""GAN tasks: AutoGAN (Gong et al., ICCV 2019), generator search with shared weights."""
from gan import autogan  # noqa: F401  (registers the space, presets and networks)
from gan import metrics, toy_data  # noqa: F401  (registers the IS/FID extractors, toy CIFAR-10)
