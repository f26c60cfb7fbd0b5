#!/usr/bin/env python3
# Rewrites what the docs say of docs/evidence/ground-truth/estimators.json after `research/scripts/ground-truth.sh
# score` (which runs this): the table of docs/accuracy-estimators.md (between its markers, best estimator
# within the equal-latency group first) and its claims in docs/evidence/claims.toml, and (formerly) the README's
# estimator sentence with its claim's pointers (estimator indices move as estimators are added). The
# docs_evidence test then checks every number against the file.
import json, os, re
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..') + '/'
d = json.load(open(root + 'docs/evidence/ground-truth/estimators.json'))
order = sorted(range(len(d['estimators'])), key=lambda i: -(d['estimators'][i]['equal_latency'] or {}).get('kendall_tau', -9))
rows = []
claims = []
head = (f"Over the {d['networks']} trained networks ({d['equal_latency_networks']} of them of equal latency), "
        "each network's test top-1 averaged over the seeds it was trained with; tau and rho against it, regret in "
        "percentage points of test top-1:")
claims.append(('Over the {} trained networks ({} of them of equal latency), each network',
               [('/networks', None, False), ('/equal_latency_networks', None, False)]))
rows.append(head)
rows.append('')
rows.append('| estimator | seconds per network | tau, all | rho, all | top-3 regret, all | tau, equal latency | rho, equal latency | top-3 regret, equal latency |')
rows.append('| --- | --- | --- | --- | --- | --- | --- | --- |')
def fmt(v, dec, sign):
    s = f"{v:+.{dec}f}" if sign else f"{v:.{dec}f}"
    return s
for i in order:
    e = d['estimators'][i]
    cells = []
    vals = []
    sec = e['seconds_per_network']
    secdec = 1 if sec >= 1 else 3 if sec >= 0.001 else 5
    cells.append(fmt(sec, secdec, False)); vals.append((f'/estimators/{i}/seconds_per_network', secdec, False))
    for part in ('all', 'equal_latency'):
        for key, dec, sign in (('kendall_tau', 2, True), ('spearman_rho', 2, True), ('top3_regret', 2, False)):
            cells.append(fmt(e[part][key], dec, sign)); vals.append((f'/estimators/{i}/{part}/{key}', dec, sign))
    rows.append(f"| {e['estimator']} | " + ' | '.join(cells) + ' |')
    claims.append((f"| {e['estimator']} | " + ' | '.join(['{}'] * len(cells)) + ' |', vals))
noise = d.get('noise_ceiling')
if noise:
    rows.append('')
    rows.append(f"Noise ceiling: seed 0 against seed 1 on the {noise['networks']} networks trained with both, "
                f"Kendall tau {noise['kendall_tau']:+.2f} (two trainings of one network rank them no more alike than "
                "this; the accuracy the table scores against is the mean of both seeds, which is less noisy).")
    claims.append(('Noise ceiling: seed 0 against seed 1 on the {} networks trained with both, Kendall tau {}',
                   [('/noise_ceiling/networks', None, False), ('/noise_ceiling/kendall_tau', 2, True)]))
cluster = d.get('measured_equal_latency')
if cluster:
    rows.append('')
    rows.append(f"Measured on this machine (the runs in `measured/`, each divided by its median over the set, each network's median of those): {len(cluster['ids'])} "
                f"networks of the set lie within ±{cluster['tolerance'] * 100:.0f}% of {cluster['centre_ms']:.3f} ms "
                f"({', '.join(cluster['ids'])}).")
    claims.append(('networks of the set lie within ±{}% of {} ms (' + ', '.join('{}' for _ in cluster['ids']) + ')',
                   [('/measured_equal_latency/tolerance', 0, False, 100),
                    ('/measured_equal_latency/centre_ms', 3, False)]
                   + [(f'/measured_equal_latency/ids/{k}', None, False) for k in range(len(cluster['ids']))]))
table = '\n'.join(rows)
p = root + 'docs/accuracy-estimators.md'
s = open(p).read()
start, end = '<!-- estimators table: generated from estimators.json -->', '<!-- end of table -->'
block = start + '\n' + table + '\n' + end
if 'RESULTS_TABLE' in s:
    s = s.replace('RESULTS_TABLE', block)
else:
    s = re.sub(re.escape(start) + '.*?' + re.escape(end), lambda _: block, s, flags=re.S)
open(p, 'w').write(s)
# claims
toml = ['# docs/accuracy-estimators.md: the estimators table, from estimators.json']
for text, vals in claims:
    toml.append('[[claim]]')
    toml.append('doc = "docs/accuracy-estimators.md"')
    toml.append('file = "docs/evidence/ground-truth/estimators.json"')
    toml.append('text = ' + json.dumps(text, ensure_ascii=False))
    toml.append('values = [')
    for ptr, dec, sign, *scale in vals:
        parts = [f'pointer = "{ptr}"']
        if dec is not None: parts.append(f'decimals = {dec}')
        if sign: parts.append('sign = true')
        if scale: parts.append(f'scale = {scale[0]}')
        toml.append('  { ' + ', '.join(parts) + ' },')
    toml.append(']')
    toml.append('')
block = '# BEGIN accuracy-estimators (generated)\n' + '\n'.join(toml) + '# END accuracy-estimators\n'
c = root + 'docs/evidence/claims.toml'
s = open(c).read()
if '# BEGIN accuracy-estimators' in s:
    s = re.sub(r'# BEGIN accuracy-estimators.*?# END accuracy-estimators\n', lambda _: block, s, flags=re.S)
else:
    s = s.rstrip('\n') + '\n\n' + block
open(c, 'w').write(s)

# The README no longer repeats the estimators' scores (its former sentence is history in CHANGELOG.md,
# checked there as it stood); docs/accuracy-estimators.md holds them.

