#!/usr/bin/env bash
# Generate msg/ and srv/ with rosidl into the venv, with no ROS install (the ros-jazzy-* wheels).
# Usage: tools/build_interfaces.sh VENV_DIR
# Idempotent: skips the build when the generated package is newer than every interface file.
set -euo pipefail
venv=$(cd "${1:?usage: build_interfaces.sh VENV_DIR}" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
py="$venv/bin/python"
site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
stamp="$site/deal_ros/msg/_segmentation.py"

for tool in cmake gcc g++ make; do
  command -v "$tool" >/dev/null || { echo "build_interfaces: '$tool' not found: install it (apt-get install cmake build-essential)" >&2; exit 1; }
done

if [ -f "$stamp" ] && [ -z "$(find "$root/msg" "$root/srv" "$root/CMakeLists.txt" "$root/package.xml" -newer "$stamp" -print -quit)" ]; then
  echo "interfaces up to date ($site/deal_ros/{msg,srv})"
  exit 0
fi

# The wheels' exported CMake files name the include folders of the machine that built them;
# point them at this interpreter's (a no-op once done).
py_inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_inc=$("$py" -c 'import numpy; print(numpy.get_include())')
{ grep -rl --include='*.cmake' '/opt/python/cp311-cp311' "$venv/share" 2>/dev/null || true; } | while read -r f; do
  sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" \
         -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g" "$f"
done

build="$root/build/interfaces"
mkdir -p "$build"
export AMENT_PREFIX_PATH="$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export PATH="$venv/bin:$PATH"
echo "building deal_ros interfaces (rosidl) into $venv ..."
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$venv" -DCMAKE_INSTALL_PREFIX="$venv" \
  -DPython3_EXECUTABLE="$py" -DPYTHON_EXECUTABLE="$py" \
  -DBUILD_TESTING=OFF -DDEAL_ROS_INSTALL_PYTHON=OFF > "$build/configure.log" 2>&1 \
  || { tail -30 "$build/configure.log" >&2; echo "build_interfaces: cmake configure failed (log: $build/configure.log)" >&2; exit 1; }
cmake --build "$build" -j "$(nproc)" > "$build/build.log" 2>&1 \
  || { tail -30 "$build/build.log" >&2; echo "build_interfaces: build failed (log: $build/build.log)" >&2; exit 1; }
cmake --install "$build" > "$build/install.log" 2>&1 \
  || { tail -30 "$build/install.log" >&2; echo "build_interfaces: install failed (log: $build/install.log)" >&2; exit 1; }
# The generator writes an empty deal_ros/__init__.py; without it this folder is a namespace
# portion that the source package (deal_ros/__init__.py, extend_path) picks up, so the
# editable checkout and the generated msg/srv import as one package.
rm -rf "$site/deal_ros/__init__.py" "$site/deal_ros/__pycache__"
echo "interfaces installed: $site/deal_ros/{msg,srv}"
