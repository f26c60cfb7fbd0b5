# Learning check: the same layer graph (`hsconas arch graph`) trained in PyTorch on real CIFAR-10 images
# (the first PER_CLASS training images of each class), with the recipe of `hsconas train`: SGD momentum 0.9,
# weight decay 3e-5 on weights, clip 5, pad-4 crop and flip, per-channel normalisation, batch 64, fixed LR.
# Prints the training loss and accuracy every 50 steps. Needs Pillow (pip install pillow) besides torch.
#   python learning_pytorch.py GRAPH.json STEPS LR PER_CLASS DATA.tar.gz
import io, json, sys, tarfile, time

sys.path.insert(0, __import__("os").path.dirname(__file__))
import numpy as np, torch, torch.nn.functional as F
from PIL import Image
from train_pytorch import GraphNet

graph = json.load(open(sys.argv[1])); steps = int(sys.argv[2]); lr = float(sys.argv[3]); per_class = int(sys.argv[4])
torch.set_num_threads(1); torch.manual_seed(0); np.random.seed(0)
imgs, labels, classes, counts = [], [], {}, {}
with tarfile.open(sys.argv[5]) as t:
    for m in t:
        p = m.name.split("/")
        if not m.isfile() or p[0] != "train": continue
        c = classes.setdefault(p[1], len(classes))
        if counts.get(c, 0) >= per_class: continue
        counts[c] = counts.get(c, 0) + 1
        imgs.append(np.asarray(Image.open(io.BytesIO(t.extractfile(m).read())).convert("RGB")).transpose(2, 0, 1))
        labels.append(c)
x = torch.tensor(np.stack(imgs)).float() / 255; y = torch.tensor(labels)
mean = x.mean((0, 2, 3), keepdim=True); std = x.std((0, 2, 3), keepdim=True); x = (x - mean) / std
net = GraphNet(graph).train()
decay = [q for q in net.parameters() if q.dim() > 1]; nod = [q for q in net.parameters() if q.dim() <= 1]
opt = torch.optim.SGD([{"params": decay, "weight_decay": 3e-5}, {"params": nod, "weight_decay": 0}], lr=lr, momentum=0.9)
n = len(y); B = 64; seen = hits = 0; lsum = 0.0; t0 = time.time()
for step in range(steps):
    idx = torch.randint(n, (B,))
    xb = F.pad(x[idx], (4, 4, 4, 4)); i, j = np.random.randint(0, 9, 2); xb = xb[:, :, i:i + 32, j:j + 32]
    if np.random.rand() < 0.5: xb = xb.flip(3)
    out = net(xb); loss = F.cross_entropy(out, y[idx])
    opt.zero_grad(set_to_none=True); loss.backward(); torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0); opt.step()
    lsum += loss.item() * B; hits += (out.argmax(1) == y[idx]).sum().item(); seen += B
    if (step + 1) % 50 == 0:
        print(f"pytorch step {step+1}: loss {lsum/seen:.3f} acc {100*hits/seen:.1f}% ({seen/(time.time()-t0):.0f} img/s)", flush=True)
        seen = hits = 0; lsum = 0.0
