#!/usr/bin/env bash
# Run HERE (a machine with PyPI) before a device call: the wheels the device image lacks for the trial
# engine (its python3 is 3.12 with torch, numpy, h5py, pyyaml, tqdm, filelock, pytest already), at the
# versions this project's .venv holds, into .whl/ (ignored by git; name it in the device call's carry).
# Ray is not among them: its wheel is larger than a device call carries; the check skips its Ray section.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
pins=$(.venv/bin/pip freeze 2>/dev/null | grep -iE '^(mujoco|mujoco-core|mujoco-studio|glfw|PyOpenGL|gymnasium|farama-notifications|pydantic|pydantic_core|annotated-types|typing-inspection|cloudpickle)==')
for p in $pins; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl "$p"
done
du -sh .whl; ls .whl
