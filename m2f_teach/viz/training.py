"""Training curves: one run's loss and validation scores, and chained runs as one curve."""
from __future__ import annotations


def plot_history(history):
    """The loss curve (total and last-prediction parts) and the validation scores."""
    import matplotlib
    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.plot(history["step"], history["loss"], label="total (every prediction)")
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


class LivePlot:
    """A loss and validation plot that redraws in a notebook while `train(args, on_log=...)` runs.

        live = LivePlot(every=5)
        train(args, on_log=live)        # the figure below the cell updates every 5th log
        live.close()

    Outside a notebook (no IPython display) it only keeps the last history.
    """

    def __init__(self, every: int = 5):
        self.every, self.calls, self.history, self.handle, self.vals_drawn = every, 0, None, None, 0

    def __call__(self, history):
        """`train`'s `on_log`: redraw every `every`-th call and after each validation."""
        self.history, self.calls = history, self.calls + 1
        if self.calls % self.every == 0 or len(history["val"]) != self.vals_drawn:
            self.draw()

    def draw(self):
        import matplotlib.pyplot as plt
        try:
            from IPython.display import display
        except ImportError:
            return
        if not self.history or not self.history["step"]:
            return
        self.vals_drawn = len(self.history["val"])
        figure = plot_history(self.history)
        if self.handle is None:
            self.handle = display(figure, display_id=True)
        else:
            self.handle.update(figure)
        plt.close(figure)

    def close(self):
        """Draw the final state once more."""
        self.draw()


ABLATION_LABELS = {
    "faithful": "faithful (seed 0)", "faithful_seed1": "faithful (seed 1)",
    "no_reset": "no all-blocked reset", "no_masked_attention": "no masked attention",
    "points_1": "1 sampling point", "encoder_3": "3 encoder layers", "encoder_6": "6 encoder layers",
    "fpn_only": "FPN-only pixel decoder", "full_mask_loss": "full-mask loss",
}


def plot_ablations(results):
    """The ablation runs side by side (`m2f_teach.training.ablate.shipped_results()`): each
    variant's training loss, and its held-out class accuracy and mIoU as bars."""
    import matplotlib.pyplot as plt

    runs = results["runs"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, run) in enumerate(runs.items()):
        style = "-" if name.startswith("faithful") else "--"
        steps, loss = run["history"]["step"], run["history"]["loss"]
        smooth = [sum(loss[max(0, k - 4):k + 1]) / len(loss[max(0, k - 4):k + 1]) for k in range(len(loss))]
        label = ABLATION_LABELS.get(name, name)
        if name == "full_mask_loss":                              # another loss: not comparable in height
            label += " (a different loss:\nBCE + dice on every pixel)"
        left.plot(steps, smooth, style, color=f"C{i}", linewidth=1.0, label=label)
    left.set_yscale("log")
    left.set_xlabel("step")
    left.set_title("training loss (10 predictions, mean of 5 logs)\npoint-sampled losses except the full-mask run",
                   fontsize=10)
    left.legend(fontsize=7)
    names = [n for n in runs if "test" in runs[n]]
    y = range(len(names))
    right.barh([v + 0.2 for v in y], [runs[n]["test"]["class_acc"] for n in names], height=0.4,
               color="C1", label="class accuracy")
    right.barh([v - 0.2 for v in y], [runs[n]["test"]["miou"] for n in names], height=0.4,
               color="C0", label="mask mIoU")
    right.set_yticks(list(y), [ABLATION_LABELS.get(n, n) for n in names], fontsize=8)
    right.invert_yaxis()
    right.set_xlim(0, 1)
    right.set_title("held-out test (100 images)")
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)
    figure.tight_layout()
    return figure
