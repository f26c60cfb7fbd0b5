"""Rank statistics the research scripts share (their hyphenated names cannot be imported; this module
can: each script puts its own folder on the path first)."""


def kendall_tau(x, y):
    """Kendall's tau-a of two equally long sequences: concordant minus discordant pairs over all pairs."""
    n, s = len(x), 0
    for i in range(n):
        for j in range(i + 1, n):
            s += ((x[i] > x[j]) - (x[i] < x[j])) * ((y[i] > y[j]) - (y[i] < y[j]))
    return s / (n * (n - 1) / 2)


def kendall_tau_b(x, y):
    """Kendall's tau-b as `hsconas_devices::metrics::kendall_tau` computes it (pairs tied in both left
    out; 0 when either sequence is constant)."""
    c = d = tx = ty = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = (x[i] > x[j]) - (x[i] < x[j]), (y[i] > y[j]) - (y[i] < y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif dx == dy:
                c += 1
            else:
                d += 1
    denominator = ((c + d + tx) * (c + d + ty)) ** 0.5
    return 0.0 if denominator == 0 else (c - d) / denominator
