#!/usr/bin/env bash
# The configuration reference is complete and current: `config --explain` runs (it fails when a
# key the parsers read has no meaning), docs/config_reference.md equals its Markdown output, every
# key of the resolved default configuration is in it, and floats print as short as they read back.
set -euo pipefail
moedmft=$(realpath "$1")
source_dir=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "check_config_reference: FAIL: $*" >&2; exit 1; }

"$moedmft" config --explain >"$work/explain.txt" || fail "config --explain failed"
"$moedmft" config --explain --markdown -o "$work/reference.md"
diff -u "$source_dir/docs/config_reference.md" "$work/reference.md" >&2 ||
  fail "docs/config_reference.md is stale: regenerate it with moedmft config --explain --markdown -o docs/config_reference.md"
"$moedmft" config --set optim.kind=adam --set model.L=2 -o "$work/resolved.toml"
python=/usr/bin/python3; [[ -x $python ]] || python=python3
"$python" - "$work/resolved.toml" "$work/reference.md" <<'PY'
import re, sys, tomllib
with open(sys.argv[1], "rb") as f:
    cfg = tomllib.load(f)
documented = set(re.findall(r"^\| `([^`]+)`", open(sys.argv[2]).read(), re.M))
def keys(t, prefix=""):
    for k, v in t.items():
        if isinstance(v, dict):
            yield from keys(v, prefix + k + ".")
        else:
            yield prefix + k
missing = [k for k in keys(cfg) if k not in documented]
assert not missing, f"resolved keys missing from the reference: {missing}"
text = open(sys.argv[1]).read()
assert "0.10000000000000001" not in text and "lr = 0.1\n" in text, "floats are not printed cleanly"
print("config reference ok:", len(documented), "rows")
PY
grep -q "optim.eps = 1e-08" "$work/explain.txt" || fail "explain does not show optim.eps = 1e-08"
