# Lets mmdet's and mmseg's own tools/train.py and test.py find this project's modules, and
# keeps Runner checkpoints loadable with torch.load(weights_only=True), the
# default of torch >= 2.6 (see nas_tasks/checkpoint.py).
custom_imports = dict(imports=['backbones', 'detection', 'segmentation', 'nas_tasks.checkpoint'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='WeightsOnlyCheckpointHook')]
