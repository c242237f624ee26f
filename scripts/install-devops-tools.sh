#!/usr/bin/env bash
# The validators tests/devops shells out to, each in its own virtual environment under .venv-tools/ (their
# pins conflict with the project's). Idempotent: a stamp per environment holds the hash of its requirements,
# so a second run costs nothing and a changed pin reinstalls only that environment.
#   bash scripts/install-devops-tools.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
root=.venv-tools
mkdir -p "$root"
for requirements in scripts/tools/*.txt; do
  name=$(basename "$requirements" .txt)
  env="$root/$name"
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [ -x "$env/bin/python" ] && [ "$(cat "$env/.installed" 2>/dev/null)" = "$want" ]; then
    continue
  fi
  echo "installing $name into $env"
  rm -rf "$env"
  "$python" -m venv "$env"
  "$env/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip 2> >(grep -v "is ignored: it is neither" >&2)
  "$env/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" 2> >(grep -v "is ignored: it is neither" >&2)
  echo "$want" > "$env/.installed"
done
