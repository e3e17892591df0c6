"""Import every module that registers components, so configs can name them."""


def register_all_modules() -> None:
    from mmdet.utils import register_all_modules as register_mmdet_modules
    from mmseg.utils import register_all_modules as register_mmseg_modules

    register_mmdet_modules(init_default_scope=True)
    # mmseg configs set default_scope='mmseg' themselves; the Runner switches to it.
    register_mmseg_modules(init_default_scope=False)
    import backbones  # noqa: F401
    import detection  # noqa: F401
    import nas_tasks.strategies  # noqa: F401
    import segmentation  # noqa: F401
