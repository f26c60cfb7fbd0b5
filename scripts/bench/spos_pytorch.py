# Learning check of the weight-sharing supernet, independent of our tch code: a PyTorch single-path
# supernet (one full-width block per (layer, operator), channel scale 1.0) built from the layer graphs that
# `hsconas arch graph` prints, trained on the committed CIFAR-10 sample with the recipe of
# `hsconas supernet train` (SGD momentum 0.9, weight decay 3e-5 on weights, clip 5, pad-4 crop + flip,
# batch 64, fixed LR). Prints training loss and accuracy every 100 steps. Needs Pillow besides torch.
# Used for docs/supernet-cifar10.md.
#   for op in shuffle3 shuffle5 shuffle7 xception; do
#     hsconas arch graph --input-size 32 --arch $(python3 -c "print(','.join(['$op:1.0']*20))") > DIR/g-$op.json; done
#   GRAPHS=DIR python spos_pytorch.py OPS STEPS LR [RANDOM_LAYERS]
# OPS: comma-separated operators sampled per layer (one operator = a fixed network); RANDOM_LAYERS: 0-based
# layers that sample (the others use shuffle3; default all). Environment: AFF=0 drops the affine parameters
# of the blocks' batch norms; SHARE=1 starts shuffle5/7 as exact copies of shuffle3 (kernels zero-padded);
# COL=N trains N steps with one operator for all layers ("columns") first; RAMP=N then raises the share of
# independently sampled layers from 0 to 1 over N steps; FAIR=1 trains every operator of every layer once
# per step (FairNAS).
import io, json, sys, tarfile, time, os, re
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np, torch, torch.nn.functional as F
from PIL import Image
from train_pytorch import GraphNet
ops = sys.argv[1].split(","); RL = set(range(20)) if len(sys.argv) < 5 else {int(v) for v in sys.argv[4].split(",")}; steps = int(sys.argv[2]); lr = float(sys.argv[3])
torch.set_num_threads(1); RAMP = int(os.environ.get("RAMP","0")); FAIR = os.environ.get("FAIR","0")=="1"; COL = int(os.environ.get("COL","0")); AFF = os.environ.get("AFF","1")=="1"; torch.manual_seed(0); np.random.seed(0)
nets = {}
for o in ["shuffle3","shuffle5","shuffle7","xception"]:
    g = json.load(open(os.path.join(os.environ["GRAPHS"], f"g-{o}.json"))); g["nodes"][-1]["op"]["Linear"]["fout"] = 10
    nets[o] = GraphNet(g)
    # segments: name prefix -> node index range
    segs = {}
    for i, n in enumerate(g["nodes"]):
        m = re.match(r"layers\.(\d+)\.", n["name"]); key = int(m.group(1)) if m else ("stem" if n["name"].startswith("stem") else "head")
        segs.setdefault(key, []).append(i)
    nets[o].segs = segs
sup = torch.nn.ModuleList(nets.values())
if os.environ.get("SHARE") == "1":
    base = nets["shuffle3"]
    with torch.no_grad():
        for o in ["shuffle5", "shuffle7"]:
            net = nets[o]
            assert len(net.nodes) == len(base.nodes)
            for k, p in net.params.items():
                q = base.params[k]
                if p.shape == q.shape: p.copy_(q)
                else:
                    p.zero_(); d = (p.shape[-1] - q.shape[-1]) // 2
                    p[:, :, d:d + q.shape[-1], d:d + q.shape[-1]] = q

def run_seg(net, idxs, x):
    vals = {}
    first = idxs[0]
    for i in idxs:
        node = net.nodes[i]
        inp = [vals[j] if j in vals else x for j in node["inputs"]]
        # inputs outside the segment refer to the segment input
        for j in node["inputs"]: assert j in vals or j <= first, (i, j)
        vals[i + 1] = node_forward(net, i, inp)
    return vals[idxs[-1] + 1]
def node_forward(net, i, inp):
    node = net.nodes[i]; op = node["op"]; key = f"n{i}"; P = net.params
    if isinstance(op, dict) and "Conv" in op:
        c = op["Conv"]; return F.conv2d(inp[0], P[key+"_w"], P[key+"_b"] if c["bias"] else None, c["stride"], c["kernel"]//2, 1, c["groups"])
    if isinstance(op, dict) and "BatchNorm" in op:
        return F.batch_norm(inp[0], getattr(net, key+"_m"), getattr(net, key+"_v"), *(P[key+"_w"], P[key+"_b"]) if (AFF or not net.nodes[i]["name"].startswith("layers")) else (None, None), True, 0.1, op["BatchNorm"]["eps"])
    if isinstance(op, dict) and "Act" in op: return F.relu(inp[0])
    if isinstance(op, dict) and "SliceChannels" in op:
        s = op["SliceChannels"]; return inp[0][:, s["start"]:s["end"]:s["step"]]
    if isinstance(op, dict) and "Linear" in op:
        l = op["Linear"]; return F.linear(inp[0].flatten(1), P[key+"_w"], P[key+"_b"] if l["bias"] else None)
    if op == "GlobalAvgPool": return F.adaptive_avg_pool2d(inp[0], 1)
    if op == "Concat": return torch.cat(inp, 1)
    raise ValueError(op)
def forward(x, path):
    base = nets["shuffle3"]
    x = run_seg(base, base.segs["stem"], x)
    for l, o in enumerate(path):
        x = run_seg(nets[o], nets[o].segs[l], x)
    return run_seg(base, base.segs["head"], x)
imgs, labels, classes = [], [], {}
with tarfile.open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../data/cifar10-sample.tar.gz")) as t:
    for m in t:
        p = m.name.split("/")
        if not m.isfile() or p[0] != "train": continue
        c = classes.setdefault(p[1], len(classes))
        imgs.append(np.asarray(Image.open(io.BytesIO(t.extractfile(m).read())).convert("RGB")).transpose(2, 0, 1)); labels.append(c)
x = torch.tensor(np.stack(imgs)).float() / 255; y = torch.tensor(labels)
mean = x.mean((0, 2, 3), keepdim=True); std = x.std((0, 2, 3), keepdim=True); x = (x - mean) / std
params = list(sup.parameters())
decay = [q for q in params if q.dim() > 1]; nod = [q for q in params if q.dim() <= 1]
opt = torch.optim.SGD([{"params": decay, "weight_decay": 3e-5}, {"params": nod, "weight_decay": 0}], lr=lr, momentum=0.9)
n = len(y); B = 64; seen = hits = 0; lsum = 0.0; t0 = time.time()
for step in range(steps):
    path = [ops[np.random.randint(len(ops))] if l in RL else "shuffle3" for l in range(20)]
    if step < COL:
        o = ops[np.random.randint(len(ops))]; path = [o] * 20
    elif RAMP:
        p = min(1.0, (step - COL) / RAMP); o = ops[np.random.randint(len(ops))]
        path = [ops[np.random.randint(len(ops))] if np.random.rand() < p else o for _ in range(20)]
    idx = torch.randint(n, (B,))
    xb = F.pad(x[idx], (4, 4, 4, 4)); i, j = np.random.randint(0, 9, 2); xb = xb[:, :, i:i + 32, j:j + 32]
    if np.random.rand() < 0.5: xb = xb.flip(3)
    opt.zero_grad(set_to_none=True)
    if FAIR:
        perms = [np.random.permutation(len(ops)) for _ in range(20)]
        for k in range(len(ops)):
            path = [ops[perms[l][k]] for l in range(20)]
            out = forward(xb, path); loss = F.cross_entropy(out, y[idx]); loss.backward()
    else:
        out = forward(xb, path); loss = F.cross_entropy(out, y[idx]); loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 5.0); opt.step()
    lsum += loss.item() * B; hits += (out.argmax(1) == y[idx]).sum().item(); seen += B
    if (step + 1) % 100 == 0:
        print(f"step {step+1}: loss {lsum/seen:.3f} acc {100*hits/seen:.1f}% ({seen/(time.time()-t0):.0f} img/s)", flush=True)
        seen = hits = 0; lsum = 0.0; t0=time.time()
