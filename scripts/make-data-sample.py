"""Writes data/cifar10-sample.tar.gz: the first TRAIN training and TEST test images of every class of
../shared/data/cifar10-jpeg.tar.gz, in the same ImageFolder layout (train/<class>/NNNN.jpg, test/...).
It is committed so that tests and the quickstart run on a fresh clone; rerun only to change its size.

    python3 scripts/make-data-sample.py [SOURCE] [OUT] [TRAIN] [TEST]
"""
import io
import sys
import tarfile

source = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/cifar10-jpeg.tar.gz"
out = sys.argv[2] if len(sys.argv) > 2 else "data/cifar10-sample.tar.gz"
per_split = {"train": int(sys.argv[3]) if len(sys.argv) > 3 else 200,
             "test": int(sys.argv[4]) if len(sys.argv) > 4 else 50}

kept = {}
with tarfile.open(source, "r:gz") as src:
    for member in src:
        parts = member.name.split("/")
        if not member.isfile() or len(parts) != 3 or parts[0] not in per_split:
            continue
        split, cls, name = parts
        kept.setdefault((split, cls), {})
        if len(kept[(split, cls)]) < per_split[split]:
            kept[(split, cls)][name] = src.extractfile(member).read()

with tarfile.open(out, "w:gz", compresslevel=9) as dst:
    for (split, cls), files in sorted(kept.items()):
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(f"{split}/{cls}/{name}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            dst.addfile(info, io.BytesIO(data))
print(f"{out}: {sum(len(f) for f in kept.values())} images")
