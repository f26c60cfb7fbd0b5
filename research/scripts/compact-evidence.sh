#!/usr/bin/env bash
# Keeps the committed evidence small: every JSON file over 100 KB under the given folders (default
# docs/evidence) is replaced by its gzip-compressed copy (`F.json` -> `F.json.gz`, reproducible bytes: no
# name or time stamp in the header). The docs check and the tests read either form; read one with
# `zcat F.json.gz | jq`. Run it after a campaign has written its evidence, before committing; to resume a
# campaign whose files were compacted, `gunzip` its folder first.
#
# Usage: research/scripts/compact-evidence.sh [FOLDER...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
limit=$((100 * 1000))
[[ $# -gt 0 ]] || set -- docs/evidence
find "$@" -type f -name '*.json' -size +"${limit}c" -print0 |
    while IFS= read -r -d '' file; do
        gzip -9 -n -f "$file"
        echo "compacted $file -> $file.gz" >&2
    done
