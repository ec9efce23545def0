#!/usr/bin/env bash
# Install everything minerguard's tests and demo need on a fresh Debian machine with Python 3.11:
# the Debian packages the integration tests drive for real, and a virtualenv in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium: the investigation report's HTML page is rendered in it (tests/integration/report).
APT_PACKAGES=(docker-registry runc containerd busybox-static iproute2 nftables gcc prometheus buildah mmdebstrap umoci skopeo xxd curl chromium)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages (need root to install): ${missing[*]}" >&2
  fi
fi

# pip runs only when needed: the install is editable, so code changes need none. It runs when
# pyproject.toml differs from the one last installed (its hash is kept in the virtualenv), or the
# virtualenv is missing or broken. `rm .venv/.installed-pyproject` forces a reinstall.
PYTHON=${PYTHON:-python3}
STAMP=.venv/.installed-pyproject
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
# -I: the checkout on sys.path would hide a missing install.
installed() {
  .venv/bin/python -I -c "import importlib.metadata as m, importlib.util as u
m.distribution('minerguard')
assert all(u.find_spec(n) for n in ('minerguard', 're2', 'kmock', 'kopf'))" 2>/dev/null
}
pip() { # pip, less a warning this Debian's pip prints on every call; a pip failure stops the script
  .venv/bin/python -m pip "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }
}
if [ "$(cat "$STAMP" 2>/dev/null)" != "$wanted" ] || ! installed; then
  rm -f "$STAMP"
  if ! .venv/bin/python -c "" 2>/dev/null; then
    "$PYTHON" -m venv --clear .venv
  fi
  pip install -q --upgrade pip
  pip install -q -e '.[test]'
  .venv/bin/python -I -c "import minerguard, re2, kmock, kopf" # fail loudly if the install did not work
  echo "$wanted" >"$STAMP"
fi
