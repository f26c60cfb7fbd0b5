# A second, independent check of single-path supernet training: the SPOS ShuffleNetV2 choice blocks written
# directly as PyTorch modules (in the style of megvii-model/SinglePathOneShot, not built from our layer
# graphs as spos_pytorch.py is), layout A at input 32 (stem stride 1), trained on the committed CIFAR-10
# sample with the recipe of `hsconas supernet train` (SGD momentum 0.9, weight decay 3e-5 on weights,
# clip 5, pad-4 crop + flip, batch 64, fixed LR). Prints training loss and accuracy every 100 steps.
# Needs Pillow besides torch. Used for docs/supernet-cifar10.md.
#   python spos_independent.py STEPS LR random|fixed
# `random` samples one of the four operators per layer and step (scale 1.0); `fixed` trains all-shuffle3.
# Environment: INIT=spos uses SPOS's initialisation (normal 1/fan-in channels, BN bias 1e-4); LS=0.1 adds
# label smoothing.
import io, sys, tarfile, time, os, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from PIL import Image
torch.set_num_threads(1); torch.manual_seed(0); np.random.seed(0)
steps = int(sys.argv[1]); lr = float(sys.argv[2]); mode = sys.argv[3]  # random|fixed
INIT = os.environ.get("INIT", "torch")
def cbr(cin, cout, k, s, g=1, relu=True):
    L = [nn.Conv2d(cin, cout, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(cout)]
    return L + ([nn.ReLU(inplace=True)] if relu else [])
class Block(nn.Module):
    def __init__(self, cin, cout, op, stride):
        super().__init__(); self.stride = stride
        inp = cin if stride == 2 else cin // 2; out = cout - inp; mid = cout // 2
        k = 3 if op == "x" else int(op)
        if op == "x":
            L = cbr(inp, inp, 3, stride, inp, False) + cbr(inp, mid, 1, 1) + cbr(mid, mid, 3, 1, mid, False) + cbr(mid, mid, 1, 1) + cbr(mid, mid, 3, 1, mid, False) + cbr(mid, out, 1, 1)
        else:
            L = cbr(inp, mid, 1, 1) + cbr(mid, mid, k, stride, mid, False) + cbr(mid, out, 1, 1)
        self.main = nn.Sequential(*L)
        if stride == 2: self.proj = nn.Sequential(*(cbr(inp, inp, k, 2, inp, False) + cbr(inp, inp, 1, 1)))
    def forward(self, x):
        if self.stride == 2: return torch.cat([self.proj(x), self.main(x)], 1)
        return torch.cat([x[:, 0::2], self.main(x[:, 1::2])], 1)
OPS = ["3", "5", "7", "x"]
W = [48, 128, 256, 512]; R = [4, 4, 8, 4]
class Super(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(*cbr(3, 16, 3, 1))
        self.layers = nn.ModuleList(); cin = 16
        for w, r in zip(W, R):
            for i in range(r):
                self.layers.append(nn.ModuleList([Block(cin, w, o, 2 if i == 0 else 1) for o in OPS])); cin = w
        self.head = nn.Sequential(*cbr(cin, 1024, 1, 1)); self.fc = nn.Linear(1024, 10)
    def forward(self, x, path):
        x = self.stem(x)
        for l, c in zip(self.layers, path): x = l[c](x)
        return self.fc(F.adaptive_avg_pool2d(self.head(x), 1).flatten(1))
net = Super()
if INIT == "spos":
    for n_, m in net.named_modules():
        if isinstance(m, nn.Conv2d): nn.init.normal_(m.weight, 0, 1.0 / m.weight.shape[1])
        elif isinstance(m, nn.BatchNorm2d): nn.init.ones_(m.weight); nn.init.constant_(m.bias, 1e-4)
        elif isinstance(m, nn.Linear): nn.init.normal_(m.weight, 0, 0.01); nn.init.zeros_(m.bias)
imgs, labels, classes = [], [], {}
with tarfile.open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../data/cifar10-sample.tar.gz")) as t:
    for m in t:
        p = m.name.split("/")
        if not m.isfile() or p[0] != "train": continue
        c = classes.setdefault(p[1], len(classes))
        imgs.append(np.asarray(Image.open(io.BytesIO(t.extractfile(m).read())).convert("RGB")).transpose(2, 0, 1)); labels.append(c)
x = torch.tensor(np.stack(imgs)).float() / 255; y = torch.tensor(labels)
mean = x.mean((0, 2, 3), keepdim=True); std = x.std((0, 2, 3), keepdim=True); x = (x - mean) / std
params = list(net.parameters())
decay = [q for q in params if q.dim() > 1]; nod = [q for q in params if q.dim() <= 1]
opt = torch.optim.SGD([{"params": decay, "weight_decay": 3e-5}, {"params": nod, "weight_decay": 0}], lr=lr, momentum=0.9)
n = len(y); B = 64; seen = hits = 0; lsum = 0.0; t0 = time.time()
for step in range(steps):
    path = [np.random.randint(4) for _ in range(20)] if mode == "random" else [0] * 20
    idx = torch.randint(n, (B,))
    xb = F.pad(x[idx], (4, 4, 4, 4)); i, j = np.random.randint(0, 9, 2); xb = xb[:, :, i:i + 32, j:j + 32]
    if np.random.rand() < 0.5: xb = xb.flip(3)
    opt.zero_grad(set_to_none=True)
    out = net(xb, path); loss = F.cross_entropy(out, y[idx], label_smoothing=float(os.environ.get("LS", "0"))); loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 5.0); opt.step()
    lsum += loss.item() * B; hits += (out.argmax(1) == y[idx]).sum().item(); seen += B
    if (step + 1) % 100 == 0:
        print(f"step {step+1}: loss {lsum/seen:.3f} acc {100*hits/seen:.1f}% ({seen/(time.time()-t0):.0f} img/s)", flush=True)
        seen = hits = 0; lsum = 0.0; t0 = time.time()
