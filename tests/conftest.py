import pytest
import torch

from m2f_teach import M2FConfig, Mask2Former
from m2f_teach.tracing import trace_shapes


@pytest.fixture(scope="session")
def seed_trace():
    """The seed configuration traced on the meta device."""
    return trace_shapes(M2FConfig.seed())


@pytest.fixture(scope="session")
def small_config():
    return M2FConfig.small()


@pytest.fixture(scope="session")
def small_model(small_config):
    torch.manual_seed(0)
    return Mask2Former(small_config).eval()


@pytest.fixture(scope="session")
def small_images(small_config):
    g = torch.Generator().manual_seed(1)
    return torch.randn(small_config.batch_size, 3, *small_config.image_size, generator=g)


def _cli_status(args) -> int:
    """`python -m m2f_teach ARGS` in this process: its exit status."""
    from m2f_teach.__main__ import main
    try:
        main(args)
    except SystemExit as exit:
        return exit.code
    return 0


@pytest.fixture(scope="session")
def cli():
    """Run the command line in-process and return its exit status: `cli(["table", ...])`."""
    return _cli_status
