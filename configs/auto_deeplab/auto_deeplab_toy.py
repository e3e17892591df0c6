# Auto-DeepLab on the built-in toy Cityscapes layout: a short bilevel search,
# then decoding of the cell genotype and the Viterbi path. About N minutes on
# 2 CPU cores:
#   python tools/make_toy_data.py cityscapes data/toy_cityscapes
#   python tools/search.py configs/auto_deeplab/auto_deeplab_toy.py
_base_ = ['./auto_deeplab_cityscapes.py', '../_base_/datasets/toy_cityscapes.py']
