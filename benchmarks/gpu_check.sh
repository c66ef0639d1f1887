#!/usr/bin/env bash
# The CUDA checks, prepared to run in ONE call on a GPU machine (an H200 here), from the
# repository root:
#
#     bash benchmarks/gpu_check.sh
#
# - installs the wheels carried in .whl/ (skorch; the GPU image has torch, numpy, pandas,
#   scikit-learn and tabulate) into /tmp/site, without touching the image's packages;
# - runs the fast-path, estimator and net8 tests (the CUDA tests run only there);
# - runs the benchmark's CUDA part (d): net1 400 and net5 1000 epochs, captured step vs an
#   eager loop on the device, bf16, skorch's plain path (torch.compile with COMPILE_EPOCHS=N);
# - runs part (f): net8 fp32 and bf16 epochs on the GPU;
# - writes parts d and f into their sections of this checkout's docs/RESULTS.md
#   (bench-d, bench-f) and copies that file, with env.txt, pytest.txt, bench.txt and
#   bench_net8.txt, into $OUT (or build/gpu_check): bring the two sections back by hand.
# Each step has its own time limit, so a slow step cannot lose the others' results.
set -u
OUT=${OUT:-build/gpu_check}
PY=${PY:-python3}
mkdir -p "$OUT"
start=$(date +%s)

if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install --quiet --no-index --no-deps --target /tmp/site .whl/*.whl \
        >"$OUT/env.txt" 2>&1 || echo "pip install failed" >>"$OUT/env.txt"
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
    $PY -c "import sys, torch, skorch, sklearn, numpy; print(sys.version.split()[0], 'torch', torch.__version__, 'skorch', skorch.__version__, 'sklearn', sklearn.__version__, 'numpy', numpy.__version__, torch.cuda.get_device_name(0))"
} >>"$OUT/env.txt" 2>&1

timeout 150 $PY -m pytest -q -p no:cacheprovider tests/net/test_fastpath.py tests/net/test_estimator.py \
    tests/net/test_net8.py >"$OUT/pytest.txt" 2>&1
echo "pytest exit $? after $(( $(date +%s) - start )) s" >>"$OUT/pytest.txt"

timeout 280 $PY -m benchmarks.bench --parts d --compile-epochs ${COMPILE_EPOCHS:-0} \
    --out docs/RESULTS.md >"$OUT/bench.txt" 2>&1
echo "bench d exit $? after $(( $(date +%s) - start )) s" >>"$OUT/bench.txt"
timeout 120 $PY -m benchmarks.bench --parts f --out docs/RESULTS.md >"$OUT/bench_net8.txt" 2>&1
echo "bench f exit $? after $(( $(date +%s) - start )) s" >>"$OUT/bench_net8.txt"

tail -n 5 "$OUT/pytest.txt"
cp docs/RESULTS.md "$OUT/RESULTS.md"
tail -n 40 "$OUT/bench.txt"
tail -n 20 "$OUT/bench_net8.txt"
