"""Temporary: old (per-image) vs new (batched) criterion, and a full training step, on the GPU."""
import time, torch
import m2f_teach.training._old_criterion as oc
import m2f_teach.training.criterion as nc
from m2f_teach.model import Mask2Former
from m2f_teach.pretrained import shapes_config
from m2f_teach.data.shapes import ShapesDataset, collate
dev = torch.device("cuda")
config = shapes_config()
P_s = nc.num_points_for(config.image_size)
data = ShapesDataset(64, seed=0, image_size=config.image_size)
images, targets = collate([data[i] for i in range(16)])
images = images.to(dev); targets = [{k: v.to(dev) for k, v in t.items()} for t in targets]
torch.manual_seed(0)
model = Mask2Former(config).to(dev).train()
for name, mod in [("old", oc), ("new", nc)] * 2:
    crit = mod.Mask2FormerCriterion(config.num_classes, P_s).to(dev)
    tc = ts = 0
    for r in range(6):
        torch.cuda.synchronize(); t0 = time.time()
        cls_l, mask_l = model(images); torch.cuda.synchronize(); t1 = time.time()
        loss = sum(crit(cls_l, mask_l, targets).values()); torch.cuda.synchronize(); t2 = time.time()
        loss.backward(); torch.cuda.synchronize(); t3 = time.time()
        if r:
            tc += t2 - t1; ts += t3 - t0
    print(f"GPU {name}: criterion {tc/5*1000:.1f} ms, forward+criterion+backward {ts/5*1000:.1f} ms", flush=True)
