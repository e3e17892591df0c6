#!/usr/bin/env bash
# Creates .venv in the repository and installs the verified stack (see
# ../shared/ENVIRONMENT.md). Idempotent: a second run only checks a stamp.
# The mmcv 2.1.0 wheel (built from source with ops, ~18 min on 2 cores) is
# cached per user in ${NAS_TASKS_WHEEL_CACHE:-~/.cache/nas_tasks/wheels}, so
# fresh clones on the same machine reuse it.
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv_dir="$repo_dir/.venv"
python_bin="${PYTHON:-python3.11}"
wheel_cache="${NAS_TASKS_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nas_tasks/wheels}"
mmcv_version="2.1.0"
stamp="$venv_dir/.nas_tasks_installed"
# The editable install records which top-level packages are regular ones (with
# an __init__.py) and which are namespaces, so a new __init__.py needs a reinstall.
stamp_content="$(cat "$repo_dir/pyproject.toml" "$repo_dir/setup.sh" \
    <(cd "$repo_dir" && ls -d -- */__init__.py) | sha256sum | cut -d' ' -f1)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$stamp_content" ]]; then
    echo "setup: .venv is up to date"
    exit 0
fi

if ! command -v "$python_bin" >/dev/null; then
    echo "setup: $python_bin not found; install Python 3.11 or set PYTHON=/path/to/python3.11" >&2
    exit 1
fi

[[ -x "$venv_dir/bin/python" ]] || "$python_bin" -m venv "$venv_dir"
pip=("$venv_dir/bin/python" -m pip --disable-pip-version-check)

"${pip[@]}" install -q "torch==2.14.1" "torchvision==0.29.1"

build_mmcv_wheel() {
    # torch 2.14 headers need C++20, but mmcv 2.1.0's setup.py forces
    # -std=c++14/17: a compiler wrapper rewrites the flag.
    local build_dir
    build_dir="$(mktemp -d)"
    cat >"$build_dir/cxx20" <<'WRAP'
#!/usr/bin/env bash
args=()
for a in "$@"; do
    case "$a" in -std=c++14|-std=c++17) args+=("-std=c++20") ;; *) args+=("$a") ;; esac
done
exec g++ "${args[@]}"
WRAP
    chmod +x "$build_dir/cxx20"
    # mmcv's setup.py imports pkg_resources and needs an older setuptools;
    # the project install below brings back the one the runtime needs.
    "${pip[@]}" install -q "setuptools<70" wheel ninja
    echo "setup: building mmcv $mmcv_version with ops (about 18 minutes on 2 cores, once per machine)"
    mkdir -p "$wheel_cache"
    (cd "$build_dir" && CXX="$build_dir/cxx20" MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" \
        "${pip[@]}" wheel -q --no-deps --no-build-isolation --no-binary mmcv \
        -w "$build_dir/out" "mmcv==$mmcv_version")
    # Move into the cache only once the build succeeded, so a killed build
    # never leaves a broken wheel behind.
    mv "$build_dir"/out/mmcv-*.whl "$wheel_cache/"
    rm -rf "$build_dir"
}

if ! "$venv_dir/bin/python" -c "import mmcv._ext" 2>/dev/null; then
    shopt -s nullglob
    wheels=("$wheel_cache"/mmcv-"$mmcv_version"-*.whl)
    shopt -u nullglob
    if (( ${#wheels[@]} == 0 )); then
        build_mmcv_wheel
        wheels=("$wheel_cache"/mmcv-"$mmcv_version"-*.whl)
    fi
    "${pip[@]}" install -q --no-deps "${wheels[0]}"
fi

"${pip[@]}" install -q -e "$repo_dir[dev]"

# The tests render report.html in headless Chromium: Debian's package (root only).
if ! command -v chromium >/dev/null; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian's chromium for the report.html test"
        apt-get install -y -q chromium >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
            || echo "setup: could not install chromium; the report.html browser test will fail" >&2
    else
        echo "setup: chromium not found; install it (Debian: apt-get install chromium) for the report.html test" >&2
    fi
fi
"$venv_dir/bin/python" -c "import mmcv._ext, mmdet.models, mmseg.models, timm" 
echo "$stamp_content" >"$stamp"
echo "setup: done ($venv_dir)"
