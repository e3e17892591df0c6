# Auto-DeepLab-L: the published path and cell at F = 48, with the schedule of
# autodeeplab_s_cityscapes.py.
_base_ = ['./autodeeplab_s_cityscapes.py']
model = dict(backbone=dict(arch='autodeeplab_l'))
