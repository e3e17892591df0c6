"""What every benchmark prints first: the software and the machine it measured."""
import os


def describe_machine() -> str:
    import torch
    return (f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
            f'{os.cpu_count()} CPUs, CUDA: {torch.cuda.is_available()}')
