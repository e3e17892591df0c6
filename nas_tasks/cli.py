"""Shared command-line behaviour: bad input is one line on stderr and exit 2."""
from __future__ import annotations

import sys
import warnings
from typing import Callable

from nas_tasks.errors import NasError

EXIT_BAD_INPUT = 2


def run_cli(main: Callable[[], int | None]) -> None:
    """Run ``main``; a NasError becomes ``error: <message>`` and exit code 2."""
    # mmengine imports pkg_resources for package-scoped configs (mmdet::...).
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    try:
        code = main()
    except NasError as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        print('interrupted; rerun with --resume to continue from the last checkpoint',
              file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def parse_cfg_options(pairs: list[str] | None) -> dict:
    """``['a.b=1', 'c=x']`` -> ``{'a.b': 1, 'c': 'x'}`` with mmengine's value parsing."""
    if not pairs:
        return {}
    from mmengine.config import DictAction
    options: dict = {}
    for pair in pairs:
        if '=' not in pair:
            raise NasError(f"--cfg-options expects key=value, got '{pair}'")
        key, value = pair.split('=', 1)
        options[key] = DictAction._parse_iterable(value)
    return options
