"""Rank statistics the research scripts share (their hyphenated names cannot be imported; this module
can: each script puts its own folder on the path first)."""


def kendall_tau(x, y):
    """Kendall's tau-a of two equally long sequences: concordant minus discordant pairs over all pairs."""
    n, s = len(x), 0
    for i in range(n):
        for j in range(i + 1, n):
            s += ((x[i] > x[j]) - (x[i] < x[j])) * ((y[i] > y[j]) - (y[i] < y[j]))
    return s / (n * (n - 1) / 2)
