"""Import every module that registers components, so configs can name them."""


def register_all_modules() -> None:
    from mmdet.utils import register_all_modules as register_mmdet_modules

    register_mmdet_modules(init_default_scope=True)
    import backbones  # noqa: F401
    import detection  # noqa: F401
    import nas_tasks.strategies  # noqa: F401
