"""GAN tasks: AutoGAN (Gong et al., ICCV 2019), generator search with shared weights.

Its modules live in mmengine's own registries: no task library to register,
no default scope. torch-fidelity is imported when an IS/FID network is built,
the export adapter (and ONNX) when tools/export.py looks one up.
"""
from nas_tasks.export.adapter import task_export_adapters

# The registry scope of AutoGAN's models: mmengine's own (a Runner's default).
DEFAULT_SCOPE = 'mmengine'
# AutoGAN's adapter, found in gan.export when needed.
EXPORT_ADAPTERS = task_export_adapters('gan.export')

from gan import autogan  # noqa: F401,E402  (registers the space, presets and networks)
from gan import metrics, toy_data  # noqa: F401,E402  (the IS/FID extractor registry, toy CIFAR-10)
# Training a found generator with mmengine: datasets, the IS/FID metric, per-network optimisers,
# the sample grid.
from gan import datasets, is_fid_metric, optim, sample_grid  # noqa: F401,E402
