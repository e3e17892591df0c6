"""GAN tasks: AutoGAN (Gong et al., ICCV 2019), generator search with shared weights."""
from gan import autogan  # noqa: F401  (registers the space, presets and networks)
from gan import metrics, toy_data  # noqa: F401  (registers the IS/FID extractors, toy CIFAR-10)
# Training a found generator with mmengine: datasets, the IS/FID metric, per-network optimisers,
# the sample grid.
from gan import datasets, is_fid_metric, optim, sample_grid  # noqa: F401
from gan import export  # noqa: F401,E402  (AutoGAN export adapter)
