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


@pytest.fixture(scope="session")
def built_site(tmp_path_factory):
    """The explorer's folder: `$M2F_SITE` when set (`make test` builds `site/` first with
    `make site`), else built here once per session into a temporary folder (needs npm once)."""
    import os
    from pathlib import Path

    from m2f_teach.site.build import MARKER, build_site
    given = os.environ.get("M2F_SITE")
    if given:
        folder = Path(given)
        if not (folder / MARKER).is_file():
            pytest.fail(f"M2F_SITE={given} is not a folder built by `python -m m2f_teach site`", pytrace=False)
        return folder
    folder = tmp_path_factory.mktemp("site") / "site"
    build_site(folder, log=lambda line: None)
    return folder
