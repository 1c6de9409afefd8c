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
def _shared_small_model(small_config):
    """Built once (0.3 s), with a copy of its state to put back and, for each tensor, its identity
    and version counter (which every in-place change, `copy_` and `load_state_dict` included, bumps)."""
    torch.manual_seed(0)
    model = Mask2Former(small_config).eval()
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    return model, saved, {name: p.requires_grad for name, p in model.named_parameters()}, _versions(model)


def _versions(model) -> dict:
    return {name: (id(t), t._version) for name, t in [*model.named_parameters(), *model.named_buffers()]}


def _changes(model, requires_grad, versions) -> list[str]:
    """What a test left changed on the shared model: weights or buffers (written in place or
    replaced), train mode, gradients switched on or off or kept, hooks."""
    now = _versions(model)
    changed = [f"{k} changed" for k in sorted(versions.keys() | now.keys()) if now.get(k) != versions.get(k)]
    changed += [f"{name or 'the model'} left in train mode" for name, m in model.named_modules() if m.training]
    changed += [f"{name}.requires_grad switched" for name, p in model.named_parameters()
                if p.requires_grad != requires_grad[name]]
    changed += [f"{name or 'the model'} keeps a hook" for name, m in model.named_modules()
                if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks]
    changed += [f"{name} keeps a gradient" for name, p in model.named_parameters() if p.grad is not None]
    return changed


@pytest.fixture
def small_model(_shared_small_model, request):
    """`Mask2Former(M2FConfig.small())` in eval mode, seed 0, shared by every test that asks for it.

    Read-only: after each test the model is checked against its state at the start; a test that
    changed it (weights, buffers, mode, gradients, hooks) fails, and the model is put back, so no
    test sees another's changes. (A fresh model per test would cost ~0.3 s of building or deep
    copying each; reading the tensors' version counters takes about a millisecond.)
    """
    model, saved, requires_grad, versions = _shared_small_model
    yield model
    changed = _changes(model, requires_grad, versions)
    if changed:
        model.load_state_dict(saved)
        model.eval().zero_grad(set_to_none=True)
        for m in model.modules():
            m._forward_hooks.clear(), m._forward_pre_hooks.clear(), m._backward_hooks.clear()
        for name, p in model.named_parameters():
            p.requires_grad_(requires_grad[name])
        versions.update(_versions(model))
        pytest.fail(f"{request.node.name} changed the shared small_model: {'; '.join(changed[:3])}"
                    f"{f' (and {len(changed) - 3} more)' if len(changed) > 3 else ''}; build a model of its own "
                    f"(Mask2Former(small_config)) for a test that changes one")


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
