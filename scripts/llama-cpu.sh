#!/bin/sh
# llama.cpp built with -march=native on a CPU with AMX (Intel Sapphire Rapids and later) uses
# its AMX matrix kernels, which crash (SIGSEGV in ggml_backend_amx_mul_mat) on the first batch of
# more than one token on such machines here. When the CPU has AMX and the installed
# llama-cpp-python holds those kernels, rebuild it for the same CPU without them (AVX-512, VNNI).
# Usage: scripts/llama-cpu.sh .venv/bin/python
set -eu
PY="$1"
VERSION=0.3.36
grep -qw amx_tile /proc/cpuinfo 2>/dev/null || exit 0
LIB=$("$PY" -c 'import llama_cpp, pathlib; print(pathlib.Path(llama_cpp.__file__).parent / "lib")' 2>/dev/null) || exit 0
if ! grep -qs ggml_backend_amx "$LIB"/libggml-cpu.so*; then
    exit 0
fi
echo "llama-cpp-python: this CPU has AMX; rebuilding without the AMX kernels (takes ~5 min) ..."
CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON" \
    "$PY" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps \
    --no-cache-dir "llama-cpp-python==$VERSION"
