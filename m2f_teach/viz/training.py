"""Training curves: one run's loss and validation scores, and chained runs as one curve."""
from __future__ import annotations


def plot_history(history):
    """The loss curve (total and last-prediction parts) and the validation scores."""
    import matplotlib
    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.plot(history["step"], history["loss"], label="total (10 predictions)")
    for key in ("loss_cls", "loss_mask", "loss_dice"):
        left.plot(history["step"], history[key], label=f"{key} (last)")
    left.set_yscale("log")
    left.set_xlabel("step")
    left.set_title("training loss")
    left.legend(fontsize=8)
    plot_validation(right, [v["step"] for v in history["val"]], history["val"])
    finish_validation(right, "step")
    figure.tight_layout()
    return figure


def plot_validation(axes, x, val, label=True):
    """Validation mIoU and class accuracy (`history["val"]` entries) at positions `x`."""
    axes.plot(x, [v["miou"] for v in val], "o-", color="C0", label="mask mIoU" if label else None)
    axes.plot(x, [v["class_acc"] for v in val], "o-", color="C1", label="class accuracy" if label else None)


def finish_validation(axes, xlabel):
    axes.set_ylim(0, 1)
    axes.set_xlabel(xlabel)
    axes.set_title("validation")
    axes.legend(fontsize=8, loc="lower right")


def plot_stages(stages):
    """Runs chained with `--init` (the checkpoint json's `stages`) as one curve: the total loss and
    the validation scores against the training images seen, a dashed line where a stage starts."""
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    seen = 0                                                        # images before this stage
    for stage in stages:
        history, batch = stage["history"], stage["batch_size"]
        x = [(seen + step * batch) / 1000 for step in history["step"]]
        left.plot(x, history["loss"], color="C0", linewidth=0.8)
        val_x = [(seen + v["step"] * batch) / 1000 for v in history["val"]]
        plot_validation(right, val_x, history["val"], label=stage is stages[0])
        for axes in (left, right):
            axes.axvline(seen / 1000, color="gray", linestyle="--", linewidth=0.8)
        left.annotate(f"{stage['stage']}", (seen / 1000, 1), xycoords=("data", "axes fraction"),
                      xytext=(3, -12), textcoords="offset points", color="gray")
        seen += stage["steps_done"] * batch
    left.set_yscale("log")
    left.set_xlabel("training images seen (thousands)")
    left.set_title(f"training loss (10 predictions), stages 1–{len(stages)}")
    finish_validation(right, "training images seen (thousands)")
    figure.tight_layout()
    return figure
