"""Training throughput of one architecture in PyTorch, for scripts/bench-train.sh: the same layer graph
as `hsconas arch graph` prints (so the same network as our tch code), the same optimiser rule (SGD,
momentum 0.9, weight decay 3e-5 on weights only, gradient-norm clip 5), random batches prepared up front.
Written for the benchmark only.

    python train_pytorch.py GRAPH.json --batch 64 --threads 2 --steps 30 --warmup 5
"""
import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F


class GraphNet(torch.nn.Module):
    def __init__(self, graph):
        super().__init__()
        self.nodes = graph["nodes"]
        self.params = torch.nn.ParameterDict()
        self.buffers_ = {}
        for i, node in enumerate(self.nodes):
            op = node["op"]
            key = f"n{i}"
            if isinstance(op, dict) and "Conv" in op:
                c = op["Conv"]
                w = torch.empty(c["cout"], c["cin"] // c["groups"], c["kernel"], c["kernel"])
                torch.nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
                self.params[key + "_w"] = torch.nn.Parameter(w)
                if c["bias"]:
                    self.params[key + "_b"] = torch.nn.Parameter(torch.zeros(c["cout"]))
            elif isinstance(op, dict) and "BatchNorm" in op:
                ch = op["BatchNorm"]["channels"]
                self.params[key + "_w"] = torch.nn.Parameter(torch.ones(ch))
                self.params[key + "_b"] = torch.nn.Parameter(torch.zeros(ch))
                self.register_buffer(key + "_m", torch.zeros(ch))
                self.register_buffer(key + "_v", torch.ones(ch))
            elif isinstance(op, dict) and "Linear" in op:
                l = op["Linear"]
                self.params[key + "_w"] = torch.nn.Parameter(torch.randn(l["fout"], l["fin"]) * 0.01)
                if l["bias"]:
                    self.params[key + "_b"] = torch.nn.Parameter(torch.zeros(l["fout"]))

    def forward(self, x):
        values = [x]
        for i, node in enumerate(self.nodes):
            op, key = node["op"], f"n{i}"
            inp = [values[j] for j in node["inputs"]]
            if isinstance(op, dict) and "Conv" in op:
                c = op["Conv"]
                y = F.conv2d(inp[0], self.params[key + "_w"], self.params[key + "_b"] if c["bias"] else None,
                             c["stride"], c["kernel"] // 2, 1, c["groups"])
            elif isinstance(op, dict) and "BatchNorm" in op:
                y = F.batch_norm(inp[0], getattr(self, key + "_m"), getattr(self, key + "_v"),
                                 self.params[key + "_w"], self.params[key + "_b"], self.training, 0.1,
                                 op["BatchNorm"]["eps"])
            elif isinstance(op, dict) and "Act" in op:
                a = op["Act"]
                y = {"Relu": F.relu, "Relu6": F.relu6, "HardSwish": F.hardswish,
                     "HardSigmoid": F.hardsigmoid}[a](inp[0])
            elif isinstance(op, dict) and "SliceChannels" in op:
                s = op["SliceChannels"]
                y = inp[0][:, s["start"]:s["end"]:s["step"]]
            elif isinstance(op, dict) and "Linear" in op:
                l = op["Linear"]
                y = F.linear(inp[0].flatten(1), self.params[key + "_w"], self.params[key + "_b"] if l["bias"] else None)
            elif op == "GlobalAvgPool":
                y = F.adaptive_avg_pool2d(inp[0], 1)
            elif op == "Concat":
                y = torch.cat(inp, 1)
            elif op == "Add":
                y = inp[0] + inp[1]
            else:
                raise ValueError(f"unsupported op {op}")
            values.append(y)
        return values[-1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("graph")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--print-loss", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    graph = json.load(open(a.graph))
    net = GraphNet(graph).train()
    classes = graph["nodes"][-1]["shape"]["c"]
    decay = [q for q in net.parameters() if q.dim() > 1]
    no_decay = [q for q in net.parameters() if q.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 3e-5}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=a.lr, momentum=0.9)
    s = graph["input"]["h"]
    batches = [(torch.randn(a.batch, 3, s, s), torch.randint(classes, (a.batch,))) for _ in range(4)]

    def step(i):
        x, y = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        if a.print_loss and i % a.print_loss == 0:
            print(f"step {i}: loss {loss.item():.4f}", file=sys.stderr)

    for i in range(a.warmup):
        step(i)
    start = time.perf_counter()
    for i in range(a.steps):
        step(i)
    seconds = time.perf_counter() - start
    print(json.dumps({"tool": "pytorch", "images_per_s": round(a.steps * a.batch / seconds, 2), "steps": a.steps,
                      "batch": a.batch, "threads": a.threads, "seconds": round(seconds, 3)}))


if __name__ == "__main__":
    main()
