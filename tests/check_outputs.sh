#!/usr/bin/env bash
# Every output kind of the CLI in xarray, and every plotting script on them (tests/check_outputs.py).
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$(dirname "$0")/make_small_outputs.sh" "$1" "$work"
python=/usr/bin/python3; [[ -x $python ]] || python=python3
"$python" "$(dirname "$0")/check_outputs.py" "$work" "$(cd "$(dirname "$0")/.." && pwd)"
