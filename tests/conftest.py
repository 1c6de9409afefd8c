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
