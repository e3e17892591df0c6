"""timm's EfficientNet block strings (``ir_r2_k3_s2_e6_c24_se0.25``), read and written.

timm's builder (``timm.models._efficientnet_builder``) decodes these strings
into modules; FNA reads a seed's strings, keeps every option it does not
search (SE, activation, skip), and writes new ones with another kernel and
expansion, one block per string (``r1``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from nas_tasks.errors import NasError

# Options of an 'ir' block that FNA cannot carry into a searched layer: they
# change the depthwise convolution's shape or the block's structure.
UNSUPPORTED_IR_OPTIONS = {'cc': 'CondConv experts', 'd': 'space-to-depth', 'gs': 'group size'}


@dataclass
class BlockString:
    """One block of a timm arch_def: its type, the searched options and the rest as written."""
    block_type: str
    repeats: int
    kernel: str
    stride: int
    expansion: float | None
    channels: int
    extras: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> BlockString:
        tokens = text.split('_')
        block_type, options, extras = tokens[0], {}, []
        for token in tokens[1:]:
            key, value = _split_option(token)
            if key in ('r', 'k', 's', 'e', 'c') and key not in options:
                options[key] = value
            else:
                extras.append(token)
        missing = [key for key in ('r', 'k', 's', 'c') if key not in options]
        if missing:
            raise NasError(f"block string '{text}' has no {'/'.join(missing)} option")
        expansion = float(options['e']) if 'e' in options else None
        return cls(block_type, int(options['r']), options['k'], int(options['s']), expansion,
                   int(options['c']), extras)

    @property
    def kernel_size(self) -> int | None:
        """The depthwise kernel, or None for a mixed-kernel (MixConv) block such as ``k3.5.7``."""
        return int(self.kernel) if self.kernel.isdigit() else None

    def unsupported_options(self) -> list[str]:
        """What keeps this block from being searched: its type or options FNA cannot remap."""
        problems = [] if self.block_type == 'ir' else [f"block type '{self.block_type}'"]
        if self.kernel_size is None:
            problems.append(f'mixed kernels k{self.kernel}')
        for token in self.extras:
            key, _ = _split_option(token)
            if key in UNSUPPORTED_IR_OPTIONS:
                problems.append(f'{UNSUPPORTED_IR_OPTIONS[key]} ({token})')
        return problems

    def single(self, *, kernel: int | None = None, expansion: float | None = None,
               stride: int | None = None) -> str:
        """This block as one block (``r1``), with the given kernel, expansion or stride."""
        parts = [self.block_type, 'r1', f'k{self.kernel if kernel is None else kernel}',
                 f's{self.stride if stride is None else stride}']
        exp = self.expansion if expansion is None else expansion
        if exp is not None:
            parts.append(f'e{format_number(exp)}')
        parts.append(f'c{self.channels}')
        return '_'.join(parts + self.extras)


def format_number(value: float) -> str:
    """``6`` for 6.0, ``2.5`` for 2.5: how timm's own arch_defs write expansions."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def expand_stage(stage: list[str]) -> list[BlockString]:
    """A stage's block strings with repeats unrolled: one entry per block, the
    first keeping the stride, the repeats at stride 1 (as timm's builder does)."""
    blocks: list[BlockString] = []
    for text in stage:
        block = BlockString.parse(text)
        for _ in range(block.repeats):
            stride = block.stride if not blocks else 1
            blocks.append(BlockString.parse(block.single(stride=stride)))
    return blocks


def _split_option(token: str) -> tuple[str, str]:
    # timm's decoder: the letters before the first digit are the key ('se0.25'
    # is se=0.25, 's2' is s=2); flags such as 'noskip' or 'nre' have no value.
    match = re.match(r'([a-z]+)(\d.*)?$', token)
    if match is None:
        raise NasError(f"cannot read block-string option '{token}'")
    return match.group(1), match.group(2) or ''
