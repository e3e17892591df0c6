"""The pictures of a differentiable search name what they show: the ops and rows of the
architecture-weight plots, colour-bar ticks that differ, and cell edges whose op names
do not overlap."""
import itertools

import matplotlib.pyplot as plt
import numpy as np
import pytest

from backbones.auto_deeplab.arch import PUBLISHED_CELL, edge_index, num_edges
from backbones.auto_deeplab.ops import PRIMITIVES
from backbones.auto_deeplab.pictures import genotype_figure
from backbones.auto_deeplab.search_network import (SAME, TO_COARSER, TO_FINER,
                                                   AutoDeepLabSearchNet, beta_mask)
from backbones.fna.super_net import FNASuperNet
from nas_tasks.plots import arch_weights_figure, distinct_ticks, plot_arch_weights


def history_of(weights: dict, epochs: int = 3) -> list[dict]:
    return [dict(epoch=e, arch_weights={k: v.tolist() for k, v in weights.items()})
            for e in range(epochs)]


def texts(labels) -> list[str]:
    return [label.get_text() for label in labels]


def figure_parts(figure):
    """(heat map axes, colour bar axes, panel axes) of an arch-weights figure."""
    heat = next(a for a in figure.axes if a.get_title().endswith('after epoch 3'))
    colorbar = next(a for a in figure.axes if a.get_ylabel() == 'weight')
    panels = [a for a in figure.axes if a not in (heat, colorbar)]
    return heat, colorbar, panels


def test_auto_deeplab_names_ops_edges_and_moves():
    net = AutoDeepLabSearchNet(num_classes=3, num_layers=3, filter_multiplier=2,
                               block_multiplier=2)
    ops, rows = net.arch_op_names, net.arch_row_names
    assert ops['alpha'] == list(PRIMITIVES)
    names = {TO_FINER: 'stride ÷2', SAME: 'same stride', TO_COARSER: 'stride ×2'}
    assert ops['beta'] == [names[i] for i in range(3)]
    assert len(rows['alpha']) == num_edges(2)
    assert rows['alpha'][edge_index(1, 2)] == 'block 0 → block 1'
    assert rows['alpha'][edge_index(0, 1)] == 'H(l-1) → block 0'
    assert len(rows['beta']) == 3 * 4 and rows['beta'][1 * 4 + 1] == 'layer 1, from stride 8'
    # The names follow the network's own masking: no finer level below stride 4.
    assert not beta_mask(3)[0, 0, TO_FINER] and beta_mask(3)[0, 0, SAME]


def test_the_plots_show_the_names_and_leave_out_rows_without_a_choice(tmp_path):
    net = AutoDeepLabSearchNet(num_classes=3, num_layers=3, filter_multiplier=2,
                               block_multiplier=2)
    weights = {k: v.detach() for k, v in net.arch_weights().items()}
    beta = weights['beta'].reshape(-1, 3).numpy()
    used = [name for name, row in zip(net.arch_row_names['beta'], beta) if row.any()]
    assert 0 < len(used) < len(beta)  # some (layer, level) pairs have no node
    figure = arch_weights_figure('beta', [1, 2, 3], np.stack([beta[beta.any(1)]] * 3),
                                 used, net.arch_op_names['beta'])
    heat, colorbar, panels = figure_parts(figure)
    assert texts(heat.get_xticklabels()) == ['stride ÷2', 'same stride', 'stride ×2']
    assert texts(heat.get_yticklabels()) == used
    assert [axes.get_title() for axes in panels] == used
    assert texts(figure.legends[0].get_texts()) == ['stride ÷2', 'same stride', 'stride ×2']
    ticks = [t for t in texts(colorbar.get_yticklabels()) if t]
    assert len(ticks) >= 3 and len(set(ticks)) == len(ticks), ticks
    plt.close(figure)
    paths = plot_arch_weights(history_of(weights), tmp_path, net.arch_op_names,
                              net.arch_row_names)
    assert sorted(p.name for p in paths) == ['arch_alpha.png', 'arch_beta.png']
    with pytest.raises(ValueError, match='row names'):
        plot_arch_weights(history_of(weights), tmp_path, net.arch_op_names,
                          {'beta': ['too few']})


def test_fna_rows_are_stages_and_layers():
    supernet = FNASuperNet(dict(name='mobilenetv2_100'), depths=(2, 1, 3, 1, 1, 1))
    rows, ops = supernet.arch_row_names, supernet.arch_op_names
    first, rest = (supernet.arch_params.logits[k].shape for k in ('first', 'rest'))
    assert len(rows['first']) == first[0] and len(rows['rest']) == rest[0]
    assert rows['first'][2] == 'stage 2, layer 0'
    assert rows['rest'] == ['stage 0, layer 1', 'stage 2, layer 1', 'stage 2, layer 2']
    assert len(ops['rest']) == rest[1]


@pytest.mark.parametrize('low, high', [(0.0, 0.13), (0.0, 0.17), (0.0, 0.0125), (0.0, 0.62),
                                       (0.125, 0.126)])
def test_colour_bar_ticks_differ(low, high):
    ticks, labels = distinct_ticks(low, high)
    assert len(ticks) >= 2 and len(set(labels)) == len(labels), labels
    assert all(low - 1e-9 <= t <= high + 1e-9 for t in ticks)
    assert [float(label) for label in labels] == pytest.approx(ticks, abs=0.5 * (high - low) / 4)


def test_weights_of_one_value_still_get_a_tick():
    assert distinct_ticks(0.0, 0.0) == ([0.0], ['0'])


def overlapping_boxes(cell) -> list[tuple[str, str]]:
    figure, boxes, _ = genotype_figure(cell)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    extents = [(box.get_text(), box.get_bbox_patch().get_window_extent(renderer)) for box in boxes]
    plt.close(figure)
    return [(a, b) for (a, ea), (b, eb) in itertools.combinations(extents, 2) if ea.overlaps(eb)]


@pytest.mark.parametrize('cell', [
    [list(entry) for entry in PUBLISHED_CELL],
    # every block on both inputs of the cell: the most edges from one place
    [[source, op] for op in ('sep_conv_5x5', 'dil_conv_5x5', 'max_pool_3x3', 'skip_connect',
                             'avg_pool_3x3') for source in (0, 1)],
    # every block on the two blocks before it
    [[0, 'sep_conv_3x3'], [1, 'sep_conv_3x3']] + [[b, 'dil_conv_5x5'] for block in range(1, 5)
                                                   for b in (block, block + 1)],
], ids=['published', 'inputs only', 'chain'])
def test_cell_op_names_do_not_overlap(cell):
    assert overlapping_boxes(cell) == []
